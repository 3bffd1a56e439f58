"""The sweep drivers (seq2seq_rdrop.sweeps, behind scripts/run_comparison.py and scripts/run_semi_supervised.py):
one pretraining per seed shared by every row, the same experiment and step budget for all, finished runs
skipped, small run files copied, the report rebuilt in-process. `run` is replaced by a fake that writes what
train.py / pretrain.py / diagnose.py would, and `rebuild_report` by one that records its calls."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from seq2seq_rdrop import sweep_runs, sweeps
from seq2seq_rdrop.regularizer_names import SEMI_SUPERVISED_ROWS
from seq2seq_rdrop.reporting import OUTPUT_NAMES

OWN_DROPOUT = 0.3  # the fake checkpoints' own dropout rate unless a test changes it


def fake_run(calls: list):
    """A stand-in for sweeps.run that records the command and writes the files its process would."""
    def run(command, log_file):
        calls.append(command)
        options = dict(part.split("=", 1) for part in command if "=" in part and not part.startswith("--"))
        if command[0] == "scripts/diagnose.py":
            out = Path(command[2].split("=", 1)[1])
            out.mkdir(parents=True, exist_ok=True)
            rate = float(next((c.split("=")[1] for c in command if c.startswith("--dropout=")), OWN_DROPOUT))
            rates = {"hidden": rate, "attention": rate}
            (out / "diagnostics.json").write_text(json.dumps({"runs": [{"dropout": rates, "measures": {}}]}))
            return 0
        out = Path(options["hydra.run.dir"])
        (out / "checkpoint").mkdir(parents=True, exist_ok=True)
        for name in ("metrics.json", "example_scores.json", "eval_log.csv", "train_log.csv"):
            (out / name).write_text("{}")
        (out / "model.safetensors").write_text("weights")  # must never be copied to the report
        return 0

    return run


@pytest.fixture
def driver(monkeypatch):
    """(calls, reports): the commands the sweep ran and the (report_dir, baseline) of each report rebuilt."""
    calls, reports = [], []
    monkeypatch.setattr(sweep_runs, "run", fake_run(calls))
    monkeypatch.setattr(sweeps, "rebuild_report",
                        lambda report, baseline="baseline": reports.append((report, baseline)) or 0)
    return calls, reports


def run_comparison(argv) -> int:
    """What `python scripts/run_comparison.py ARGV` does."""
    return sweeps.run_comparison(*sweeps.comparison_arguments(argv, "scripts/run_comparison.py"))


def run_semi_supervised(argv) -> int:
    """What `python scripts/run_semi_supervised.py ARGV` does."""
    return sweeps.run_semi_supervised(*sweeps.semi_supervised_arguments(argv, "scripts/run_semi_supervised.py"))


def test_one_pretraining_per_seed_and_the_same_experiment_for_every_regularizer(driver, tmp_path):
    calls, reports = driver
    args = ["--seeds", "0", "1", "--regularizers", "baseline", "rdrop",
            f"--work-dir={tmp_path / 'work'}", f"--report-dir={tmp_path / 'report'}", "data.test_file=test.tsv"]
    assert run_comparison(args) == 0
    pretrains = [c for c in calls if c[0] == "pretrain.py"]
    trains = [c for c in calls if c[0] == "train.py"]
    assert [c[1] for c in pretrains] == ["seed=0", "seed=1"]
    assert len(trains) == 4 and all("+experiment=compare_strong" in c and "data.test_file=test.tsv" in c for c in trains)
    for command in trains:
        seed = next(p for p in command if p.startswith("seed=")).split("=")[1]
        assert f"model.pretrained={tmp_path / 'work'}/pretrain_seed{seed}/checkpoint" in command
    kept = tmp_path / "report" / "runs" / "rdrop_seed1"
    assert sorted(p.name for p in kept.iterdir()) == sorted([*sweep_runs.RUN_FILES, "diagnostics.json"])
    assert reports == [(tmp_path / "report", "baseline")]


def test_a_finished_run_is_skipped_on_a_rerun(driver, tmp_path):
    calls, _ = driver
    args = ["--seeds", "0", "--regularizers", "baseline", f"--work-dir={tmp_path / 'w'}",
            f"--report-dir={tmp_path / 'r'}"]
    run_comparison(args)
    calls.clear()
    (tmp_path / "w" / "pretrain_seed0" / "metrics.json").write_text("{}")
    assert run_comparison(args) == 0
    assert calls == []  # pretraining, fine-tuning and diagnostics all already done


def test_no_diagnostics_defers_them_to_a_later_rerun(driver, tmp_path):
    calls, _ = driver
    args = ["--seeds", "0", "--regularizers", "baseline", f"--work-dir={tmp_path / 'w'}", f"--report-dir={tmp_path / 'r'}"]
    run_comparison([*args, "--no-diagnostics"])
    assert not any(c[0] == "scripts/diagnose.py" for c in calls)
    assert not (tmp_path / "r" / "runs" / "baseline_seed0" / "diagnostics.json").exists()
    calls.clear()
    run_comparison(args)
    assert [c[0] for c in calls] == ["scripts/diagnose.py"]  # the fine-tune is not repeated
    assert (tmp_path / "r" / "runs" / "baseline_seed0" / "diagnostics.json").is_file()


def test_a_work_dir_reached_through_a_symbolic_link_stays_a_repository_path(tmp_path, monkeypatch):
    """No machine path in the run files: outputs/sweeps linked to another disk is still passed on as
    outputs/sweeps/..., not as the link's target."""
    repo, disk = tmp_path / "repo", tmp_path / "disk"
    (repo / "outputs").mkdir(parents=True)
    disk.mkdir()
    (repo / "outputs" / "sweeps").symlink_to(disk, target_is_directory=True)
    monkeypatch.setattr(sweeps, "REPO", repo)
    assert sweeps.repository_path(Path("outputs/sweeps/semi_supervised")) == Path("outputs/sweeps/semi_supervised")
    assert sweeps.repository_path(repo / "outputs/sweeps/x/../semi") == Path("outputs/sweeps/semi")
    assert sweeps.repository_path(tmp_path / "elsewhere") == tmp_path / "elsewhere"


