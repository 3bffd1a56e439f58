import pytest

from seq2seq_rdrop.metrics import chars, distinct_ngrams, score_corpus, score_pair


def test_chinese_characters_are_not_dropped():
    # rouge-score's default tokenizer would score this pair 0: it keeps only [a-z0-9]
    assert score_pair("图像分割", "图像分割")["rouge-1"] == pytest.approx(100.0)


def test_hand_checked_rouge_on_chinese_strings():
    # reference 基于深度学习的图像分割 (11 chars), prediction 深度学习图像识别 (8 chars)
    # common characters: 深 度 学 习 图 像 -> 6; R1 P=6/8 R=6/11 F=2PR/(P+R)=12/19
    # bigrams: ref 10, pred 7; common 深度 度学 学习 图像 -> 4; F=2*4/(10+7)=8/17
    # LCS 深度学习图像 = 6 -> same as R1 here
    s = score_pair("基于深度学习的图像分割", "深度学习图像识别")
    assert s["rouge-1"] == pytest.approx(100 * 12 / 19)
    assert s["rouge-2"] == pytest.approx(100 * 8 / 17)
    assert s["rouge-l"] == pytest.approx(100 * 12 / 19)


def test_hand_checked_bleu_with_smoothing_method1():
    # identical 4-character strings: every n-gram precision is 1, brevity penalty 1 -> BLEU 100
    assert score_pair("神经网络", "神经网络")["bleu"] == pytest.approx(100.0)
    # 3 characters: no 4-gram exists; method1 gives the 0/0 4-gram precision epsilon=0.1
    # BLEU = (1 * 1 * 1 * 0.1/1)^(1/4) -> 0.1 ** 0.25
    assert score_pair("神经网", "神经网")["bleu"] == pytest.approx(100 * 0.1 ** 0.25)


def test_lower_case_and_whitespace_do_not_matter():
    assert chars("CNN 模型") == ["c", "n", "n", "模", "型"]
    assert score_pair("CNN模型", "cnn 模型")["rouge-l"] == pytest.approx(100.0)


def test_empty_prediction_scores_zero_and_is_averaged_in():
    scores = score_corpus(["图像分割", "文本分类"], ["图像分割", ""])
    assert scores["n"] == 2
    assert scores["rouge-l"] == pytest.approx(50.0)
    assert scores["bleu"] == pytest.approx(50.0)


def test_lead_scores_score_the_abstracts_opening_as_the_title():
    from seq2seq_rdrop.metrics import lead_scores

    assert lead_scores(["图像分割"], ["图像分割方法研究"], chars=4)["rouge-l"] == 100.0
    assert lead_scores(["文本检索"], ["图像分割方法研究"], chars=4)["rouge-l"] == 0.0


def test_distinct_bigrams_count_types_over_tokens_across_the_titles():
    assert distinct_ngrams(["基于学习", "图像分割"]) == 1.0  # 3 + 3 bigrams, none shared
    assert distinct_ngrams(["基于学习", "基于学习"]) == pytest.approx(3 / 6)  # two copies: half
    assert distinct_ngrams(["abcd", "bcde"]) == pytest.approx(4 / 6)  # ab bc cd | bc cd de
    assert distinct_ngrams(["aaa"]) == pytest.approx(1 / 2)  # aa twice within one title
    assert distinct_ngrams(["A b", "ab"]) == pytest.approx(1 / 2)  # characters as the metrics see them
    assert distinct_ngrams(["图", ""]) == 0.0  # no bigram at all
    assert distinct_ngrams(["图像分割"] * 5) == pytest.approx(1 / 5)
    assert distinct_ngrams(["图像分割", "图像识别"], n=1) == pytest.approx(6 / 8)


def test_the_rule_title_is_the_clause_after_the_first_verb_of_proposing_else_the_lead():
    from seq2seq_rdrop.metrics import rule_title

    assert rule_title("针对图像噪声问题,本文提出了一种基于小波变换的去噪方法。实验表明") == "一种基于小波变换的去噪方法"
    assert rule_title("我们设计深度哈希检索框架，并在数据集上验证") == "深度哈希检索框架"
    assert rule_title("研究了短的，然后建立了完整的排队模型。") == "完整的排队模型"  # a clause under 4 characters is passed over
    assert rule_title("本文讨论图像分割中的若干问题以及相关的评价方法") == "本文讨论图像分割中的若干问题以及相关的评"  # no verb: the first 20 characters


def test_title_shape_counts_what_makes_a_title_not_read_as_one_beside_the_references_rates():
    from seq2seq_rdrop.metrics import balanced, repeats_ngram, title_shape

    assert balanced("基于(CNN)的《图像》分割") and not balanced("基于(CNN的分割") and not balanced("分割)方法")
    assert repeats_ngram("基于基于基于方法") and not repeats_ngram("基于深度学习的方法")
    shape = title_shape(["基于基于基于", "[正文]一种方法(", "图像分割"], ["图像分割方法研究", "一种新的方法", "分割"])
    assert shape["repetitive"] == shape["boilerplate"] == pytest.approx(1 / 3)
    assert shape["unbalanced_brackets"] == pytest.approx(1 / 3) and shape["starts_jiyu"] == pytest.approx(1 / 3)
    assert shape["length_ratio"] == pytest.approx((6 + 9 + 4) / (8 + 6 + 2))
    assert shape["reference_starts_jiyu"] == 0.0 and shape["reference_length"] == pytest.approx(16 / 3)


def test_word_rouge_counts_jieba_words_so_a_word_cut_short_misses_whole_words():
    from seq2seq_rdrop.metrics import score_corpus, word_rouge
    from seq2seq_rdrop.words import words

    assert words("基于 Sponge结构的Hash函数") == ("基于", "sponge", "结构", "的", "hash", "函数")
    reference = "基于Sponge结构的Hash函数"
    assert word_rouge([reference], ["基于SPONGE结构的hash函数"])["word-rouge-l"] == pytest.approx(100.0)
    # 基于/的/hash/函数 of 6 reference words, in 5 predicted words: F1 = 2 * 4/6 * 4/5 / (4/6 + 4/5)
    cut = word_rouge([reference], ["基于Spon的Hash函数"])
    assert cut["word-rouge-1"] == pytest.approx(100 * 2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5))
    assert cut["word-rouge-1"] < score_corpus([reference], ["基于Spon的Hash函数"])["rouge-1"]  # characters forgive more
    assert word_rouge([reference, reference], [reference, ""]) == {
        "word-rouge-1": 50.0, "word-rouge-2": 50.0, "word-rouge-l": 50.0, "n": 2}  # an empty title scores 0


def test_title_shape_with_abstracts_reports_each_well_formedness_rate_beside_the_references():
    from seq2seq_rdrop.metrics import title_shape
    from seq2seq_rdrop.title_form import FORM_CHECKS

    abstract = "本文提出一种基于Sponge结构的轻量级Hash函数,该函数在WiFi设备上运行。"
    shape = title_shape(["基于Spon的Hash函数", "wififi设备"], ["基于Sponge结构的轻量级Hash函数", "WiFi设备"],
                        [abstract, abstract])
    assert shape["latin_cut_short"] == shape["repeated_piece"] == 0.5
    assert all(shape[f"reference_{check}"] == 0.0 for check in FORM_CHECKS)
    assert not set(FORM_CHECKS) & set(title_shape(["基于"], ["基于"]))  # without abstracts: the older keys only
