"""Tests for seq2seq_rdrop.reporting (scripts/compare.py's report) on synthetic run files written in tmp_path.

Most tests build a report directory as the sweep drivers (seq2seq_rdrop.sweeps) leave it
(runs/<regularizer>_seed<S>/metrics.json, example_scores.json, eval_log.csv, train_log.csv,
diagnostics.json; bench_train.json; notes.md); one builds the older Hydra multirun layout
with predictions_*.tsv files. The pure statistics are in test_reporting_statistics.py.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, run_script
from seq2seq_rdrop.metrics import METRIC_NAMES, score_examples
from seq2seq_rdrop.reporting import OUTPUT_NAMES, CompareError, compare
from seq2seq_rdrop.reporting.problems import CUT_OFF, MISSING, UNFINISHED
from seq2seq_rdrop.reporting.statistics import hierarchical_bootstrap, paired_bootstrap

N_BOOT = 200


# --------------------------------------------------------------------------- builders


def _scores_of(per_example: dict) -> dict:
    """Corpus scores as training writes them: the mean of the per-example scores, plus n."""
    return {**{m: float(np.mean(per_example[m])) for m in METRIC_NAMES}, "n": len(per_example["rouge-l"])}


def _per_example(rng, n=12, shift=0.0) -> dict:
    return {m: [round(float(v), 2) for v in np.clip(rng.uniform(20, 80, n) + shift, 0, 100)] for m in METRIC_NAMES}


def make_run(root: Path, reg: str, seed: int, main: dict, beam: dict | None = None, curve=None,
             train_seconds=100.0, total_steps=300, diagnostics: dict | None = None) -> Path:
    """runs/<reg>_seed<seed>/ with the files run_comparison.py copies. main/beam: per-example dev scores."""
    d = root / "runs" / f"{reg}_seed{seed}"
    d.mkdir(parents=True)
    metrics = {"dev": _scores_of(main), "seed": seed, "regularizer": {"name": reg},
               "total_steps": total_steps, "kept": "last", "kept_step": total_steps,
               "train_seconds": train_seconds, "eval_seconds": 5.0, "decode": {"beam_size": 1},
               "data": {"dir": "data/csl", "train": 100, "dev": len(main["rouge-l"]), "test": 0},
               "model": {"family": "unilm", "parameters": 1000, "dropout": {"hidden": 0.1, "attention": 0.1}}}
    examples = {"dev": {"main": main}}
    if beam is not None:
        metrics["decodes"] = {"beam16": {"overrides": {"beam_size": 16, "no_repeat_ngram": 3}, "dev": _scores_of(beam)}}
        examples["dev"]["beam16"] = beam
    (d / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (d / "example_scores.json").write_text(json.dumps(examples), encoding="utf-8")
    curve = curve or [(50, 30.0), (total_steps, metrics["dev"]["rouge-l"])]
    with open(d / "eval_log.csv", "w", encoding="utf-8") as f:
        f.write("step,rouge-1,rouge-2,rouge-l,bleu,n,seconds\n")
        f.writelines(f"{s},0,0,{v},0,12,1.0\n" for s, v in curve)
    with open(d / "train_log.csv", "w", encoding="utf-8") as f:
        f.write("step,epoch,lr,loss,ce,kl,penalty,seconds\n")
        f.writelines(f"{s},0,0.001,1,1,0,0,{train_seconds * s / total_steps}\n" for s in range(10, total_steps + 1, 10))
    if diagnostics is not None:
        (d / "diagnostics.json").write_text(json.dumps({"runs": [{"measures": diagnostics}]}), encoding="utf-8")
    return d


def write_bench(root: Path, seconds_per_step: dict) -> None:
    (root / "bench_train.json").write_text(json.dumps({
        "seconds_per_step": seconds_per_step, "ratio_to_baseline": {}, "machine": "test box",
        "command": "python scripts/bench_train.py", "setup": ["batch 32"]}), encoding="utf-8")


def build(root: Path, **options) -> dict:
    """compare() of root with N_BOOT resamples; comparison.csv's rows by regularizer."""
    compare(root, n_boot=N_BOOT, log=lambda line: None, **options)
    with open(root / "comparison.csv", encoding="utf-8") as f:
        return {row["regularizer"]: row for row in csv.DictReader(f)}


def paired_sweep(root: Path, base_by_seed: dict, reg_by_seed: dict, reg="rdrop") -> dict:
    for s in sorted(base_by_seed):
        make_run(root, "baseline", s, base_by_seed[s])
        make_run(root, reg, s, reg_by_seed[s])
    return build(root)