@pytest.mark.parametrize("own, diagnose_runs", [(0.3, 2), (0.1, 1)])
def test_the_common_dropout_is_measured_only_where_it_differs_from_the_checkpoints_own(
        driver, tmp_path, monkeypatch, own, diagnose_runs):
    """compare_converged diagnoses every checkpoint at its own dropout and at the common 0.1; a checkpoint
    trained at 0.1 gives the same measures twice (same weights, rates and seed), so its first file is copied."""
    calls, _ = driver
    monkeypatch.setattr(sys.modules[__name__], "OWN_DROPOUT", own)
    args = ["--experiment", "compare_converged", "--seeds", "0", "--regularizers", "baseline",
            f"--work-dir={tmp_path / 'w'}", f"--report-dir={tmp_path / 'r'}"]
    assert run_comparison(args) == 0
    assert sum(c[0] == "scripts/diagnose.py" for c in calls) == diagnose_runs
    kept = tmp_path / "r" / "runs" / "baseline_seed0"
    common = json.loads((kept / "diagnostics_dropout0.1.json").read_text())["runs"][0]["dropout"]
    assert common == {"hidden": 0.1, "attention": 0.1}


def test_the_horizon_trains_the_baseline_alone_long_and_builds_no_sweep_report(driver, tmp_path):
    """--horizon-steps N --patience P: per seed the baseline, with trainer.max_steps=N and trainer.patience=P,
    into REPORT_DIR/horizon/, without diagnostics; the pretraining leaves the experiment's validation split out."""
    calls, reports = driver
    args = ["--experiment", "compare_converged", "--horizon-steps", "3000", "--patience", "8", "--seeds", "0",
            f"--work-dir={tmp_path / 'w'}", f"--report-dir={tmp_path / 'r'}"]
    assert run_comparison(args) == 0
    (pretrain,), (train,) = [c for c in calls if c[0] == "pretrain.py"], [c for c in calls if c[0] == "train.py"]
    assert any(p.startswith("data.val_size=") for p in pretrain)
    assert "regularizer=baseline" in train and "+experiment=compare_converged" in train
    assert "trainer.max_steps=3000" in train and "trainer.patience=8" in train
    assert (tmp_path / "r" / "horizon" / "runs" / "baseline_seed0" / "metrics.json").is_file()
    assert not any(c[0] == "scripts/diagnose.py" for c in calls) and reports == []


