"""A run directory belongs to one run.

While a run lives it holds an exclusive lock on RUN_DIR/.run.lock (fcntl.flock, with its pid written
in the file for the message): a second run into the same directory is refused in one line. The kernel
drops the lock when its process dies, so a lock file left by a killed run (its pid no longer holds it)
is stale and simply taken over.

A directory that already holds a run's files (RUN_MARKERS) is refused too, unless the new run resumes
it (trainer.resume) or replaces it (trainer.overwrite=true, which first removes the old run's outputs,
so no log or state of the old run mixes into the new one). A refused run touches nothing.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".run.lock"
RUN_MARKERS = ("state", "checkpoint", "metrics.json", "train_log.csv")  # a run started (or finished) here
RUN_OUTPUTS = (*RUN_MARKERS, "states", "tokenizer", "eval_log.csv", "kept_dev_scores.json", "example_scores.json",
               "config_resolved.yaml")  # what trainer.overwrite=true removes (with predictions_*.tsv)
_HELD: dict[str, list] = {}  # resolved run dir -> [fd, depth]: pretrain.py's train() re-enters its own lock


class RunDirError(ValueError):
    """The run directory is in use or holds another run; the message is one line."""


def resume_requested(resume) -> bool:
    return resume not in (False, None, "false", "False")


def _lock_path(out_dir: Path) -> Path:
    return Path(out_dir) / LOCK_FILE


def _holder_pid(lock: Path) -> str:
    try:
        return lock.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def lock_holder(out_dir: str | Path) -> str | None:
    """The pid of the live run holding out_dir's lock (another process), or None when it is free."""
    lock = _lock_path(Path(out_dir))
    if str(Path(out_dir).resolve()) in _HELD or not lock.is_file():
        return None
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: the lock file is a dead run's (stale)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        return _holder_pid(lock)
    finally:
        os.close(fd)


def check_run_dir(out_dir: str | Path, resume, overwrite: bool) -> None:
    """Read-only: RunDirError when another live run holds out_dir, or when out_dir holds a run's files and
    this run neither resumes (trainer.resume) nor replaces it (trainer.overwrite)."""
    out_dir = Path(out_dir)
    holder = lock_holder(out_dir)
    if holder is not None:
        raise RunDirError(f"{out_dir} is in use by another run (pid {holder}, {_lock_path(out_dir)}): wait for it "
                          "to end or choose another hydra.run.dir")
    _check_not_reused(out_dir, resume, overwrite)


def _check_not_reused(out_dir: Path, resume, overwrite: bool) -> None:
    if resume_requested(resume) or overwrite:
        return
    found = [name for name in RUN_MARKERS if (out_dir / name).exists()]
    if found:
        raise RunDirError(f"{out_dir} already holds a run ({', '.join(found)}): continue it with trainer.resume=true, "
                          "replace it with trainer.overwrite=true, or choose another hydra.run.dir")


def _take_lock(out_dir: Path) -> int:
    """An fd holding out_dir's lock; RunDirError when a live run holds it."""
    lock = _lock_path(out_dir)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunDirError(f"{out_dir} is in use by another run (pid {_holder_pid(lock)}, {lock}): wait for it "
                              "to end or choose another hydra.run.dir") from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:  # else the run before us removed the file as we opened it: lock the new one
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _release_lock(out_dir: Path, fd: int) -> None:
    try:
        _lock_path(out_dir).unlink()  # still locked: a run waiting on the old file retries on a new one
    except FileNotFoundError:
        pass
    os.close(fd)


def remove_run_outputs(out_dir: Path) -> None:
    """trainer.overwrite=true: the old run's outputs go, so none of them mixes into the new run."""
    for path in [*(out_dir / name for name in RUN_OUTPUTS), *out_dir.glob("predictions_*.tsv")]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


@contextmanager
def owned_run_dir(out_dir: str | Path, resume, overwrite: bool):
    """Hold out_dir's lock for the block, after check_run_dir; trainer.overwrite=true (without resume) clears
    the old run's outputs first. Re-entrant within one process."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = str(out_dir.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
    else:
        fd = _take_lock(out_dir)
        try:
            _check_not_reused(out_dir, resume, overwrite)
        except BaseException:
            _release_lock(out_dir, fd)
            raise
        if overwrite and not resume_requested(resume):
            remove_run_outputs(out_dir)
        _HELD[key] = [fd, 1]
    try:
        yield out_dir
    finally:
        _HELD[key][1] -= 1
        if not _HELD[key][1]:
            _release_lock(out_dir, _HELD.pop(key)[0])
