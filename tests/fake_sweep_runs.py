"""A stand-in job_function for scripts/sweep_job.py in the launcher tests (tests/test_sweep_launcher.py): the real
Job logic (sweep_runs.run_when_ready: skip what is done, wait for what is missing), with each run's process
replaced by one that writes the files pretrain.py / train.py / diagnose.py would and appends what it ran to
$FAKE_SWEEP_LOG (one JSON line: stage, run folder, resumed, pid). A train.py run whose folder is named in
$FAKE_SWEEP_KILL stops as a killed run does: state/ saved, exit 137, no metrics."""
from __future__ import annotations

import json
import os
from pathlib import Path

from seq2seq_rdrop import sweep_runs

STAGE_OF_SCRIPT = {"pretrain.py": "pretrain", "train.py": "fine_tune", "scripts/diagnose.py": "diagnose"}


def record(stage: str, run_dir: Path, resumed: bool) -> None:
    line = json.dumps({"stage": stage, "name": run_dir.name, "resumed": resumed, "pid": os.getpid()}) + "\n"
    with open(os.environ["FAKE_SWEEP_LOG"], "a") as log:  # one short append per line: lines never interleave
        log.write(line)


def fake_process(command: list[str], log_file: Path) -> int:
    options = dict(part.split("=", 1) for part in command[1:] if "=" in part)
    stage = STAGE_OF_SCRIPT[command[0]]
    if stage == "diagnose":
        out = Path(options["--out-dir"])
        out.mkdir(parents=True, exist_ok=True)
        rate = float(options.get("--dropout", 0.3))
        (out / "diagnostics.json").write_text(json.dumps({"runs": [{"dropout": {"hidden": rate, "attention": rate}}]}))
        record(stage, Path(command[1]).parent, resumed=False)
        return 0
    out = Path(options["hydra.run.dir"])
    record(stage, out, resumed=(out / "state").is_dir() and options.get("trainer.resume") == "true")
    if out.name in os.environ.get("FAKE_SWEEP_KILL", "").split(","):
        (out / "state").mkdir(parents=True, exist_ok=True)
        return 137
    (out / "checkpoint").mkdir(parents=True, exist_ok=True)
    for name in sweep_runs.RUN_FILES:
        (out / name).write_text("{}")
    return 0


def run_job(job: sweep_runs.Job) -> bool:
    sweep_runs.run = fake_process  # this worker process only
    return sweep_runs.run_when_ready(job)
