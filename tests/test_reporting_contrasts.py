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


def write_protocol(root, family=("random_replace", "rdrop")):
    (root / "protocol.yaml").write_text(
        "primary_endpoint: {split: dev, decode: main, metric: rouge-l}\n"
        "secondary_endpoints: [{split: dev, decode: beam16, metric: rouge-l}]\n"
        f"family: [{', '.join(family)}]\nreference_row: baseline\n", encoding="utf-8")


def test_a_declared_protocol_confines_holm_to_its_family_and_lists_its_pairwise_contrasts(tmp_path):
    from seq2seq_rdrop.reporting import compare

    three_rows(tmp_path)
    write_protocol(tmp_path, family=("rdrop",))
    report = compare(tmp_path, n_boot=200, log=lambda line: None)
    assert report["n_comparisons"] == 1
    holm = {r["regularizer"]: r["boot"]["main"]["p_holm"] for r in report["rows"]}
    assert holm["rdrop"] == holm["rdrop"] and holm["random_replace"] != holm["random_replace"]  # NaN: not in the family
    assert [(c["a"], c["b"]) for c in report["contrasts"]["main"]] == [("rdrop", "baseline")]
    text = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert text.index("## Declared before the runs") < text.index("## Summary")
    assert "Holm's step-down adjustment runs over the declared family alone (1 comparisons" in text
    assert "## Pairwise contrasts" in text and "| rdrop − baseline |" in text


def test_without_a_protocol_holm_covers_every_comparison_as_before(tmp_path):
    from seq2seq_rdrop.reporting import compare

    three_rows(tmp_path)
    report = compare(tmp_path, n_boot=200, log=lambda line: None)
    assert report["n_comparisons"] == 2 and report["contrasts"] == {}
    assert "## Declared before the runs" not in (tmp_path / "comparison.md").read_text(encoding="utf-8")


def test_a_protocol_file_missing_its_declarations_is_refused_naming_it(tmp_path):
    import pytest

    from seq2seq_rdrop.reporting import CompareError, compare

    three_rows(tmp_path)
    (tmp_path / "protocol.yaml").write_text("family: [rdrop]\n", encoding="utf-8")
    with pytest.raises(CompareError, match=r"protocol.yaml: not a declared protocol \(missing primary_endpoint"):
        compare(tmp_path, n_boot=50, log=lambda line: None)
