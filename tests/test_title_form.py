"""seq2seq_rdrop.title_form: each well-formedness check flags the broken title of a hand-made pair and passes
its well-formed counterpart; the rates are shares of titles, each against its own abstract."""
import pytest

from seq2seq_rdrop.title_form import (copied_spans, ends_inside_word, form_rates, glued_spans, latin_cut_short,
                                      repeated_piece, starts_inside_word, word_boundaries)

ABSTRACT = ("本文提出一种基于Sponge结构的轻量级Hash函数,该函数在WiFi设备上运行。"
            "然而该方案还面临着安全挑战,我们设计了新的算法。")


def test_a_latin_run_that_is_a_strict_prefix_or_suffix_of_an_abstract_word_is_cut_short():
    assert latin_cut_short("基于Spon的Hash函数", ABSTRACT) == ["spon"]
    assert latin_cut_short("基于ponge结构的函数", ABSTRACT) == ["ponge"]
    assert latin_cut_short("基于Sponge结构的Hash函数", ABSTRACT) == []  # whole words, whatever their case
    assert latin_cut_short("基于SPONGE的HASH函数", ABSTRACT) == []
    assert latin_cut_short("一种Network模型", "本文研究了networks的结构") == []  # a plural is not a cut
    assert latin_cut_short("基于S的函数", ABSTRACT) == []  # one letter matches too much by chance


def test_jieba_word_boundaries_are_positions_in_the_lower_cased_abstract_without_whitespace():
    text, bounds = word_boundaries("基于 Sponge 结构")
    assert text == "基于sponge结构"
    assert bounds == frozenset({0, 2, 8, 10})


def test_a_title_whose_copied_opening_starts_inside_a_word_everywhere_starts_inside_a_word():
    assert starts_inside_word("ponge结构的轻量级Hash函数", ABSTRACT)
    assert starts_inside_word("量级Hash函数", ABSTRACT)
    assert not starts_inside_word("轻量级Hash函数", ABSTRACT)
    assert not starts_inside_word("关于图像的研究", ABSTRACT)  # no copied opening: not counted


def test_a_title_whose_copied_ending_ends_inside_a_word_everywhere_ends_inside_a_word():
    assert ends_inside_word("基于Sponge结构的轻量", ABSTRACT)
    assert ends_inside_word("基于Sponge结构的Has", ABSTRACT)
    assert not ends_inside_word("基于Sponge结构的轻量级Hash函数", ABSTRACT)
    # 函数 occurs twice; one occurrence ending on a boundary is enough
    assert not ends_inside_word("一种轻量级的函数", ABSTRACT)


def test_an_immediately_repeated_piece_the_abstract_lacks_is_a_repeated_word_piece():
    assert repeated_piece("wififi设备上的Hash函数", ABSTRACT) == "ifif"
    assert repeated_piece("基于基于的方法", ABSTRACT) == "基于基于"
    assert repeated_piece("WiFi设备上的Hash函数", ABSTRACT) == ""
    assert repeated_piece("数据数据库", "本文把数据数据库化") == ""  # the abstract itself doubles it
    assert repeated_piece("哈哈方法", ABSTRACT) == ""  # one character doubled is not a piece of 2+


def test_copied_spans_are_the_greedy_longest_pieces_of_the_abstract_and_lone_uncopied_characters():
    assert copied_spans("综述Hash函数设计", ABSTRACT) == [("综", False), ("述", False), ("hash函数", True),
                                                         ("设计", True)]


def test_a_junction_of_copied_spans_is_glued_when_its_characters_never_meet_and_a_word_is_broken_there():
    # 轻量 ends inside 轻量级, and 量函 never stands in the abstract
    assert glued_spans("轻量函数", ABSTRACT) == [("轻量", "函数")]
    # whole words dropped between (基于Sponge结构的 + Hash函数): composed, not glued
    assert glued_spans("基于Sponge结构的Hash函数", ABSTRACT) == []
    assert glued_spans("一种基于Sponge结构的轻量级Hash函数", ABSTRACT) == []  # one span, no junction
    assert glued_spans("面临着安全算", ABSTRACT) == []  # a one-character span is not a span that glues


def test_form_rates_are_the_shares_of_titles_failing_each_check():
    rates = form_rates(["基于Spon的Hash函数", "wififi设备", "轻量级Hash函数", "轻量函数"], [ABSTRACT] * 4)
    assert rates == {"latin_cut_short": 0.25, "starts_inside_word": 0.0, "ends_inside_word": 0.0,
                     "repeated_piece": 0.25, "glued_spans": 0.25}
    with pytest.raises(ValueError, match="2 titles but 1 abstracts"):
        form_rates(["a", "b"], [ABSTRACT])
