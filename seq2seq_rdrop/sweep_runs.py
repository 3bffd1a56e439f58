"""One run of a sweep (seq2seq_rdrop.sweeps): a pretraining, a fine-tuning or a diagnosis, each in its own process
(pretrain.py, train.py, scripts/diagnose.py) in the repository, so that a crash or a kill costs only that run; and
the Job that names one of them with what says it is done and what it waits for. A finished run is skipped on the
next call, a killed one resumes from its saved state (trainer.resume=true)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .regularizer_names import DEFAULT_COMPARISON

REPO = Path(__file__).resolve().parents[1]
RUN_FILES = ("metrics.json", "example_scores.json", "eval_log.csv", "train_log.csv")
DIAGNOSTICS_FILE = "diagnostics.json"
COMMON_DROPOUT = 0.1  # every checkpoint is also diagnosed at this dropout rate, so that rows compare like for like
CONSOLE_LOG = "console.log"  # a run's output, in its run directory


# --------------------------------------------------------------------------- one run


def run(command: list[str], log_file: Path) -> int:
    """`python COMMAND` in the repository, its output appended to log_file; its exit status."""
    print(f"[{time.strftime('%H:%M:%S')}] {' '.join(command)}", flush=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as log:
        return subprocess.run([sys.executable, *command], cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode


def pretrain_dir(work: Path, seed: int) -> Path:
    return Path(work) / f"pretrain_seed{seed}"


def pretrain(work: Path, seed: int, overrides: tuple[str, ...] = ()) -> Path | None:
    """The pretrained checkpoint of one seed (trained unless already there); None when pretraining failed."""
    out = pretrain_dir(work, seed)
    checkpoint = out / "checkpoint"
    if not (out / "metrics.json").is_file():
        code = run(["pretrain.py", f"seed={seed}", f"hydra.run.dir={out}", "trainer.resume=true", *overrides],
                   out / CONSOLE_LOG)
        if code != 0:
            print(f"pretrain seed {seed} failed (exit {code}); see {out / CONSOLE_LOG}", flush=True)
            return None
    return checkpoint


def fine_tune(work: Path, report: Path, regularizer: str, seed: int, checkpoint: Path, overrides: list[str],
              diagnostics: bool = True, experiment: str = DEFAULT_COMPARISON,
              row_overrides: tuple[str, ...] | None = None, report_name: str | None = None) -> bool:
    """One row of one seed fine-tuned from `checkpoint` (unless its files are already in the report), its
    RUN_FILES copied to REPORT/runs/<regularizer>_seed<S>/, then diagnosed; False when training failed.
    `regularizer` names the row; its train.py overrides are `regularizer=<it>` unless row_overrides are given
    (a tuning grid's row: conf/protocol/*.yaml); report_name names its report folder instead of the row."""
    name = f"{regularizer}_seed{seed}"
    out, kept = Path(work) / name, Path(report) / "runs" / (f"{report_name}_seed{seed}" if report_name else name)
    if not (kept / "metrics.json").is_file():
        row = list(row_overrides) if row_overrides is not None else [f"regularizer={regularizer}"]
        command = ["train.py", f"+experiment={experiment}", *row, f"seed={seed}",
                   f"model.pretrained={checkpoint}", f"hydra.run.dir={out}", "trainer.resume=true", *overrides]
        code = run(command, out / CONSOLE_LOG)
        if code != 0:
            print(f"{name} failed (exit {code}); see {out / CONSOLE_LOG}", flush=True)
            return False
        copy_run_files(out, kept)
    if diagnostics:
        diagnose(out, kept, common_dropout=experiment != "compare_strong")
    return True


def copy_run_files(source: Path, target: Path) -> None:
    """A finished run's small files (RUN_FILES) into target, complete or not at all: copied into a temporary folder
    renamed into place, so that a copy cut short (a full disk, a kill) leaves no metrics.json and is redone."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for file in RUN_FILES:
        if (source / file).is_file():
            shutil.copy2(source / file, tmp / file)
    if target.exists():  # an earlier copy cut short, or diagnostics measured before: keep what is not a run file
        for extra in target.iterdir():
            if extra.is_file() and extra.name not in RUN_FILES:
                shutil.copy2(extra, tmp / extra.name)
        shutil.rmtree(target)
    os.replace(tmp, target)


def missing_diagnoses(out: Path, kept: Path, common_dropout: bool = False) -> list[float | None]:
    """The dropout rates (None: the checkpoint's own) whose diagnostics file `kept` still lacks; none while the run
    has no checkpoint."""
    if not (Path(out) / "checkpoint").is_dir():
        return []
    return [dropout for dropout in ((None, COMMON_DROPOUT) if common_dropout else (None,))
            if not (Path(kept) / diagnostics_name(dropout)).is_file()]


def diagnostics_name(dropout: float | None) -> str:
    return DIAGNOSTICS_FILE if dropout is None else f"diagnostics_dropout{dropout}.json"


def diagnose(out: Path, kept: Path, common_dropout: bool = False) -> None:
    """The dropout-consistency and exposure-bias measures (scripts/diagnose.py) of the run's kept weights at
    their own dropout (diagnostics.json) and, with common_dropout, at COMMON_DROPOUT
    (diagnostics_dropout<P>.json)."""
    out, kept = Path(out), Path(kept)
    for dropout in missing_diagnoses(out, kept, common_dropout):
        name = diagnostics_name(dropout)
        if dropout is not None and _measured_at(kept / DIAGNOSTICS_FILE, dropout):
            shutil.copy2(kept / DIAGNOSTICS_FILE, kept / name)  # same weights, rates and seed: same measures
            continue
        diag_dir = out / ("diagnostics" if dropout is None else f"diagnostics_dropout{dropout}")
        extra = [] if dropout is None else [f"--dropout={dropout}"]
        code = run(["scripts/diagnose.py", str(out / "checkpoint"), f"--out-dir={diag_dir}", *extra],
                   out / "diagnose.log")
        if code == 0 and (diag_dir / DIAGNOSTICS_FILE).is_file():
            shutil.copy2(diag_dir / DIAGNOSTICS_FILE, kept / name)
        else:
            print(f"diagnostics of {out} failed (exit {code}); see {out / 'diagnose.log'}", flush=True)


def _measured_at(diagnostics_file: Path, dropout: float) -> bool:
    """Whether a diagnostics.json was measured with hidden and attention dropout both at `dropout`."""
    if not diagnostics_file.is_file():
        return False
    rates = json.loads(diagnostics_file.read_text())["runs"][0]["dropout"]
    return rates["hidden"] == dropout and rates["attention"] == dropout


# --------------------------------------------------------------------------- a job: one run named as data


STAGES = ("pretrain", "fine_tune", "diagnose")  # a sweep's stages, in the order a launcher runs them


@dataclass(frozen=True)
class Job:
    """One run of a sweep as plain data (a plan file carries it to a launcher's worker or a SLURM node): its stage
    (STAGES), the row it belongs to ("pretrain" for a pretraining), its seed, and its stage function's arguments
    (paths as strings, relative to the repository where the driver gave them so)."""

    stage: str
    row: str
    seed: int
    args: dict

    @classmethod
    def pretraining(cls, work: Path, seed: int, overrides=()) -> "Job":
        return cls("pretrain", "pretrain", seed, {"work": str(work), "overrides": list(overrides)})

    @classmethod
    def fine_tuning(cls, work: Path, report: Path, row: str, seed: int, checkpoint: Path, overrides, experiment: str,
                    row_overrides=None, report_name: str | None = None) -> "Job":
        return cls("fine_tune", report_name or row, seed, {
            "work": str(work), "report": str(report), "regularizer": row, "checkpoint": str(checkpoint),
            "overrides": list(overrides), "experiment": experiment,
            "row_overrides": None if row_overrides is None else list(row_overrides), "report_name": report_name})

    @classmethod
    def diagnosis(cls, fine_tuning: "Job", common_dropout: bool) -> "Job":
        """The diagnostics of a fine-tuning's kept weights."""
        return cls("diagnose", fine_tuning.row, fine_tuning.seed, {
            "out": str(fine_tuning.run_dir), "kept": str(fine_tuning.kept_dir), "common_dropout": common_dropout})

    @property
    def name(self) -> str:
        return f"{self.row}_seed{self.seed}"

    @property
    def run_dir(self) -> Path:
        """Where the run's process writes (weights, state/, console.log)."""
        if self.stage == "pretrain":
            return pretrain_dir(Path(self.args["work"]), self.seed)
        if self.stage == "diagnose":
            return Path(self.args["out"])
        return Path(self.args["work"]) / f"{self.args['regularizer']}_seed{self.seed}"

    @property
    def kept_dir(self) -> Path:
        """Where its finished files are kept: the report's runs/<row>_seed<S>/ (a pretraining: its run dir)."""
        if self.stage == "pretrain":
            return self.run_dir
        if self.stage == "diagnose":
            return Path(self.args["kept"])
        return Path(self.args["report"]) / "runs" / self.name

    def done(self) -> bool:
        finished = (self.kept_dir / "metrics.json").is_file()
        if self.stage == "diagnose":  # of a finished fine-tuning (one whose weights are gone has none to do)
            return finished and not missing_diagnoses(self.run_dir, self.kept_dir, self.args["common_dropout"])
        return finished

    def waiting_for(self) -> Path | None:
        """The file that must exist before the job can start (its seed's pretraining, its fine-tuning), or None."""
        needed = {"pretrain": None, "fine_tune": Path(self.args.get("checkpoint", ".")).parent / "metrics.json",
                  "diagnose": self.kept_dir / "metrics.json"}[self.stage]
        return needed if needed is not None and not needed.is_file() else None

    def run(self) -> bool:
        """The stage function on this job's arguments (it skips what is done); False when its run failed."""
        a = self.args
        if self.stage == "pretrain":
            return pretrain(Path(a["work"]), self.seed, tuple(a["overrides"])) is not None
        if self.stage == "fine_tune":
            return fine_tune(Path(a["work"]), Path(a["report"]), a["regularizer"], self.seed, Path(a["checkpoint"]),
                             list(a["overrides"]), diagnostics=False, experiment=a["experiment"],
                             row_overrides=a["row_overrides"], report_name=a["report_name"])
        diagnose(Path(a["out"]), Path(a["kept"]), common_dropout=a["common_dropout"])
        return self.done()

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Job":
        return cls(**data)


def run_when_ready(job: Job) -> bool:
    """The job unless done already; not started (False, with a line saying why) while what it needs is missing."""
    if job.done():
        return True
    needed = job.waiting_for()
    if needed is not None:
        print(f"{job.name} ({job.stage}): not started, {needed} is missing", flush=True)
        return False
    return job.run()
