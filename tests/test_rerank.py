"""Re-ranking the n-best (seq2seq_rdrop/rerank.py, decode.rerank): the option's parsing and errors, the
features, that the search's own score alone keeps the search's order, that the rule feature moves the rule's
title to the top, that tuning finds weights which pick the best candidates, and the option end to end."""
from __future__ import annotations

import json

import pytest
from conftest import random_abstracts

from seq2seq_rdrop.decode_options import DEFAULT_DECODE, from_generation_config, to_generation_config
from seq2seq_rdrop.errors import ConfigError
from seq2seq_rdrop.metrics import rule_title
from seq2seq_rdrop.rerank import (FEATURES, NO_RERANK, features, format_weights, longest_shared_span,
                                  parse_weights, rerank_order, tune_weights)

ABSTRACT = "本文提出一种基于深度学习的图像识别方法,实验表明该方法的准确率高于传统方法。"


def test_the_default_is_no_reranking():
    assert DEFAULT_DECODE["rerank"] == NO_RERANK and parse_weights(NO_RERANK) == {}


def test_weights_parse_and_print_as_a_command_line_value():
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    weights = parse_weights(OmegaConf.create({"lp": 0.5, "rule": 1, "len": -0.25}))
    assert weights == {"lp": 0.5, "rule": 1.0, "len": -0.25}
    printed = format_weights(weights)
    override = OverridesParser.create().parse_overrides([f"decode.rerank={printed}"])[0]
    assert parse_weights(override.value()) == weights
    assert format_weights({}) == NO_RERANK and parse_weights(None) == {}


@pytest.mark.parametrize("value, says", [
    ({"lp": 1, "colour": 2}, "'colour' is not a feature; allowed features are lp, logp, len, mbr, rule, span"),
    ({"rule": "high"}, "decode.rerank.rule='high': a finite number is required"),
    ({"rule": float("inf")}, "a finite number is required"),
    ("lp=1", "allowed values are none, selector, rule (named weight sets) or a mapping"),
    (3, "allowed values are none, selector, rule (named weight sets) or a mapping"),
])
def test_a_bad_setting_gets_one_line_naming_the_option(value, says):
    with pytest.raises(ConfigError) as error:
        parse_weights(value)
    assert "decode.rerank" in str(error.value) and says in str(error.value) and "\n" not in str(error.value)


def test_a_bad_setting_is_refused_by_the_decoding_options_check():
    from seq2seq_rdrop.decode_options import check

    with pytest.raises(ConfigError, match="decode.rerank.lp="):
        check({**DEFAULT_DECODE, "rerank": {"lp": "x"}})


def test_the_setting_travels_in_generation_config_under_our_own_key():
    from omegaconf import OmegaConf

    decode = {**DEFAULT_DECODE, "rerank": OmegaConf.create({"lp": 0.5, "rule": 1})}  # as a config holds it
    config = json.loads(json.dumps(to_generation_config(decode, {}, 128)))
    assert config["seq2seq_rdrop"]["rerank"] == {"lp": 0.5, "rule": 1}
    assert from_generation_config(config)[0]["rerank"] == {"lp": 0.5, "rule": 1}
    assert "rerank" not in to_generation_config(DEFAULT_DECODE, {}, 128)["seq2seq_rdrop"]


def test_features_are_standardised_within_the_list():
    titles = ["深度学习图像识别", "图像识别方法", "一种方法"]
    rows = features(titles, [-0.5, -0.7, -0.9], [-4.0, -4.2, -3.5], ABSTRACT)
    assert len(rows) == 3 and all(len(r) == len(FEATURES) for r in rows)
    for column in zip(*rows):
        assert abs(sum(column)) < 1e-6
    constant = features(["甲乙", "丙丁"], [-1.0, -1.0], [-2.0, -2.0], "无关的摘要")
    assert [r[FEATURES.index("lp")] for r in constant] == [0.0, 0.0]


def test_longest_shared_span():
    assert longest_shared_span("基于深度学习的识别", ABSTRACT) == len("基于深度学习的")
    assert longest_shared_span("完全无关", ABSTRACT) == 0


def test_the_search_score_alone_keeps_the_search_order():
    titles = ["图像识别", "深度学习的图像识别方法", "一种方法", "方法"]
    scores = [-0.2, -0.3, -0.3, -0.9]  # best first, a tie kept in order
    assert rerank_order({"lp": 1.0}, titles, scores, [-1.0, -3.3, -1.2, -1.8], ABSTRACT) == [0, 1, 2, 3]
    assert rerank_order({}, titles, scores, [0.0] * 4, ABSTRACT) == [0, 1, 2, 3]


def test_the_rule_feature_brings_the_rules_title_to_the_top():
    rule = rule_title(ABSTRACT)
    titles = ["准确率高于传统方法", "实验表明", rule]
    assert rerank_order({"rule": 1.0}, titles, [-0.1, -0.2, -0.9], [-1.0, -0.8, -9.0], ABSTRACT)[0] == 2


def test_tuning_finds_weights_that_pick_the_best_candidate():
    """Lists whose best candidate is always the longest, while the search's score prefers short ones."""
    lists, gains = [], []
    for k in range(12):
        titles = ["图像" * (i + 1) for i in range(4)]
        scores = [-0.1 * (i + 1) - 0.01 * k for i in range(4)]
        lists.append(features(titles, scores, scores, ABSTRACT))
        gains.append([0.1, 0.2, 0.3, 0.9])
    weights = tune_weights(lists, gains, trials=200, seed=0)
    picks = [max(range(4), key=lambda i: sum(weights.get(n, 0) * v for n, v in zip(FEATURES, f[i]))) for f in lists]
    assert picks == [3] * 12 and max(abs(v) for v in weights.values()) == 1.0


