"""The sweep driver (scripts/run_comparison.py): one pretraining per seed shared by every regularizer,
the same experiment and step budget for all, finished runs skipped, small run files copied.
`run` is replaced by a fake that writes what train.py / pretrain.py / diagnose.py would."""
from __future__ import annotations

from conftest import load_script
import json
import sys
from pathlib import Path

import pytest

OWN_DROPOUT = 0.3  # the fake checkpoints' own dropout rate unless a test changes it

@pytest.fixture
def driver(monkeypatch):
    module = load_script("run_comparison", "scripts/run_comparison.py")
    calls: list[list[str]] = []

    def fake_run(command, log_file):
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

    monkeypatch.setattr(module, "run", fake_run)
    monkeypatch.setattr(module, "build_report", lambda report: 0)
    return module, calls


def test_one_pretraining_per_seed_and_the_same_experiment_for_every_regularizer(driver, tmp_path):
    module, calls = driver
    args = ["--seeds", "0", "1", "--regularizers", "baseline", "rdrop",
            f"--work-dir={tmp_path / 'work'}", f"--report-dir={tmp_path / 'report'}", "data.test_file=test.tsv"]
    assert module.main(args) == 0
    pretrains = [c for c in calls if c[0] == "pretrain.py"]
    trains = [c for c in calls if c[0] == "train.py"]
    assert [c[1] for c in pretrains] == ["seed=0", "seed=1"]
    assert len(trains) == 4 and all("+experiment=compare_strong" in c and "data.test_file=test.tsv" in c for c in trains)
    for command in trains:
        seed = next(p for p in command if p.startswith("seed=")).split("=")[1]
        assert f"model.pretrained={tmp_path / 'work'}/pretrain_seed{seed}/checkpoint" in command
    kept = tmp_path / "report" / "runs" / "rdrop_seed1"
    assert sorted(p.name for p in kept.iterdir()) == sorted([*module.RUN_FILES, "diagnostics.json"])


def test_a_finished_run_is_skipped_on_a_rerun(driver, tmp_path):
    module, calls = driver
    args = ["--seeds", "0", "--regularizers", "baseline", f"--work-dir={tmp_path / 'w'}",
            f"--report-dir={tmp_path / 'r'}"]
    module.main(args)
    calls.clear()
    (tmp_path / "w" / "pretrain_seed0" / "metrics.json").write_text("{}")
    assert module.main(args) == 0
    assert calls == []  # pretraining, fine-tuning and diagnostics all already done


def test_no_diagnostics_defers_them_to_a_later_rerun(driver, tmp_path):
    module, calls = driver
    args = ["--seeds", "0", "--regularizers", "baseline", f"--work-dir={tmp_path / 'w'}", f"--report-dir={tmp_path / 'r'}"]
    module.main([*args, "--no-diagnostics"])
    assert not any(c[0] == "scripts/diagnose.py" for c in calls)
    assert not (tmp_path / "r" / "runs" / "baseline_seed0" / "diagnostics.json").exists()
    calls.clear()
    module.main(args)
    assert [c[0] for c in calls] == ["scripts/diagnose.py"]  # the fine-tune is not repeated
    assert (tmp_path / "r" / "runs" / "baseline_seed0" / "diagnostics.json").is_file()


def test_a_work_dir_reached_through_a_symbolic_link_stays_a_repository_path(driver, tmp_path, monkeypatch):
    """No machine path in the run files: outputs/sweeps linked to another disk is still passed on as
    outputs/sweeps/..., not as the link's target."""
    module, _ = driver
    repo, disk = tmp_path / "repo", tmp_path / "disk"
    (repo / "outputs").mkdir(parents=True)
    disk.mkdir()
    (repo / "outputs" / "sweeps").symlink_to(disk, target_is_directory=True)
    monkeypatch.setattr(module, "REPO", repo)
    assert module._relative(Path("outputs/sweeps/semi_supervised")) == Path("outputs/sweeps/semi_supervised")
    assert module._relative(repo / "outputs/sweeps/x/../semi") == Path("outputs/sweeps/semi")
    assert module._relative(tmp_path / "elsewhere") == tmp_path / "elsewhere"


@pytest.mark.parametrize("own, diagnose_runs", [(0.3, 2), (0.1, 1)])
def test_the_common_dropout_is_measured_only_where_it_differs_from_the_checkpoints_own(
        driver, tmp_path, monkeypatch, own, diagnose_runs):
    """compare_converged diagnoses every checkpoint at its own dropout and at the common 0.1; a checkpoint
    trained at 0.1 gives the same measures twice (same weights, rates and seed), so its first file is copied."""
    module, calls = driver
    monkeypatch.setattr(sys.modules[__name__], "OWN_DROPOUT", own)
    args = ["--experiment", "compare_converged", "--seeds", "0", "--regularizers", "baseline",
            f"--work-dir={tmp_path / 'w'}", f"--report-dir={tmp_path / 'r'}"]
    assert module.main(args) == 0
    assert sum(c[0] == "scripts/diagnose.py" for c in calls) == diagnose_runs
    kept = tmp_path / "r" / "runs" / "baseline_seed0"
    common = json.loads((kept / "diagnostics_dropout0.1.json").read_text())["runs"][0]["dropout"]
    assert common == {"hidden": 0.1, "attention": 0.1}
