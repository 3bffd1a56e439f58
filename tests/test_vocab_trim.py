"""Vocabulary trimming (seq2seq_rdrop/vocab_trim.py, `model.trim_vocab=true`): a pretrained checkpoint's
vocabulary is cut to the specials + the tokens of the training texts; the kept tokens' logits, the
weight tying and the special ids survive; the mapping round-trips through the checkpoint."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # plain `pytest` on an uninstalled checkout
    sys.path.insert(0, str(REPO_ROOT))

from seq2seq_rdrop.models import BartSeq2Seq, UniLM, load_model, read_family  # noqa: E402
from seq2seq_rdrop.tokenizer import encode_text, load_tokenizer, save_tokenizer  # noqa: E402
from seq2seq_rdrop.vocab_trim import trim_mapping, trim_vocabulary  # noqa: E402

CJK = [chr(c) for c in range(0x4E00, 0x4E00 + 240)]
LETTERS = list("abcdefghijklmnopqrstuvwxyz")
# a bert-base-chinese-like layout: [PAD]=0, [unusedN], then [UNK] [CLS] [SEP] [MASK], characters, ## pieces
VOCAB = (["[PAD]"] + [f"[unused{i}]" for i in range(1, 10)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
         + ["，", "。"] + CJK + LETTERS + ["##" + c for c in LETTERS])
TEXTS = ["".join(CJK[i] for i in (3, 17, 40, 41, 99, 150, 151, 152, 200, 7)) + "。",
         "".join(CJK[i] for i in (3, 5, 17, 60, 61, 62, 230, 120, 121)) + "，lstm",
         "".join(CJK[i] for i in (8, 9, 40))]


from conftest import TINY_COMMON, train_in_process  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _tokenizer_dir(path: Path) -> Path:
    from transformers import BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    save_tokenizer(BertTokenizer(vocab=str(path / "vocab.txt"), do_lower_case=True), path)
    return path


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """A plain Hugging Face BERT checkpoint with a 300-token vocabulary and its tokenizer."""
    from transformers import BertConfig, BertForMaskedLM

    path = _tokenizer_dir(tmp_path_factory.mktemp("hf_bert"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    model = BertForMaskedLM(config)
    torch.nn.init.normal_(model.cls.predictions.bias)  # a bias that is not all zeros, so slicing it matters
    model.save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def bart_dir(tmp_path_factory) -> Path:
    """A plain BART checkpoint (fnlp/bart-base-chinese layout: BertTokenizer, decoder started with [SEP])."""
    from transformers import BartConfig, BartForConditionalGeneration

    path = _tokenizer_dir(tmp_path_factory.mktemp("hf_bart"))
    tok = load_tokenizer(path)
    torch.manual_seed(0)
    config = BartConfig(vocab_size=len(VOCAB), d_model=32, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                        max_position_embeddings=128,
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                        decoder_start_token_id=tok.sep_token_id, forced_eos_token_id=tok.sep_token_id)
    model = BartForConditionalGeneration(config)
    model.final_logits_bias.normal_()
    model.save_pretrained(str(path))
    return path


def _batch(model, tokenizer):
    return model.collate([model.build_example(encode_text(tokenizer, a), encode_text(tokenizer, t))
                          for t, a in ((TEXTS[2], TEXTS[0]), (TEXTS[0][:4], TEXTS[1]))])


def _map(batch, old_to_new):
    return {k: v.clone().apply_(lambda i: old_to_new[i]) for k, v in batch.items()}


def _check_trimmed(original, trimmed, old_tok, new_tok, tmp_path):
    """Kept tokens, special ids, tied weights and the kept logits of a trimmed model against the original."""
    mapping = trim_mapping(trimmed)
    kept = mapping["kept_original_ids"]
    old_to_new = {old: new for new, old in enumerate(kept)}
    seen = {i for text in TEXTS for i in encode_text(old_tok, text)}
    assert mapping["original_vocab_size"] == len(VOCAB) == original.vocab_size
    assert kept == sorted(set(old_tok.all_special_ids) | seen)  # specials + seen, original id order
    assert trimmed.vocab_size == len(kept) == len(new_tok) == trimmed.hf_model.config.vocab_size < len(VOCAB)
    assert new_tok.convert_ids_to_tokens(list(range(len(kept)))) == old_tok.convert_ids_to_tokens(kept)
    assert (trimmed.pad_id, trimmed.bos_id, trimmed.eos_id) == (
        new_tok.pad_token_id, new_tok.cls_token_id, new_tok.sep_token_id)
    assert trimmed.special_ids() == [old_to_new[i] for i in original.special_ids()]
    assert trimmed.input_embeddings().weight.shape[0] == len(kept)
    assert torch.equal(trimmed.input_embeddings().weight, original.input_embeddings().weight[kept])
    assert trimmed.input_embeddings().padding_idx == trimmed.pad_id
    # the new tokenizer gives the old ids mapped through the mapping; unseen characters become [UNK]
    for text in TEXTS:
        assert encode_text(new_tok, text) == [old_to_new[i] for i in encode_text(old_tok, text)]
    unseen_then_seen = encode_text(new_tok, CJK[1] + CJK[3])
    assert unseen_then_seen == [new_tok.unk_token_id, old_to_new[old_tok.convert_tokens_to_ids(CJK[3])]]
    # logits of the kept tokens are unchanged: log-probs = original log-probs renormalized over the kept ids
    batch = _batch(original, old_tok)
    with torch.no_grad():
        expected = F.log_softmax(original(batch)[..., kept], dim=-1)
        got = trimmed(_map(batch, old_to_new))
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5)
    return batch, got


# --------------------------------------------------------------------------- UniLM


def test_unilm_trim_keeps_seen_tokens_logits_and_tying(bert_dir, tmp_path):
    old_tok = load_tokenizer(bert_dir)
    original = UniLM.from_pretrained(bert_dir).eval()
    model, new_tok = trim_vocabulary(UniLM.from_pretrained(bert_dir).eval(), old_tok, TEXTS, tmp_path / "tokenizer")
    predictions = model.bert.cls.predictions
    assert predictions.decoder.weight is model.input_embeddings().weight  # still tied
    assert predictions.decoder.bias is predictions.bias and predictions.bias.shape == (model.vocab_size,)
    assert torch.equal(predictions.bias, original.bert.cls.predictions.bias[trim_mapping(model)["kept_original_ids"]])
    assert new_tok.pad_token_id == 0 and new_tok.unk_token_id == 1  # [unusedN] are gone, order kept
    assert (new_tok.do_lower_case, new_tok.tokenize_chinese_chars) == (True, True)
    assert load_tokenizer(tmp_path / "tokenizer").get_vocab() == new_tok.get_vocab()  # AutoTokenizer loads it
    _check_trimmed(original, model, old_tok, new_tok, tmp_path)


def test_trimmed_unilm_checkpoint_round_trip_and_retrim(bert_dir, tmp_path):
    old_tok = load_tokenizer(bert_dir)
    model, new_tok = trim_vocabulary(UniLM.from_pretrained(bert_dir).eval(), old_tok, TEXTS, tmp_path / "tok")
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    save_tokenizer(new_tok, ckpt)
    saved = json.loads((ckpt / "config.json").read_text())
    assert saved["vocab_size"] == model.vocab_size and saved["vocab_trim"] == trim_mapping(model)
    again = load_model(ckpt).eval()
    again_tok = load_tokenizer(ckpt)
    assert again.vocab_size == model.vocab_size and trim_mapping(again) == trim_mapping(model)
    assert again.bert.cls.predictions.decoder.weight is again.input_embeddings().weight
    assert (again.pad_id, again.bos_id, again.eos_id, again.special_ids()) == (
        model.pad_id, model.bos_id, model.eos_id, model.special_ids())
    batch = _batch(model, new_tok)
    assert torch.equal(_batch(again, again_tok)["src_ids"], batch["src_ids"])
    with torch.no_grad():
        assert torch.equal(again(batch), model(batch))
    # trimming the trimmed model again: the mapping still refers to the original checkpoint's ids
    first = trim_mapping(again)["kept_original_ids"]
    twice, twice_tok = trim_vocabulary(again, again_tok, TEXTS[:1], tmp_path / "tok2")
    mapping = trim_mapping(twice)
    assert mapping["original_vocab_size"] == len(VOCAB) and len(mapping["kept_original_ids"]) == len(twice_tok)
    old_ids = encode_text(old_tok, TEXTS[0])
    assert [mapping["kept_original_ids"][i] for i in encode_text(twice_tok, TEXTS[0])] == old_ids
    assert set(mapping["kept_original_ids"]) < set(first)


def test_non_writing_rank_reads_the_written_tokenizer(bert_dir, tmp_path):
    """DDP: only the main rank writes; the others (write=False) load the same files after the barrier."""
    old_tok = load_tokenizer(bert_dir)
    main, main_tok = trim_vocabulary(UniLM.from_pretrained(bert_dir), old_tok, TEXTS, tmp_path / "tok")
    calls = []
    other, other_tok = trim_vocabulary(UniLM.from_pretrained(bert_dir), old_tok, TEXTS, tmp_path / "tok",
                                       write=False, barrier=lambda: calls.append(1))
    assert calls == [1] and other_tok.get_vocab() == main_tok.get_vocab()
    assert trim_mapping(other) == trim_mapping(main)


def test_bpe_tokenizer_is_refused_by_name(bert_dir, tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    bpe = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.BPE(
            vocab={"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "a": 4, "b": 5, "ab": 6},
            merges=[("a", "b")], unk_token="<unk>")),
        pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    model = UniLM.from_pretrained(bert_dir)
    with pytest.raises(ValueError, match="model.trim_vocab"):
        trim_vocabulary(model, bpe, ["ab"], tmp_path / "tok")
    assert model.vocab_size == len(VOCAB)  # untouched
    assert not (tmp_path / "tok").exists()


# --------------------------------------------------------------------------- BART


def test_bart_trim_logits_tying_specials_and_round_trip(bart_dir, tmp_path):
    old_tok = load_tokenizer(bart_dir)
    original = BartSeq2Seq.from_pretrained(bart_dir).eval()
    model, new_tok = trim_vocabulary(BartSeq2Seq.from_pretrained(bart_dir).eval(), old_tok, TEXTS, tmp_path / "tok")
    bart = model.bart
    weight = model.input_embeddings().weight
    assert bart.lm_head.weight is weight
    assert bart.model.encoder.embed_tokens.weight is weight and bart.model.decoder.embed_tokens.weight is weight
    assert bart.final_logits_bias.shape == (1, model.vocab_size)
    assert model.decoder_start_id == model.eos_id == new_tok.sep_token_id  # the checkpoint's [SEP] start, remapped
    config = bart.config
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id, config.decoder_start_token_id,
            config.forced_eos_token_id) == (model.pad_id, model.bos_id, model.eos_id, model.eos_id, model.eos_id)
    batch, log_probs = _check_trimmed(original, model, old_tok, new_tok, tmp_path)

    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    save_tokenizer(new_tok, ckpt)
    assert read_family(ckpt) == "bart"
    again = load_model(ckpt).eval()
    assert isinstance(again, BartSeq2Seq) and trim_mapping(again) == trim_mapping(model)
    assert again.decoder_start_id == model.decoder_start_id and again.special_ids() == model.special_ids()
    assert again.bart.lm_head.weight is again.input_embeddings().weight
    kept = trim_mapping(model)["kept_original_ids"]
    with torch.no_grad():
        assert torch.equal(again(_map(batch, {old: new for new, old in enumerate(kept)})), log_probs)


# --------------------------------------------------------------------------- train.py end to end


def test_train_py_with_trim_vocab(bert_dir, data_dir, tmp_path, caplog):
    from conftest import make_pairs

    # the synthetic data uses the first 60 CJK characters and "。": all in VOCAB
    train_text = [t for pair in make_pairs(48, seed=0) for t in pair]
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="seq2seq_rdrop"):  # what train.py's train.log would hold
        train_in_process(out, f"data.dir={data_dir}", "model=unilm", f"model.pretrained={bert_dir}",
                         "model.trim_vocab=true", *TINY_COMMON)
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    old_tok = load_tokenizer(bert_dir)
    seen = {i for text in train_text for i in encode_text(old_tok, text)}
    assert config["vocab_trim"]["original_vocab_size"] == len(VOCAB)
    assert config["vocab_trim"]["kept_original_ids"] == sorted(seen | set(old_tok.all_special_ids))
    assert config["vocab_size"] == len(config["vocab_trim"]["kept_original_ids"]) < len(VOCAB)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["vocab_size"] == config["vocab_size"]
    assert len(load_tokenizer(out / "checkpoint")) == config["vocab_size"]
    assert load_tokenizer(out / "tokenizer").get_vocab() == load_tokenizer(out / "checkpoint").get_vocab()
    assert f"vocabulary {len(VOCAB)} -> {config['vocab_size']} tokens" in caplog.text
