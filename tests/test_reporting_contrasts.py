"""Pairwise contrasts (reporting/contrasts.py, scripts/contrasts.py): Δ = A − B with the report's own bootstrap,
so the contrast of a row with the baseline is the report's Δ against it, and swapping A and B flips the sign."""
import numpy as np

from test_reporting import make_run

from seq2seq_rdrop.metrics import METRIC_NAMES
from seq2seq_rdrop.reporting.build import build_report, finished_runs
from seq2seq_rdrop.reporting.contrasts import pairwise_contrasts, report_contrasts
from seq2seq_rdrop.reporting.runs import discover_runs


def three_rows(root):
    """Per seed, one set of 12 examples; rdrop a noisy +1 on them, random_replace a noisy +3."""
    rng = np.random.default_rng(0)
    for seed in (0, 1, 2):
        base = rng.uniform(20, 70, 12)
        for reg, shift in (("baseline", 0.0), ("rdrop", 1.0), ("random_replace", 3.0)):
            values = base + shift + (rng.normal(0, 0.5, 12) if shift else 0)
            make_run(root, reg, seed, {m: [round(float(v), 2) for v in values] for m in METRIC_NAMES})


def test_the_contrast_with_the_baseline_is_the_report_s_delta_against_it(tmp_path):
    three_rows(tmp_path)
    report = build_report(tmp_path, "dev", "baseline", "main", 1000, 0)
    row = next(r for r in report["rows"] if r["regularizer"] == "rdrop")["boot"]["main"]
    scored = finished_runs(discover_runs(tmp_path), tmp_path)
    (contrast,) = pairwise_contrasts(scored, ["rdrop", "baseline"], "dev", "main", 1000, 0)
    assert (contrast["delta"], contrast["ci_low"], contrast["ci_high"]) == (row["delta"], row["ci_low"], row["ci_high"])


def test_swapping_the_pair_flips_the_sign_and_every_pair_is_listed_once(tmp_path):
    three_rows(tmp_path)
    scored = finished_runs(discover_runs(tmp_path), tmp_path)
    forward = pairwise_contrasts(scored, ["random_replace", "rdrop", "baseline"], "dev", "main", 500, 0)
    assert [(c["a"], c["b"]) for c in forward] == [("random_replace", "rdrop"), ("random_replace", "baseline"),
                                                   ("rdrop", "baseline")]
    (backward,) = pairwise_contrasts(scored, ["rdrop", "random_replace"], "dev", "main", 500, 0)
    assert backward["delta"] == -forward[0]["delta"]
    assert backward["per_seed"] == [-d for d in forward[0]["per_seed"]]


def test_the_table_says_which_intervals_clear_zero(tmp_path):
    three_rows(tmp_path)
    text = report_contrasts(tmp_path, ["random_replace", "baseline"], "dev", {"main": "greedy"})
    assert text.startswith("**dev ROUGE-L, greedy**") and "| random_replace − baseline | 0, 1, 2 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| random_replace − baseline"))
    assert row.rstrip(" |").endswith("yes")  # a shift of 3 on every example
