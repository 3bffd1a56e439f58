"""A run directory belongs to one run (seq2seq_rdrop/run_dir.py): a second run into a directory that
holds a run, or that a live run holds, is refused in one line and touches nothing; a dead run's lock
is taken over; trainer.overwrite=true replaces the old run's outputs."""
import os

import pytest

from conftest import TINY, run_script
from seq2seq_rdrop.run_dir import LOCK_FILE, RunDirError, check_run_dir, owned_run_dir


def train_into(run_dir, data_dir, *extra):
    return run_script("train.py", f"data.dir={data_dir}", f"hydra.run.dir={run_dir}", "trainer.max_steps=1",
                      "trainer.save_every=0", *TINY, *extra)


def snapshot(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def finished_looking_run(run_dir):
    """The files a finished run leaves (their content does not matter to the refusal)."""
    (run_dir / "checkpoint").mkdir(parents=True)
    (run_dir / "checkpoint" / "config.json").write_text("{}")
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
    for name in ("metrics.json", "train_log.csv", "train.log"):
        (run_dir / name).write_text(f"the old run's {name}\n")
    return snapshot(run_dir)


def test_a_new_run_into_a_finished_runs_directory_is_refused_and_touches_nothing(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    before = finished_looking_run(run_dir)
    proc = train_into(run_dir, data_dir)
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()
    assert len(error) == 1 and str(run_dir) in error[0] and "trainer.overwrite=true" in error[0], proc.stderr
    assert snapshot(run_dir) == before and not (run_dir / LOCK_FILE).exists()


def test_a_directory_held_by_a_live_run_refuses_a_second_run_naming_its_pid(data_dir, tmp_path):
    run_dir = tmp_path / "busy"
    with owned_run_dir(run_dir, resume=False, overwrite=False):  # this process is the live run
        proc = train_into(run_dir, data_dir)
        assert proc.returncode == 1 and f"in use by another run (pid {os.getpid()}" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_FILE]  # nothing written by the refused run
    assert not (run_dir / LOCK_FILE).exists()  # released at the end of the run


def test_a_lock_file_left_by_a_dead_run_is_taken_over(tmp_path):
    (tmp_path / LOCK_FILE).write_text("999999999\n")  # no process holds its lock: a killed run's
    check_run_dir(tmp_path, resume=False, overwrite=False)
    with owned_run_dir(tmp_path, resume=False, overwrite=False):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (tmp_path / LOCK_FILE).exists()


def test_the_lock_is_reentrant_within_one_process(tmp_path):
    """pretrain.py claims the directory before writing its pseudo pairs, then its train() claims it again."""
    with owned_run_dir(tmp_path, resume=False, overwrite=False):
        with owned_run_dir(tmp_path, resume=False, overwrite=False):
            pass
        assert (tmp_path / LOCK_FILE).exists()  # still held by the outer claim
    assert not (tmp_path / LOCK_FILE).exists()


def test_resume_is_let_in_and_overwrite_removes_only_the_old_runs_outputs(tmp_path):
    finished_looking_run(tmp_path)
    (tmp_path / "predictions_dev.tsv").write_text("old\n")
    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(RunDirError, match="already holds a run"):
        check_run_dir(tmp_path, resume=False, overwrite=False)
    check_run_dir(tmp_path, resume=True, overwrite=False)
    with owned_run_dir(tmp_path, resume=False, overwrite=True):
        pass
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".hydra", "notes.txt", "train.log"]