# --------------------------------------------------------------------------- tables


def test_score_table_means_and_sds_are_numpy_mean_and_ddof1_sd_over_seeds(tmp_path):
    """Each main/beam16 metric's mean and sd in comparison.csv equal np.mean / np.std(ddof=1) of the
    seeds' metrics.json values; rows come in the fixed regularizer order, others last."""
    rng = np.random.default_rng(1)
    regs = ["rdrop", "zz_custom", "baseline", "grad_penalty", "random_replace_vocab", "random_replace"]
    written = {}
    for reg in regs:
        for seed in (0, 1, 2):
            main, beam = _per_example(rng), _per_example(rng)
            make_run(tmp_path, reg, seed, main, beam)
            written.setdefault(reg, []).append((_scores_of(main), _scores_of(beam)))
    rows = build(tmp_path)
    assert list(rows) == ["baseline", "random_replace", "random_replace_vocab", "grad_penalty", "rdrop", "zz_custom"]
    for reg in regs:
        assert rows[reg]["n_seeds"] == "3" and rows[reg]["seeds"] == "0;1;2"
        for i, decode in enumerate(("main", "beam16")):
            for m in METRIC_NAMES:
                values = [w[i][m] for w in written[reg]]
                assert float(rows[reg][f"{decode}_{m}_mean"]) == pytest.approx(np.mean(values), abs=1e-12)
                assert float(rows[reg][f"{decode}_{m}_sd"]) == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    rl = [w[0]["rouge-l"] for w in written["rdrop"]]
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert f"{np.mean(rl):.2f} ± {np.std(rl, ddof=1):.2f}" in md


def test_single_seed_has_empty_sd_cell(tmp_path):
    """With one seed the sample sd is undefined: an empty CSV cell and 'n/a' in the markdown, not 0."""
    make_run(tmp_path, "baseline", 0, _per_example(np.random.default_rng(0)))
    row = build(tmp_path)["baseline"]
    assert row["main_rouge-l_sd"] == "" and row["main_rouge-l_mean"] != ""
    assert "± n/a" in (tmp_path / "comparison.md").read_text(encoding="utf-8")


def test_published_rows_sit_beside_ours_with_their_delta(tmp_path):
    """random_replace and random_replace_vocab both map to the published 'random replacement' row;
    the published Δ is its R-L minus the published baseline's (64.44 - 63.81)."""
    rng = np.random.default_rng(2)
    for reg in ("baseline", "random_replace", "random_replace_vocab", "rdrop"):
        make_run(tmp_path, reg, 0, _per_example(rng))
    rows = build(tmp_path)
    for reg in ("random_replace", "random_replace_vocab"):
        assert rows[reg]["published_name"] == "random replacement"
        assert float(rows[reg]["published_delta_rouge-l"]) == pytest.approx(64.44 - 63.81)
    assert float(rows["rdrop"]["published_bleu"]) == 47.82
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert "## Published rows beside ours" in md and "published (greedy, CLGE csl val) R-Drop > " in md


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_delta_is_the_mean_paired_difference_and_its_ci_brackets_it(tmp_path):
    """Δ = mean over seeds of mean_i(R_i - B_i) on the same seed; the 95% CI contains Δ; CI and p
    equal hierarchical_bootstrap on the (seeds, examples) difference matrix, the example-only
    columns paired_bootstrap, and each seed's Δ is listed."""
    rng = np.random.default_rng(3)
    base = {s: _per_example(rng) for s in (0, 1, 2)}
    reg = {s: _per_example(rng, shift=5.0) for s in (0, 1, 2)}
    row = paired_sweep(tmp_path, base, reg)["rdrop"]
    diffs = np.array([np.array(reg[s]["rouge-l"]) - np.array(base[s]["rouge-l"]) for s in (0, 1, 2)])
    delta = float(np.mean([d.mean() for d in diffs]))
    assert float(row["main_delta_rouge-l"]) == pytest.approx(delta)
    assert float(row["main_ci_low"]) <= delta <= float(row["main_ci_high"])
    expected = hierarchical_bootstrap(diffs, N_BOOT, seed=0)
    for key in ("ci_low", "ci_high", "p_value"):
        assert float(row[f"main_{key}"]) == pytest.approx(expected[key])
    examples_only = paired_bootstrap(diffs, N_BOOT, seed=0)
    for key in ("ci_low", "ci_high", "p_value"):
        assert float(row[f"main_examples_only_{key}"]) == pytest.approx(examples_only[key])
    assert row["main_per_seed_delta"] == ";".join(f"{d.mean():.4f}" for d in diffs)
    assert row["main_bootstrap_seeds"] == "0;1;2" and row["main_n_examples"] == "12"


