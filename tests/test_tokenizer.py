from transformers import BertTokenizer

from seq2seq_rdrop.tokenizer import build_tokenizer, decode_ids, encode_text, load_tokenizer, save_tokenizer


def test_each_chinese_character_and_each_latin_letter_is_one_token(tmp_path):
    tok = build_tokenizer(["基于LSTM的分词方法2019"], tmp_path)
    tokens = tok.convert_ids_to_tokens(encode_text(tok, "基于lstm的方法2019"))
    assert tokens == ["基", "于", "l", "##s", "##t", "##m", "的", "方", "法", "2", "##0", "##1", "##9"]


def test_text_is_lower_cased_and_rare_characters_become_unk(tmp_path):
    tok = build_tokenizer(["ABC 中中 文"], tmp_path, min_count=2)
    assert tok.convert_ids_to_tokens(encode_text(tok, "中文")) == ["中", "[UNK]"]
    tok = build_tokenizer(["ABC"], tmp_path)
    assert encode_text(tok, "ABC") == encode_text(tok, "abc")


def test_vocab_txt_loads_with_plain_bert_tokenizer(tmp_path):
    tok = build_tokenizer(["深度学习 cnn"], tmp_path)
    plain = BertTokenizer.from_pretrained(str(tmp_path))
    assert plain("深度cnn")["input_ids"] == tok("深度cnn")["input_ids"]


def test_decode_glues_pieces_and_keeps_words_apart(tmp_path):
    tok = build_tokenizer(["基于lstm和cnn的模型2019"], tmp_path)
    assert decode_ids(tok, encode_text(tok, "基于lstm 和 cnn 2019的模型")) == "基于lstm和cnn 2019的模型"
    assert decode_ids(tok, [tok.cls_token_id] + encode_text(tok, "模型") + [tok.sep_token_id]) == "模型"


def test_saved_tokenizer_reloads_identically(tmp_path):
    tok = build_tokenizer(["基于深度学习的图像分割 unet"], tmp_path / "a")
    save_tokenizer(tok, tmp_path / "b")
    assert (tmp_path / "b" / "vocab.txt").is_file()
    again = load_tokenizer(tmp_path / "b")
    assert again("图像 unet")["input_ids"] == tok("图像 unet")["input_ids"]


def test_full_width_letters_and_digits_tokenize_like_their_half_width_forms(tmp_path):
    tok = build_tokenizer(["基于LSTM的方法2019"], tmp_path)
    assert encode_text(tok, "基于ＬＳＴＭ的方法２０１９") == encode_text(tok, "基于LSTM的方法2019")
    assert tok.unk_token_id not in encode_text(tok, "ｌｓｔｍ")


def test_a_vocabulary_built_from_full_width_text_holds_the_half_width_tokens(tmp_path):
    tok = build_tokenizer(["ＡＢＣ１２３"], tmp_path)
    assert encode_text(tok, "abc123") == encode_text(tok, "ＡＢＣ１２３")
    assert tok.unk_token_id not in encode_text(tok, "abc123")


def test_full_width_punctuation_is_left_as_it_was():
    """Only letters and digits fold: CSL's full-width punctuation (，％（）...) keeps its own tokens."""
    from seq2seq_rdrop.tokenizer import fold_width

    assert fold_width("，％（）～ＡＺａｚ０９") == "，％（）～AZaz09"


def test_a_long_text_cut_before_tokenizing_gives_the_ids_of_cutting_after(tmp_path):
    import random

    rng = random.Random(0)
    words = ["基于", "lstm", "的", "方法", "，", "cnn2019", " ", "深度学习", "ＡＢＣ"]
    tok = build_tokenizer(words, tmp_path)
    for _ in range(20):
        text = "".join(rng.choice(words) for _ in range(rng.randint(50, 400)))
        full = tok(text.replace("ＡＢＣ", "ABC"), add_special_tokens=False)["input_ids"]
        for max_len in (8, 40, 128):
            assert encode_text(tok, text, max_len) == full[:max_len]