def test_the_semi_supervised_driver_pretrains_without_the_withheld_titles_and_fine_tunes_every_row(driver, tmp_path):
    calls, reports = driver
    args = ["--seeds", "0", "1", f"--work-dir={tmp_path / 'w'}", f"--report-dir={tmp_path / 'r'}", "--no-diagnostics"]
    assert run_semi_supervised(args) == 0
    pretrains = [c for c in calls if c[0] == "pretrain.py"]
    trains = [c for c in calls if c[0] == "train.py"]
    assert len(pretrains) == 2 and all("pretrain.train_titles=500" in c for c in pretrains)
    assert len(trains) == 2 * len(SEMI_SUPERVISED_ROWS) and all("+experiment=semi_supervised" in c for c in trains)
    assert {next(p for p in c if p.startswith("regularizer=")) for c in trains} == \
        {f"regularizer={r}" for r in SEMI_SUPERVISED_ROWS}
    assert reports == [(tmp_path / "r", "rdrop")]
    assert (tmp_path / "r" / "runs" / "rdrop_semi_seed1" / "metrics.json").is_file()
    assert "first 500 pairs" in (tmp_path / "r" / "notes.md").read_text()
    calls.clear()
    assert run_semi_supervised([*args, "data.max_train_samples=300", "data.dir=/elsewhere"]) == 0  # all finished
    assert calls == []
    assert sweeps.semi_supervised_pretrain_overrides(["data.max_train_samples=300", "data.dir=/x", "trainer.lr=1"],
                                                     300) == ("pretrain.train_titles=300", "data.dir=/x")
    assert sweeps.labeled_pairs(["data.max_train_samples=300"]) == 300 and sweeps.labeled_pairs([]) == 500


def test_the_report_is_rebuilt_in_process_and_a_failure_is_exit_status_2(tmp_path, capsys):
    """rebuild_report: reporting.compare() in this process (no scripts/compare.py subprocess); a directory
    that is not there, or holds no finished run, is 2 with the reason on stderr."""
    import numpy as np

    from test_reporting import _per_example, make_run

    assert sweeps.rebuild_report(tmp_path) == 2
    assert "no run files" in capsys.readouterr().err and not list(tmp_path.iterdir())
    make_run(tmp_path, "baseline", 0, _per_example(np.random.default_rng(0)))
    assert sweeps.rebuild_report(tmp_path) == 0
    assert all((tmp_path / name).is_file() for name in OUTPUT_NAMES)
    assert sweeps.rebuild_report(tmp_path / "absent") == 2
    assert "not a directory" in capsys.readouterr().err


# --------------------------------------------------------------------------- a declared protocol (compare_fair)


def scored_fake_run(calls: list, score_of):
    """fake_run whose train.py writes a metrics.json with a validation beam-16 R-L of score_of(command)."""
    plain = fake_run(calls)

    def run(command, log_file):
        code = plain(command, log_file)
        if command[0] == "train.py":
            out = Path(next(c for c in command if c.startswith("hydra.run.dir=")).split("=", 1)[1])
            metrics = {"decodes": {"beam16": {"val": {"rouge-l": score_of(command)}}}}
            (out / "metrics.json").write_text(json.dumps(metrics))
        return code

    return run