def test_reranking_end_to_end_returns_num_return_titles_of_the_n_best(api):
    abstracts = random_abstracts(2, seed=3)
    options = dict(beam_size=4, max_len=12)
    plain = api.generate(abstracts, num_return=4, rerank=NO_RERANK, **options)
    by_score = api.generate(abstracts, num_return=2, rerank={"lp": 1}, **options)
    assert by_score == [row[:2] for row in plain]
    by_length = api.generate(abstracts, num_return=4, rerank={"len": 1}, **options)
    for row, reordered in zip(plain, by_length):
        assert sorted(row) == sorted(reordered)  # the same n-best, re-ordered
        assert [len(t) for t in reordered] == sorted((len(t) for t in reordered), reverse=True)


def test_a_title_with_an_open_bracket_or_boilerplate_goes_after_well_formed_ones():
    titles = ["深度学习(图像识别方法", "[正文]图像识别方法", "深度学习的图像识别方法"]
    order = rerank_order({"lp": 1.0}, titles, [-0.1, -0.2, -0.9], [-1.0, -1.5, -9.0], ABSTRACT)
    assert order == [2, 0, 1]


def test_tune_rerank_refuses_a_checkpoint_that_trained_on_the_pairs_and_tunes_on_unseen_ones(tmp_path, capsys):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from conftest import load_script, save_tiny_checkpoint

    tune = load_script("tune_rerank", "scripts/tune_rerank.py")
    pairs = [(a[:5], a) for a in random_abstracts(12, seed=5)]
    data = tmp_path / "train.tsv"
    data.write_text("".join(f"{t}\t{a}\n" for t, a in pairs), encoding="utf-8")
    seen = save_tiny_checkpoint(tmp_path / "seen")  # its run config has no validation split
    common = ["--data", str(data), "--last", "6", "--beam-size", "3", "--max-len", "6", "--trials", "20"]
    assert tune.main([str(seen), *common]) == 2
    assert "data.val_size=0 < --last 6: it trained on them" in capsys.readouterr().err
    unseen = save_tiny_checkpoint(tmp_path / "unseen", {"data": {"max_source_len": 40, "val_size": 6}})
    out = tmp_path / "tuned.md"
    assert tune.main([str(unseen), *common, "--out", str(out)]) == 0
    report = out.read_text(encoding="utf-8")
    chosen = report.split("chosen: `decode.rerank=")[1].split("`")[0]
    value = OverridesParser.create().parse_overrides([f"decode.rerank={chosen}"])[0].value()
    assert chosen == NO_RERANK or set(parse_weights(value)) <= set(FEATURES)  # a value the option takes
    assert "| top 1 (beam search) |" in report and "| re-ranked |" in report and "| oracle (a bound) |" in report


def test_the_sel_feature_brings_the_selectors_span_to_the_top():
    titles = ["准确率高于传统方法", "实验表明", "深度学习的图像识别方法"]
    selected = [("深度学习的图像识别方法", 0.7), ("图像识别方法", 0.3)]
    assert rerank_order({"sel": 1.0}, titles, [-0.1, -0.2, -0.9], [-1.0, -0.8, -9.0], ABSTRACT, selected)[0] == 2


def test_without_selector_spans_the_sel_feature_is_zero_and_changes_nothing():
    titles = ["图像识别", "深度学习的图像识别方法", "一种方法"]
    rows = features(titles, [-0.2, -0.3, -0.4], [-1.0, -3.3, -1.2], ABSTRACT)
    assert [r[FEATURES.index("sel")] for r in rows] == [0.0, 0.0, 0.0]
    scores = [-0.2, -0.3, -0.4]
    assert rerank_order({"lp": 1.0, "sel": 1.0}, titles, scores, scores, ABSTRACT) == [0, 1, 2]


def test_a_named_weight_set_is_its_weights_and_a_mapping_given_over_it_replaces_it_whole():
    """decode.rerank=selector / rule are WEIGHT_SETS' weights; the configs' default is a name, so a mapping given
    on the command line replaces it instead of merging with it key by key (the trap a mapping default set)."""
    from conftest import compose_train

    from seq2seq_rdrop.rerank import WEIGHT_SETS, parse_weights

    assert parse_weights("selector") == WEIGHT_SETS["selector"] and "rule" not in parse_weights("selector")
    assert parse_weights("rule")["rule"] > 0
    assert compose_train([]).decode.rerank == "selector"
    assert dict(compose_train(["decode.rerank={lp:1}"]).decode.rerank) == {"lp": 1}
    assert compose_train(["+experiment=quality"]).decode.rerank == "selector"


def test_the_shape_flag_puts_titles_that_end_inside_a_word_after_word_shaped_ones():
    """decode.rerank={...,shape:1}: a candidate that ends inside a jieba word of the abstract goes after the
    word-shaped ones whatever its weighted score; without the flag the weights alone order them."""
    from seq2seq_rdrop.rerank import parse_weights, rerank_order

    abstract = "本文提出一种基于深度学习的图像识别方法,实验表明该方法有效。"
    titles = ["基于深度学习的图像识", "基于深度学习的图像识别方法"]  # the first ends inside 识别
    scores = [-0.1, -0.9]  # the search prefers the cut one
    plain = rerank_order({"lp": 1.0}, titles, scores, scores, abstract)
    shaped = rerank_order(parse_weights({"lp": 1, "shape": 1}), titles, scores, scores, abstract)
    assert plain == [0, 1] and shaped == [1, 0]