def test_regularizer_identical_to_baseline_gets_delta_zero_and_p_one(tmp_path):
    """Same per-example scores as the baseline on every seed: every difference is 0, so Δ = 0,
    CI = [0, 0], p = 1, for greedy and for beam16."""
    rng = np.random.default_rng(4)
    for s in (0, 1):
        main, beam = _per_example(rng), _per_example(rng)
        make_run(tmp_path, "baseline", s, main, beam)
        make_run(tmp_path, "grad_penalty", s, main, beam)
    row = build(tmp_path)["grad_penalty"]
    for decode in ("main", "beam16"):
        assert float(row[f"{decode}_delta_rouge-l"]) == 0.0
        assert float(row[f"{decode}_ci_low"]) == 0.0 == float(row[f"{decode}_ci_high"])
        assert float(row[f"{decode}_p_value"]) == 1.0


def test_every_example_improving_gives_ci_above_zero_and_small_p(tmp_path):
    """The regularizer beats the baseline by 10 on every example: Δ = 10, CI = [10, 10], p < 1/n_boot."""
    base = {s: {m: [20.0 + i for i in range(12)] for m in METRIC_NAMES} for s in (0, 1)}
    reg = {s: {m: [30.0 + i for i in range(12)] for m in METRIC_NAMES} for s in (0, 1)}
    row = paired_sweep(tmp_path, base, reg)["rdrop"]
    assert float(row["main_delta_rouge-l"]) == pytest.approx(10.0)
    assert float(row["main_ci_low"]) == pytest.approx(10.0) and float(row["main_p_value"]) == 0.0


def unequal_pair(root: Path) -> None:
    rng = np.random.default_rng(6)
    make_run(root, "baseline", 0, _per_example(rng, n=12))
    make_run(root, "rdrop", 0, _per_example(rng, n=11))


def test_unequal_example_counts_are_an_error(tmp_path):
    """A paired comparison needs the same examples: per-example lists of different length stop the report."""
    unequal_pair(tmp_path)
    with pytest.raises(CompareError, match="same examples"):
        compare(tmp_path, n_boot=20, log=lambda line: None)


