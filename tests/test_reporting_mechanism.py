"""R-Drop's gain against the baseline's ensemble gap (reporting/mechanism.py): one point per seed that has both rows
and the baseline's diagnostics, the gain the mean per-example difference, the gap ensemble minus deterministic."""
import json

import pytest
from test_reporting import make_run

from seq2seq_rdrop.metrics import METRIC_NAMES
from seq2seq_rdrop.reporting import CompareError
from seq2seq_rdrop.reporting.mechanism import mechanism_markdown, parse_regime, regime_points


def diagnosed(run_dir, ensemble, deterministic, kl, dropout=0.1):
    measures = {"rouge_l_greedy_ensemble": ensemble, "rouge_l_greedy_deterministic": deterministic,
                "gap_kl_ensemble_deterministic": kl}
    (run_dir / "diagnostics.json").write_text(json.dumps(
        {"runs": [{"split": "dev", "dropout": {"hidden": dropout, "attention": dropout}, "measures": measures}]}))


def scores(values):
    return {m: list(values) for m in METRIC_NAMES}


def test_each_diagnosed_seed_gives_its_gap_and_r_drop_s_mean_gain(tmp_path):
    for seed, gain in ((0, 2.0), (1, -1.0)):
        base = make_run(tmp_path, "baseline", seed, scores([40.0, 50.0]))
        make_run(tmp_path, "rdrop", seed, scores([40.0 + 2 * gain, 50.0]))
        diagnosed(base, ensemble=41.0 + seed, deterministic=40.0, kl=0.01)
    make_run(tmp_path, "rdrop", 2, scores([1.0, 2.0]))  # no baseline of seed 2: no point
    points = regime_points(parse_regime(f"small={tmp_path}:baseline:rdrop"), "dev", "main")
    assert [(p["seed"], p["ensemble_gap_rouge_l"], p["rdrop_gain"]) for p in points] == [(0, 1.0, 2.0), (1, 2.0, -1.0)]
    assert "| small | 0 | 0.1 | dev | +1.00 | 0.0100 | +2.00 |" in mechanism_markdown(points, "dev", "greedy")


def test_a_malformed_regime_is_one_line_naming_the_expected_form():
    with pytest.raises(CompareError, match="expected LABEL=REPORT_DIR:BASELINE_ROW:RDROP_ROW"):
        parse_regime("outputs/reports/x:baseline")
