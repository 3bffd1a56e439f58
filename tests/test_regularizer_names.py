"""seq2seq_rdrop.regularizer_names, the one list of names the sweeps, reports and benchmarks use: every name
in it is a conf/regularizer YAML, every published label has its published row, reports order them."""
import pytest

from seq2seq_rdrop.regularizer_names import (ARTICLE_FOUR, COMPARISON_SWEEPS, DEFAULT_COMPARISON, PUBLISHED_LABELS,
                                             REPORT_ORDER, SEMI_SUPERVISED_REFERENCE, SEMI_SUPERVISED_ROWS,
                                             conf_names, order_regularizers)
from seq2seq_rdrop.reporting.published import PUBLISHED

NAMED = {
    "ARTICLE_FOUR": ARTICLE_FOUR, "REPORT_ORDER": REPORT_ORDER, "PUBLISHED_LABELS": tuple(PUBLISHED_LABELS),
    "SEMI_SUPERVISED_ROWS": SEMI_SUPERVISED_ROWS,
    **{f"COMPARISON_SWEEPS[{k}]": v for k, v in COMPARISON_SWEEPS.items()},
}


@pytest.mark.parametrize("where", sorted(NAMED))
def test_every_name_is_a_conf_regularizer(where):
    assert set(NAMED[where]) <= set(conf_names()), where


def test_the_defaults_are_among_the_choices():
    assert DEFAULT_COMPARISON in COMPARISON_SWEEPS and SEMI_SUPERVISED_REFERENCE in SEMI_SUPERVISED_ROWS
    assert set(PUBLISHED_LABELS.values()) == set(PUBLISHED) and set(ARTICLE_FOUR) <= set(PUBLISHED_LABELS)


def test_a_report_lists_the_known_names_first_in_their_order_then_the_others_alphabetically():
    assert order_regularizers({"zz", "rdrop", "aa", "baseline", "grad_penalty"}) == \
        ["baseline", "grad_penalty", "rdrop", "aa", "zz"]
    assert order_regularizers(REPORT_ORDER[::-1]) == list(REPORT_ORDER)