def test_the_script_says_why_it_cannot_compare_and_exits_2(tmp_path):
    """scripts/compare.py with every option: the CompareError's message on stderr, exit status 2, no report.
    PYTHONPATH: the package of this checkout, installed or not."""
    unequal_pair(tmp_path)
    done = run_script("scripts/compare.py", str(tmp_path), "--split", "dev", "--baseline", "baseline",
                      "--decode", "main", "--n-boot", "20", "--seed", "1", env={"PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "same examples" in done.stderr
    assert not (tmp_path / "comparison.md").exists()


# --------------------------------------------------------------------------- time


def test_equal_time_table_reads_each_curve_at_the_baselines_compute(tmp_path):
    """bench: baseline 1.0 s/step for 300 steps, rdrop 2.5 s/step -> 120 equivalent steps; seed 0's curve
    gives 28 there (20 + 0.4 × (40 - 20)), seed 1's 38; mean 33, sd = np.std([28, 38], ddof=1).
    random_replace at 0.5 s/step would reach 600 steps: capped at its last evaluation (300).
    The time ratio is s/step × steps over the baseline's."""
    rng = np.random.default_rng(7)
    write_bench(tmp_path, {"baseline": 1.0, "rdrop": 2.5, "random_replace": 0.5})
    for s in (0, 1):
        make_run(tmp_path, "baseline", s, _per_example(rng), curve=[(50, 10.0), (300, 50.0)])
        make_run(tmp_path, "random_replace", s, _per_example(rng), curve=[(50, 10.0), (300, 55.0 + s)])
    make_run(tmp_path, "rdrop", 0, _per_example(rng), curve=[(50, 10.0), (100, 20.0), (150, 40.0), (300, 60.0)])
    make_run(tmp_path, "rdrop", 1, _per_example(rng), curve=[(50, 10.0), (100, 30.0), (150, 50.0), (300, 60.0)])
    rows = build(tmp_path)
    rd = rows["rdrop"]
    assert float(rd["equal_time_steps"]) == pytest.approx(120.0)
    assert float(rd["equal_time_rouge-l_mean"]) == pytest.approx(33.0)
    assert float(rd["equal_time_rouge-l_sd"]) == pytest.approx(np.std([28.0, 38.0], ddof=1))
    assert float(rd["train_time_ratio"]) == pytest.approx(2.5) and rd["seconds_per_step_source"] == "bench"
    rr = rows["random_replace"]
    assert float(rr["equal_time_steps"]) == pytest.approx(600.0) and rr["equal_time_flags"] == "capped"
    assert float(rr["equal_time_rouge-l_mean"]) == pytest.approx(55.5)
    assert float(rows["baseline"]["equal_time_rouge-l_mean"]) == pytest.approx(50.0)
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert "not the same as a shorter run with its own annealed schedule" in md and "test box" in md



def _select_on_val(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    metrics.update(kept="best", selected_on="val")
    (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")


def test_runs_that_keep_their_best_validation_step_are_read_at_equal_time_by_that_rule(tmp_path):
    """Selected on val: rdrop at 2.5 s/step gets 120 of its steps in the baseline's 300 x 1.0 s; the weights
    it would have kept by then are its best evaluation at or before step 120 (seed 0: 35 at step 50, not the
    interpolated 20 + 0.4 x (40 - 20) = 28), and the baseline's row is the best of its whole run (50 at step
    100, not its last evaluation, 45)."""
    rng = np.random.default_rng(14)
    write_bench(tmp_path, {"baseline": 1.0, "rdrop": 2.5})
    _select_on_val(make_run(tmp_path, "baseline", 0, _per_example(rng), curve=[(50, 10.0), (100, 50.0), (300, 45.0)]))
    _select_on_val(make_run(tmp_path, "rdrop", 0, _per_example(rng),
                            curve=[(50, 35.0), (100, 20.0), (150, 40.0), (300, 60.0)]))
    rows = build(tmp_path)
    assert float(rows["rdrop"]["equal_time_steps"]) == pytest.approx(120.0)
    assert float(rows["rdrop"]["equal_time_rouge-l_mean"]) == pytest.approx(35.0)
    assert float(rows["baseline"]["equal_time_rouge-l_mean"]) == pytest.approx(50.0)
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert "the best evaluation at or before that step" in md and "annealed schedule" not in md

def test_without_bench_the_cost_comes_from_run_wall_times_and_is_flagged(tmp_path):
    """No bench_train.json: s/step = train_seconds / total_steps, the ratio is mean train_seconds over the
    baseline's, and the markdown marks those values as shared-machine wall times (†)."""
    rng = np.random.default_rng(8)
    make_run(tmp_path, "baseline", 0, _per_example(rng), train_seconds=300.0)
    make_run(tmp_path, "rdrop", 0, _per_example(rng), train_seconds=660.0)
    rows = build(tmp_path)
    assert float(rows["rdrop"]["seconds_per_step"]) == pytest.approx(2.2)
    assert float(rows["rdrop"]["train_time_ratio"]) == pytest.approx(2.2)
    assert rows["rdrop"]["seconds_per_step_source"] == "runs"
    assert "wall times of a shared machine" in (tmp_path / "comparison.md").read_text(encoding="utf-8")


def test_cost_per_step_on_each_hardware_reads_the_benchmarks_cost_sources_names_with_ratios_in_the_same_benchmark(tmp_path):
    """cost_sources.yaml names bench_train.json files elsewhere (one home per figure): each method's median
    s/step on each hardware, its ratio to the baseline of the same benchmark, "not measured" where absent."""
    rng = np.random.default_rng(9)
    for reg in ("baseline", "rdrop", "grad_penalty"):
        make_run(tmp_path / "report", reg, 0, _per_example(rng))
    for name, sps in (("cpu", {"baseline": 2.0, "rdrop": 4.2, "grad_penalty": 4.6}),
                      ("gpu", {"baseline": 0.02, "rdrop": 0.0206})):
        (tmp_path / name).mkdir()
        write_bench(tmp_path / name, sps)
    (tmp_path / "report" / "cost_sources.yaml").write_text("cpu box: ../cpu/bench_train.json\n"
                                                           "gpu box: ../gpu/bench_train.json\n")
    build(tmp_path / "report")
    text = (tmp_path / "report" / "comparison.md").read_text(encoding="utf-8")
    assert "| method | cpu box: s/step (ratio) | gpu box: s/step (ratio) |" in text
    assert "| rdrop | 4.2 (2.10×) | 0.0206 (1.03×) |" in text
    assert "| grad_penalty | 4.6 (2.30×) | not measured |" in text
    (tmp_path / "report" / "cost_sources.yaml").write_text("cpu box: ../nowhere/bench_train.json\n")
    with pytest.raises(CompareError, match="cost_sources.yaml: cpu box: ../nowhere/bench_train.json: no such file"):
        build(tmp_path / "report")


# --------------------------------------------------------------------------- diagnostics, grid, notes


def test_diagnostics_table_gives_mean_and_sd_of_every_measure(tmp_path):
    """diagnostics.json runs[0].measures: each measure's mean ± sd over seeds, per regularizer."""
    rng = np.random.default_rng(9)
    for s, (gap, kl) in enumerate([(1.0, 0.5), (3.0, 0.7)]):
        make_run(tmp_path, "baseline", s, _per_example(rng), diagnostics={"dropout_gap": gap, "kl": kl})
    rows = build(tmp_path)
    assert float(rows["baseline"]["diag_dropout_gap_mean"]) == pytest.approx(2.0)
    assert float(rows["baseline"]["diag_kl_sd"]) == pytest.approx(np.std([0.5, 0.7], ddof=1))
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert "## Diagnostics" in md and f"| dropout_gap | 2.0000 ± {np.std([1.0, 3.0], ddof=1):.4f} |" in md



def test_diagnostics_table_names_the_seeds_each_mean_is_over(tmp_path):
    """A seed fine-tuned without diagnostics (run_comparison --no-diagnostics) is left out of the means and the
    table says which seeds were measured: seed 1 has none, so the mean is seed 0's and seed 2's."""
    rng = np.random.default_rng(11)
    for s, diagnostics in enumerate([{"kl": 0.5}, None, {"kl": 0.9}]):
        make_run(tmp_path, "baseline", s, _per_example(rng), diagnostics=diagnostics)
    rows = build(tmp_path)
    assert float(rows["baseline"]["diag_kl_mean"]) == pytest.approx(0.7)
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert "| seeds measured | 0 2 |" in md and f"| kl | 0.7000 ± {np.std([0.5, 0.9], ddof=1):.4f} |" in md

def test_missing_and_unfinished_runs_are_listed_in_the_grid(tmp_path):
    """rdrop seed 2 has no directory and rdrop seed 1 no metrics.json: the grid says 'missing' and
    'unfinished', the list names them, and neither counts as a seed."""
    rng = np.random.default_rng(10)
    for s in (0, 1, 2):
        make_run(tmp_path, "baseline", s, _per_example(rng))
    make_run(tmp_path, "rdrop", 0, _per_example(rng))
    (tmp_path / "runs" / "rdrop_seed1").mkdir()
    (tmp_path / "runs" / "rdrop_seed1" / "train_log.csv").write_text("step,seconds\n10,1.0\n", encoding="utf-8")
    rows = build(tmp_path)
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    section = md.split("## Runs: regularizer × seed", 1)[1]
    assert "| rdrop | ok | unfinished | missing |" in section
    assert f"| rdrop | 1 | {UNFINISHED} | `runs/rdrop_seed1` |" in section
    assert f"| rdrop | 2 | {MISSING} | - |" in section
    assert rows["rdrop"]["n_seeds"] == "1" and rows["rdrop"]["main_bootstrap_seeds"] == "0"
    assert MISSING in rows["rdrop"]["missing_or_unfinished"]


def cut_off_run(root: Path, reg: str, seed: int, keep="last", last_step=300, rouge_l=41.5) -> None:
    """A run dir as a run killed during its final decodings leaves it: config, logs, no metrics.json."""
    d = root / "runs" / f"{reg}_seed{seed}"
    d.mkdir(parents=True)
    (d / "config_resolved.yaml").write_text(yaml.safe_dump({"trainer": {"keep": keep, "max_steps": 300},
                                                            "decode": {"beam_size": 1}}), encoding="utf-8")
    (d / "eval_log.csv").write_text("step,rouge-1,rouge-2,rouge-l,bleu,n,seconds\n50,30,20,28.0,10,12,1.0\n"
                                    f"{last_step},44.25,30.5,{rouge_l},20.75,12,1.0\n", encoding="utf-8")


def test_a_run_cut_off_in_its_final_decodings_scores_from_its_eval_log(tmp_path):
    """keep=last and eval_log.csv at max_steps: the final weights' dev scores are that row, the run counts
    as a seed (no bootstrap) and is listed as cut off. Stopped earlier, or keep=best: still unfinished."""
    rng = np.random.default_rng(11)
    for s in (0, 1, 2, 3):
        make_run(tmp_path, "baseline", s, _per_example(rng))
    cut_off_run(tmp_path, "rdrop", 0, rouge_l=41.5)
    cut_off_run(tmp_path, "rdrop", 1, rouge_l=43.5)
    cut_off_run(tmp_path, "rdrop", 2, last_step=250)
    cut_off_run(tmp_path, "rdrop", 3, keep="best")
    rows = build(tmp_path)
    assert rows["rdrop"]["n_seeds"] == "2" and rows["rdrop"]["main_bootstrap_seeds"] == ""  # no seed paired
    assert float(rows["rdrop"]["main_rouge-l_mean"]) == pytest.approx(42.5)
    assert float(rows["rdrop"]["main_bleu_mean"]) == pytest.approx(20.75)
    section = (tmp_path / "comparison.md").read_text(encoding="utf-8").split("## Runs: regularizer × seed", 1)[1]
    assert "| rdrop | ok* | ok* | unfinished | unfinished |" in section
    assert f"| rdrop | 0 | {CUT_OFF} | `runs/rdrop_seed0` |" in section


def test_markdown_copies_notes_and_names_the_method(tmp_path):
    """notes.md appears verbatim under the title; the method names the split, n-boot, the decodings,
    the final weights, the resampling of seeds and examples and the Holm adjustment."""
    notes = "Command: `python scripts/run_comparison.py`\n\nMachine: 2 CPU cores | dates 1-2 Dec."
    (tmp_path / "notes.md").write_text(notes + "\n", encoding="utf-8")
    rng = np.random.default_rng(11)
    make_run(tmp_path, "baseline", 0, _per_example(rng), _per_example(rng))
    make_run(tmp_path, "rdrop", 0, _per_example(rng), _per_example(rng))
    build(tmp_path, decode="beam16")
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert md.startswith("# Regularizer comparison\n\n" + notes + "\n")
    assert "Split: **dev**" in md and f"{N_BOOT} resamples" in md and "kept = last" in md
    assert "main = greedy; beam16 = beam_size 16, no_repeat_ngram 3" in md
    assert "draws the paired seeds with replacement and the example indices" in md
    assert "Holm's step-down adjustment over all 2 comparisons" in md


def test_two_builds_are_byte_identical_and_name_no_absolute_path(tmp_path):
    """Building twice gives the same bytes in all four outputs (PNGs included), and no output
    names the absolute directory."""
    rng = np.random.default_rng(12)
    write_bench(tmp_path, {"baseline": 1.0, "rdrop": 2.0})
    for s in (0, 1):
        for reg in ("baseline", "rdrop"):
            make_run(tmp_path, reg, s, _per_example(rng), _per_example(rng),
                     curve=[(50, 20.0 + s), (150, 30.0 + s), (300, 40.0 + s)], diagnostics={"m": float(s)})
    build(tmp_path)
    first = {n: (tmp_path / n).read_bytes() for n in OUTPUT_NAMES}
    build(tmp_path)
    for name in OUTPUT_NAMES:
        assert (tmp_path / name).read_bytes() == first[name], name
    assert first["comparison.png"].startswith(b"\x89PNG") and first["curves.png"].startswith(b"\x89PNG")
    for name in ("comparison.md", "comparison.csv"):
        assert str(tmp_path) not in first[name].decode("utf-8")


# --------------------------------------------------------------------------- old layout


REFS = ["深度学习方法", "中文标题生成", "正则化对比", "随机替换实验", "梯度惩罚研究", "一致性训练"]


def make_hydra_run(root: Path, job: int, reg: str, seed: int, preds: list[str] | None) -> None:
    """A Hydra job directory of `train.py +experiment=compare`; preds None: the run never finished."""
    d = root / str(job)
    (d / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "regularizer": {"name": reg}}
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"regularizer={reg}", f"seed={seed}"]), encoding="utf-8")
    if preds is None:
        return
    (d / "predictions_dev.tsv").write_text("".join(f"{r}\t{p}\n" for r, p in zip(REFS, preds)), encoding="utf-8")
    scores = score_examples(REFS, preds)
    metrics = {"dev": {**{m: float(np.mean(v)) for m, v in scores.items()}, "n": len(preds)},
               "seed": seed, "train_seconds": 100.0, "total_steps": 400, "kept": "best", "kept_step": 400,
               "regularizer": {"name": reg}, "decode": {"beam_size": 1}}
    (d / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")


def test_old_hydra_multirun_with_prediction_files_still_works(tmp_path):
    """Per-example scores come from predictions_dev.tsv via score_examples: Δ is the mean paired
    ROUGE-L difference; multirun.yaml's grid lists the seed that never ran and the unfinished job."""
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"overrides": {"task": ["regularizer=baseline,rdrop", "seed=range(0,3)"]}}}), encoding="utf-8")
    base = [r[: max(1, len(r) // 2)] for r in REFS]
    make_hydra_run(tmp_path, 0, "baseline", 0, base)
    make_hydra_run(tmp_path, 1, "baseline", 1, base)
    make_hydra_run(tmp_path, 2, "rdrop", 0, list(REFS))
    make_hydra_run(tmp_path, 3, "rdrop", 1, None)
    rows = build(tmp_path)
    gain = np.array(score_examples(REFS, REFS)["rouge-l"]) - np.array(score_examples(REFS, base)["rouge-l"])
    assert float(rows["rdrop"]["main_delta_rouge-l"]) == pytest.approx(gain.mean())
    assert float(rows["rdrop"]["main_ci_low"]) > 0 and rows["rdrop"]["main_n_examples"] == str(len(REFS))
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert f"| rdrop | 1 | {UNFINISHED} | `3` |" in md
    assert f"| baseline | 2 | {MISSING} | - |" in md and f"| rdrop | 2 | {MISSING} | - |" in md
    assert "kept = best" in md and "no eval_log.csv" in md


def test_a_report_directory_reads_its_own_runs_and_not_those_of_a_sub_report(tmp_path):
    """compare_converged/horizon/runs/baseline_seed0 beside compare_converged/runs/baseline_seed0: the report of
    the parent sees one baseline run, not two."""
    rng = np.random.default_rng(12)
    make_run(tmp_path, "baseline", 0, _per_example(rng))
    make_run(tmp_path, "rdrop", 0, _per_example(rng))
    make_run(tmp_path / "horizon", "baseline", 0, _per_example(rng))
    rows = build(tmp_path)
    assert rows["baseline"]["n_seeds"] == "1"


@pytest.mark.parametrize("selected_on, says", [
    ("val", "the best validation score (metrics.json kept = best, selected_on = val; steps 300): dev chose nothing"),
    (None, "the best dev score (metrics.json kept = best; steps 300): dev scores are then selected on dev"),
])
def test_the_method_says_which_split_chose_the_kept_step(tmp_path, selected_on, says):
    rng = np.random.default_rng(12)
    for reg in ("baseline", "rdrop"):
        run = make_run(tmp_path, reg, 0, _per_example(rng))
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        metrics.update(kept="best", **({"selected_on": selected_on} if selected_on else {}))
        (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    build(tmp_path)
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert says in md
    assert ("| val R-L | note |" in md) == (selected_on == "val")


def test_a_report_without_comparisons_says_there_is_no_p_to_adjust(tmp_path):
    make_run(tmp_path, "baseline", 0, _per_example(np.random.default_rng(13)))
    build(tmp_path)
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert "there is no p to adjust (Holm)" in md and "over all 0 comparisons" not in md


def test_word_level_rouge_is_a_secondary_table_of_the_seeds_that_recorded_it_and_absent_for_older_runs(tmp_path):
    """Runs whose metrics.json holds word_rouge (secondary) get its mean ± sd in its own table; the
    character tables, the CSV and the Δs do not change, and a report of older runs has no such table."""
    rng = np.random.default_rng(3)
    for seed in (0, 1):
        make_run(tmp_path, "baseline", seed, _per_example(rng))
    build(tmp_path)
    older = {name: (tmp_path / name).read_bytes() for name in ("comparison.md", "comparison.csv")}
    assert b"Word-level ROUGE" not in older["comparison.md"]
    for seed, word_l in ((0, 30.0), (1, 34.0)):
        path = tmp_path / "runs" / f"baseline_seed{seed}" / "metrics.json"
        metrics = json.loads(path.read_text(encoding="utf-8"))
        metrics["word_rouge"] = {"note": "secondary", "dev": {"main": {"word-rouge-1": 40.0, "word-rouge-2": 20.0,
                                                                       "word-rouge-l": word_l, "n": 12}}}
        path.write_text(json.dumps(metrics), encoding="utf-8")
    build(tmp_path)
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert "## Word-level ROUGE on dev (secondary): main" in md
    assert "| baseline | 2 (0, 1) | 40.00 ± 0.00 | 20.00 ± 0.00 | 32.00 ± 2.83 |" in md
    assert (tmp_path / "comparison.csv").read_bytes() == older["comparison.csv"]
    without = md.replace(md[md.index("## Word-level ROUGE"):md.index("## Paired bootstrap")], "")
    assert without.encode("utf-8") == older["comparison.md"]


# --------------------------------------------------------------------------- nothing replaced with nothing (issue 39)


def small_sweep(root: Path) -> None:
    rng = np.random.default_rng(3)
    for s in (0, 1):
        for reg in ("baseline", "rdrop"):
            make_run(root, reg, s, _per_example(rng), curve=[(50, 20.0 + s), (300, 40.0 + s)], diagnostics={"m": 1.0})


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("layout", ["no_runs", "only_unfinished"])
def test_a_directory_without_finished_runs_is_refused_in_one_line_and_touched_not(tmp_path, layout):
    """compare.py on a directory without run files used to replace comparison.md with '0 finished of 0' and
    comparison.csv with 0 bytes."""
    (tmp_path / "comparison.md").write_text("# my notes, not a report\n", encoding="utf-8")
    (tmp_path / "comparison.csv").write_text("regularizer\nbaseline\n", encoding="utf-8")
    if layout == "only_unfinished":
        (tmp_path / "runs" / "baseline_seed0").mkdir(parents=True)
    before = snapshot(tmp_path)
    done = run_script("scripts/compare.py", str(tmp_path), env={"PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    reason = "no run files" if layout == "no_runs" else "none of its 1 run directories has finished"
    assert done.stderr.startswith(f"error: {tmp_path}: {reason}") and "nothing written" in done.stderr
    assert snapshot(tmp_path) == before


def test_a_failed_write_keeps_every_previous_output_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    """The four outputs are written to temporary files and renamed together: a full disk while drawing the
    last figure replaces none of them."""
    import errno

    from seq2seq_rdrop.reporting import comparison

    small_sweep(tmp_path)
    build(tmp_path)
    before = snapshot(tmp_path)
    make_run(tmp_path, "rdrop", 2, _per_example(np.random.default_rng(9)))  # the next build would differ

    def full_disk(path, report):
        Path(path).write_bytes(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(comparison, "write_curves", full_disk)
    with pytest.raises(CompareError) as info:
        compare(tmp_path, n_boot=N_BOOT, log=lambda line: None)
    assert str(info.value) == f"cannot write the report into {tmp_path}: No space left on device; its previous files are kept"
    after = snapshot(tmp_path)
    assert {name: after[name] for name in OUTPUT_NAMES} == {name: before[name] for name in OUTPUT_NAMES}
    assert not [name for name in after if ".tmp" in name]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


DAMAGED_RUN_FILES = {  # file of runs/rdrop_seed1 -> (how it is damaged, what the error says)
    "metrics.json": (_truncate, "not valid JSON"),
    "example_scores.json": (_truncate, "not valid JSON"),
    "diagnostics.json": (lambda p: p.write_text("[1, 2]"), "a JSON list, not the object it should hold"),
    "eval_log.csv": (lambda p: p.write_text("step,rouge-l\nx\x00y,3\n"), "a row without its step or rouge-l number"),
}


@pytest.mark.parametrize("name", sorted(DAMAGED_RUN_FILES))
def test_a_damaged_run_file_is_named_in_one_line_and_the_report_kept(tmp_path, name):
    """A copy cut short by a full disk left a truncated run file: its path and what is wrong, not a traceback."""
    small_sweep(tmp_path)
    build(tmp_path)
    before = snapshot(tmp_path)
    damage, says = DAMAGED_RUN_FILES[name]
    bad = tmp_path / "runs" / "rdrop_seed1" / name
    damage(bad)
    with pytest.raises(CompareError) as info:
        compare(tmp_path, n_boot=N_BOOT, log=lambda line: None)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{bad}: {says}") and "the file is damaged" in message
    after = snapshot(tmp_path)
    assert {n: after[n] for n in OUTPUT_NAMES} == {n: before[n] for n in OUTPUT_NAMES}


def test_compare_py_names_a_truncated_run_file_in_one_line(tmp_path):
    small_sweep(tmp_path)
    bad = tmp_path / "runs" / "baseline_seed0" / "example_scores.json"
    _truncate(bad)
    done = run_script("scripts/compare.py", str(tmp_path), "--n-boot", "20", env={"PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"error: {bad}: not valid JSON (")
    assert not (tmp_path / "comparison.md").exists()