@pytest.fixture
def protocol_driver(monkeypatch):
    calls, reports = [], []

    def score_of(command):  # the largest rate or strength wins within each method, R-Drop's alpha 1 at dropout 0.3
        values = [float(c.split("=")[1]) for c in command if c.split("=")[0] in
                  ("regularizer.model_dropout", "regularizer.prob", "regularizer.epsilon")]
        if "regularizer.alpha=1.0" in command:
            values.append(10.0)
        return 30.0 + sum(values) + (1.0 if "regularizer.example_prob=1.0" in command else 0.0)

    monkeypatch.setattr(sweep_runs, "run", scored_fake_run(calls, score_of))
    monkeypatch.setattr(sweeps, "rebuild_report",
                        lambda report, baseline="baseline": reports.append((report, baseline)) or 0)
    return calls, reports


def test_the_tuning_stage_runs_every_grid_row_round_robin_on_the_tuning_seeds_then_chooses_on_validation(
        protocol_driver, tmp_path):
    calls, reports = protocol_driver
    dirs = [f"--work-dir={tmp_path / 'work'}", f"--report-dir={tmp_path / 'report'}"]
    assert run_comparison(["--experiment", "compare_fair", "--stage", "tune", *dirs]) == 0
    protocol = sweeps.load_protocol("compare_fair")
    trains = [c for c in calls if c[0] == "train.py"]
    grid_size = sum(len(rows) for rows in protocol["tuning"]["grid"].values())
    assert len(trains) == grid_size * len(protocol["tuning"]["seeds"])
    first_four = [next(c.split("=")[1] for c in command if c.startswith("regularizer=")) for command in trains[:4]]
    assert first_four == ["baseline", "random_replace", "grad_penalty", "rdrop"]  # every method tried alike
    assert all("+experiment=compare_fair" in c for c in trains)
    choice = json.loads((tmp_path / "report" / "tuning" / sweeps.CHOICE_FILE).read_text())
    assert choice["chosen"] == {"baseline": "baseline_d0.3", "random_replace": "random_replace_p0.3_all",
                                "grad_penalty": "grad_penalty_e3", "rdrop": "rdrop_a1_d0.3"}
    assert reports == [(tmp_path / "report" / "tuning", "baseline_d0.1")]
    frozen = (tmp_path / "report" / "protocol.yaml").read_text()  # what the final report declares
    assert frozen == (sweeps.REPO / "conf" / "protocol" / "compare_fair.yaml").read_text()


def test_no_choice_is_written_while_the_grid_is_incomplete_and_the_final_stage_refuses_without_one(
        protocol_driver, tmp_path):
    dirs = [f"--work-dir={tmp_path / 'work'}", f"--report-dir={tmp_path / 'report'}"]
    assert run_comparison(["--experiment", "compare_fair", "--stage", "tune", "--seeds", "0", *dirs]) == 0
    assert not (tmp_path / "report" / "tuning" / sweeps.CHOICE_FILE).exists()
    assert run_comparison(["--experiment", "compare_fair", "--stage", "final", *dirs]) == 1


def test_the_final_stage_takes_over_the_tuning_seeds_runs_and_trains_the_chosen_rows_on_the_other_seeds(
        protocol_driver, tmp_path):
    calls, _ = protocol_driver
    dirs = [f"--work-dir={tmp_path / 'work'}", f"--report-dir={tmp_path / 'report'}"]
    assert run_comparison(["--experiment", "compare_fair", "--stage", "tune", *dirs]) == 0
    calls.clear()
    assert run_comparison(["--experiment", "compare_fair", "--stage", "final", "--seeds", "0", "2",
                           "--no-diagnostics", *dirs]) == 0
    trains = [c for c in calls if c[0] == "train.py"]
    assert len(trains) == 4 and all("seed=2" in c for c in trains)  # seed 0's chosen runs were tuning runs
    assert any("regularizer.alpha=1.0" in c and "regularizer.model_dropout=0.3" in c for c in trains)
    runs = tmp_path / "report" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == sorted(f"{m}_seed{s}" for m in
                                                            ("baseline", "random_replace", "grad_penalty", "rdrop")
                                                            for s in (0, 2))
    assert (runs / "rdrop_seed0" / "metrics.json").read_text() == \
        (tmp_path / "report" / "tuning" / "runs" / "rdrop_a1_d0.3_seed0" / "metrics.json").read_text()


