"""scripts/sweep_status.py: each run of a sweep as finished / running / failed / waiting with its step, rate or
last log line, the ETA from measured step costs, exit status 0 only when all is finished; the compare_fair
protocol's grid understood from the folder's name when no driver wrote a plan."""
from __future__ import annotations

import fcntl
import json
import os

import pytest
from conftest import load_script

from seq2seq_rdrop import sweep_launch, sweeps
from seq2seq_rdrop.run_dir import LOCK_FILE

status_cli = load_script("sweep_status_cli", "scripts/sweep_status.py")

TRAIN_LOG = "step,epoch,lr,loss,ce,kl,penalty,seconds\n"


def write_train_log(run_dir, steps_and_seconds):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "train_log.csv").write_text(TRAIN_LOG + "".join(f"{s},0,1e-3,2.0,2.0,,,{t}\n"
                                                                for s, t in steps_and_seconds))


def finish(run_dir, kept_dir, steps=100, seconds=200.0):
    """A finished run: metrics.json in its kept folder with its steps and seconds."""
    write_train_log(run_dir, [(steps, seconds)])
    kept_dir.mkdir(parents=True, exist_ok=True)
    (kept_dir / "metrics.json").write_text(json.dumps({"steps": steps, "train_seconds": seconds, "eval_seconds": 0}))


@pytest.fixture
def sweep(tmp_path):
    """A planned sweep (seed 0, four rows, no diagnostics): pretraining and baseline finished, rdrop running
    (its run directory locked by a live holder, as a training process holds it), random_replace failed after
    saving a state, grad_penalty waiting."""
    work, report = tmp_path / "work", tmp_path / "report"
    args, overrides = sweeps.comparison_arguments(
        ["--seeds", "0", "--regularizers", "baseline", "rdrop", "random_replace", "grad_penalty", "--no-diagnostics",
         f"--work-dir={work}", f"--report-dir={report}"], "test")
    jobs = sweeps.sweep_jobs(args, overrides, "compare_strong")
    sweep_launch.write_plan(work, "sweep", report, "compare_strong", jobs, [])
    finish(work / "pretrain_seed0", work / "pretrain_seed0", steps=600, seconds=1200.0)
    finish(work / "baseline_seed0", report / "runs" / "baseline_seed0", steps=100, seconds=200.0)
    running = work / "rdrop_seed0"
    write_train_log(running, [(10, 20.0), (50, 100.0)])
    (running / "state").mkdir()
    (running / "state" / "run_config.json").write_text(json.dumps({"config": {"trainer": {"max_steps": 300}}}))
    lock = os.open(running / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    os.write(lock, b"4242\n")
    fcntl.flock(lock, fcntl.LOCK_EX)  # another open file: lock_holder sees it held, as by a live run
    failed = work / "random_replace_seed0"
    write_train_log(failed, [(30, 60.0)])
    (failed / "state").mkdir()
    (failed / "console.log").write_text("step 20: val rouge-l 30.1\r train 10%\nerror: data.dir=/gone: no such directory\n")
    yield work, report
    os.close(lock)


def test_each_run_shows_its_state_and_the_eta_and_the_exit_status_says_not_finished(sweep, capsys):
    work, _ = sweep
    assert status_cli.main([str(work), "--jobs", "2"]) == 1
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:-1]}
    assert rows["pretrain"].split()[2] == "finished" and rows["baseline"].split()[2] == "finished"
    assert "running" in rows["rdrop"] and "step 50/300" in rows["rdrop"] and "0.50 steps/s" in rows["rdrop"]
    assert "pid 4242" in rows["rdrop"]
    assert "failed" in rows["random_replace"] and "error: data.dir=/gone" in rows["random_replace"]
    assert "state/ saved" in rows["random_replace"]
    assert rows["grad_penalty"].split()[2] == "waiting"


def test_the_eta_is_the_measured_step_cost_of_the_steps_left_shared_among_the_jobs(sweep, capsys):
    """Fine-tunings take the finished one's 100 steps at its 2 s a step: rdrop 50 left, random_replace 70,
    grad_penalty 100: 440 s, 220 s at two at a time (4 min)."""
    work, _ = sweep
    status_cli.main([str(work), "--jobs", "2"])
    assert capsys.readouterr().out.splitlines()[-1].endswith("ETA of the rest: 4 min at 2 jobs at a time")


def test_a_finished_sweep_exits_0_and_a_report_dir_finds_its_work_dirs_plan(tmp_path, capsys, monkeypatch):
    work, report = tmp_path / "work", tmp_path / "report"
    args, overrides = sweeps.comparison_arguments(["--seeds", "0", "--regularizers", "baseline", "--no-diagnostics",
                                                   f"--work-dir={work}", f"--report-dir={report}"], "test")
    sweep_launch.write_plan(work, "sweep", report, "compare_strong", sweeps.sweep_jobs(args, overrides, "x"), [])
    finish(work / "pretrain_seed0", work / "pretrain_seed0")
    finish(work / "baseline_seed0", report / "runs" / "baseline_seed0")
    assert status_cli.main([str(work)]) == 0
    assert "nothing left to train" in capsys.readouterr().out
    monkeypatch.setattr("seq2seq_rdrop.sweep_status.REPO", tmp_path)  # outputs/sweeps/*/ of this repository
    (tmp_path / "outputs" / "sweeps").mkdir(parents=True)
    (tmp_path / "outputs" / "sweeps" / "mine").symlink_to(work)
    assert status_cli.main([str(report)]) == 0


def test_the_compare_fair_protocols_grid_is_understood_without_a_plan(tmp_path, capsys):
    """A work dir named compare_fair (the sweep started before plans were written): its tuning grid on the
    tuning seeds, every row waiting for its seed's pretraining."""
    work = tmp_path / "compare_fair"
    work.mkdir()
    protocol = sweeps.load_protocol("compare_fair")
    assert status_cli.main([str(work)]) == 1
    out = capsys.readouterr().out
    grid = [row for rows in protocol["tuning"]["grid"].values() for row in rows]
    seeds = protocol["tuning"]["seeds"]
    assert f"{len(grid) * len(seeds) + len(seeds)} runs" in out.splitlines()[0]
    # runs already in the repository's committed tuning report count as finished, the others wait
    committed = sum((sweeps.REPO / "outputs" / "reports" / "compare_fair" / "tuning" / "runs" / f"{row}_seed{s}"
                     / "metrics.json").is_file() for row in grid for s in seeds)
    assert f"finished {committed}," in out and f"waiting {len(grid) * len(seeds) + len(seeds) - committed}" in out
    assert all(f"{row}  " in out for row in grid)


def test_a_folder_that_is_no_sweep_is_refused_in_one_line(tmp_path, capsys):
    assert status_cli.main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
