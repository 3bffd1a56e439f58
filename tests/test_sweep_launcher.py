"""A sweep's stages through Hydra's launcher (seq2seq_rdrop.sweep_launch, scripts/sweep_job.py): the joblib launcher
runs a two-row, two-seed sweep stage by stage in its worker processes, a run killed midway resumes on the next call
and finished runs are skipped; the same stages compose for SLURM. The runs' processes are faked
(tests/fake_sweep_runs.py): the launcher's mechanics are what is tested here, training's resume in test_resume.py."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import REPO, compose_config

from seq2seq_rdrop import sweep_launch, sweeps
from seq2seq_rdrop.sweep_runs import STAGES

TESTS = Path(__file__).resolve().parent


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.fixture
def faked_stages(tmp_path, monkeypatch):
    """The stage app's jobs call fake_sweep_runs.run_job; returns the log file its fake processes append to."""
    log = tmp_path / "runs.jsonl"
    monkeypatch.setattr(sweep_launch, "STAGE_APP_OVERRIDES", ("job_function=fake_sweep_runs.run_job",))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FAKE_SWEEP_LOG", str(log))
    monkeypatch.setattr(sweeps, "rebuild_report", lambda report, baseline="baseline": 0)
    return log


def test_joblib_launcher_runs_the_stages_in_order_resumes_a_killed_run_and_skips_finished_ones(
        faked_stages, tmp_path, monkeypatch):
    work, report = tmp_path / "work", tmp_path / "report"
    argv = ["--seeds", "0", "1", "--regularizers", "baseline", "rdrop", f"--work-dir={work}", f"--report-dir={report}",
            "hydra/launcher=joblib_2cpu"]
    monkeypatch.setenv("FAKE_SWEEP_KILL", "rdrop_seed1")
    assert sweeps.run_comparison(*sweeps.comparison_arguments(argv, "test")) == 1  # a run was killed
    first = read_log(faked_stages)
    stages = [entry["stage"] for entry in first]
    assert stages == sorted(stages, key=STAGES.index), "every pretraining before any fine-tuning, diagnoses last"
    assert sorted((e["stage"], e["name"]) for e in first) == sorted(
        [("pretrain", "pretrain_seed0"), ("pretrain", "pretrain_seed1")]
        + [("fine_tune", f"{row}_seed{seed}") for row in ("baseline", "rdrop") for seed in (0, 1)]
        + [("diagnose", name) for name in ("baseline_seed0", "rdrop_seed0", "baseline_seed1")])
    assert all(entry["pid"] != os.getpid() for entry in first), "jobs run in the launcher's workers"
    assert (work / ".sweep" / "sweep" / "fine_tune" / "multirun.yaml").is_file()  # a Hydra multirun per stage
    assert not (report / "runs" / "rdrop_seed1" / "metrics.json").exists()

    faked_stages.unlink()
    monkeypatch.delenv("FAKE_SWEEP_KILL")
    assert sweeps.run_comparison(*sweeps.comparison_arguments(argv, "test")) == 0
    second = [(e["stage"], e["name"], e["resumed"]) for e in read_log(faked_stages)]
    assert second == [("fine_tune", "rdrop_seed1", True), ("diagnose", "rdrop_seed1", False)]
    assert (report / "runs" / "rdrop_seed1" / "metrics.json").is_file()


def test_the_launcher_starts_no_row_whose_pretraining_is_missing(tmp_path, monkeypatch):
    """A stage launches only the jobs whose inputs exist: a seed's rows wait for its pretraining."""
    launched = []
    monkeypatch.setattr(sweep_launch, "launch_stage", lambda jobs, *rest: launched.append([j.name for j in jobs]))
    work = tmp_path / "work"
    (work / "pretrain_seed1").mkdir(parents=True)
    (work / "pretrain_seed1" / "metrics.json").write_text("{}")  # seed 1 pretrained, seed 0 not (it failed)
    args, overrides = sweeps.comparison_arguments(["--seeds", "0", "1", "--regularizers", "baseline", "--no-diagnostics",
                                                  f"--work-dir={work}", f"--report-dir={tmp_path / 'r'}"], "test")
    jobs = sweeps.sweep_jobs(args, overrides, "compare_strong")
    sweep_launch.launch_stages(jobs, tmp_path / "stages", ["hydra/launcher=joblib_2cpu"])
    assert launched == [["pretrain_seed0"], ["baseline_seed1"]]


def test_launcher_arguments_go_to_the_stages_and_the_rest_to_train_py():
    args, overrides = sweeps.comparison_arguments(
        ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer.num_threads=1", "--seeds", "0"], "test")
    assert args.stage_overrides == ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"]
    assert overrides == ["trainer.num_threads=1"]


@pytest.mark.parametrize("launcher,option,target,threads", [
    ("joblib_2cpu", "verbose=1", "hydra_plugins.hydra_joblib_launcher", max(1, (os.cpu_count() or 1) // 2)),
    ("slurm", "partition=gpu", "hydra_plugins.hydra_submitit_launcher", 8),
])
def test_a_stage_composes_with_each_launcher_and_sizes_its_jobs_threads(tmp_path, launcher, option, target, threads):
    """The stage app's command (config only: nothing is submitted) composes with joblib_2cpu and with SLURM's
    submitit launcher; each job gets the launcher's share of cores as its torch threads."""
    command = sweep_launch.stage_command(tmp_path / "fine_tune.json", 3, tmp_path / "fine_tune",
                                         [f"hydra/launcher={launcher}", f"hydra.launcher.{option}"])
    assert command[:2] == [sweep_launch.STAGE_APP, "-m"]
    overrides = ["job=0" if o.startswith("job=") else o for o in command[2:]]  # compose takes no sweep
    cfg = compose_config(overrides, "sweep_job", hydra=True)
    assert cfg.hydra.launcher._target_.startswith(target)
    key, value = option.split("=")
    assert str(cfg.hydra.launcher[key]) == value
    assert cfg.plan == str(tmp_path / "fine_tune.json") and cfg.hydra.sweep.dir == str(tmp_path / "fine_tune")
    assert sweep_launch.threads_per_job(cfg.hydra.launcher) == threads