def test_a_copy_cut_short_leaves_no_metrics_and_is_redone(driver, tmp_path, monkeypatch):
    calls, _ = driver
    args = ["--seeds", "0", "--regularizers", "baseline", "--no-diagnostics",
            f"--work-dir={tmp_path / 'work'}", f"--report-dir={tmp_path / 'report'}"]
    real_copy = sweep_runs.shutil.copy2

    def full_disk(source, target):
        if Path(source).name == "example_scores.json":
            raise OSError(28, "No space left on device")
        return real_copy(source, target)

    monkeypatch.setattr(sweep_runs.shutil, "copy2", full_disk)
    with pytest.raises(OSError):
        run_comparison(args)
    kept = tmp_path / "report" / "runs" / "baseline_seed0"
    assert not (kept / "metrics.json").exists()
    monkeypatch.setattr(sweep_runs.shutil, "copy2", real_copy)
    assert run_comparison(args) == 0
    assert sorted(p.name for p in kept.iterdir()) == sorted(sweep_runs.RUN_FILES)


def test_the_size_probe_trains_each_size_from_its_own_pretraining_and_chooses_the_smallest_with_a_gap(
        protocol_driver, tmp_path, monkeypatch):
    calls, _ = protocol_driver
    gaps = {"h256_l4": 0.2, "h384_l6": 1.4, "h512_l8": 2.5}

    def fake_diagnose(out, kept, val_size):
        size = next((s for s in gaps if s in str(out)), "h256_l4")
        kept.mkdir(parents=True, exist_ok=True)
        measures = {"rouge_l_greedy_ensemble": 40.0 + gaps[size], "rouge_l_greedy_deterministic": 40.0}
        (kept / "diagnostics_val.json").write_text(json.dumps({"runs": [{"measures": measures}]}))

    monkeypatch.setattr(sweeps, "diagnose_on_validation", fake_diagnose)
    dirs = [f"--work-dir={tmp_path / 'work'}", f"--report-dir={tmp_path / 'report'}"]
    assert run_comparison(["--experiment", "compare_fair", "--stage", "size", *dirs]) == 1  # waits for the tuning
    assert run_comparison(["--experiment", "compare_fair", "--stage", "tune", *dirs]) == 0
    calls.clear()
    assert run_comparison(["--experiment", "compare_fair", "--stage", "size", "--no-diagnostics", *dirs]) == 0
    pretrains = [c for c in calls if c[0] == "pretrain.py"]
    assert [next(p for p in c if p.startswith("hydra.run.dir=")).split("/")[-2:] for c in pretrains] == \
        [["size_h384_l6", "pretrain_seed1"], ["size_h384_l6", "pretrain_seed2"]]  # seed 0's ran in the first call
    assert all("model.hidden_size=384" in c for c in pretrains)
    choice = json.loads((tmp_path / "report" / "size" / "size_choice.json").read_text())
    assert choice["chosen"] == "h384_l6"
    rows = sorted(p.name for p in (tmp_path / "report" / "size" / "h384_l6" / "runs").iterdir())
    assert rows == sorted(f"{m}_seed{s}" for m in ("baseline", "random_replace", "rdrop") for s in (0, 1, 2))


@pytest.mark.parametrize("experiment, val_size", [("compare_converged", 300), ("compare_fair", 300),
                                                  ("compare_strong", None)])
def test_pretraining_leaves_out_the_validation_split_an_experiment_inherits(experiment, val_size):
    """compare_fair takes data.val_size from compare_converged (its defaults): its pretrainings leave it out too."""
    expected = (f"data.val_size={val_size}",) if val_size else ()
    assert sweeps.pretrain_overrides_of(experiment) == expected
