"""Where a sweep stands (scripts/sweep_status.py): each planned run of it (sweep_runs.Job) as finished, running
(its step of the configured total, steps per second of training), waiting (not started; or waiting for its seed's
pretraining) or failed (started, neither finished nor running: the last line of its console.log, and whether a
saved state lets the next call resume it); the diagnoses left; and the time the rest will take from the measured
cost of a step. The runs come from the plan the driver wrote (WORK_DIR/.sweep/<label>.json, sweep_launch), else
from the driver's own job list for the experiment the folder is named after (outputs/sweeps/<experiment>,
outputs/reports/<experiment>[/tuning]: conf/protocol/<experiment>.yaml's grid, or the comparison's rows)."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from .run_config import RUN_CONFIG
from .run_dir import lock_holder
from .sweep_launch import PLAN_DIR, read_plan
from .sweep_runs import CONSOLE_LOG, REPO, Job

STATES = ("finished", "running", "failed", "waiting")


@dataclass
class RunStatus:
    job: Job
    state: str  # one of STATES
    detail: str
    step: int = 0  # steps trained (train_log.csv's last row)
    total: int | None = None  # steps configured (trainer.max_steps: a cap when patience stops runs early)
    seconds_per_step: float | None = None  # measured: training and evaluation seconds per step


# --------------------------------------------------------------------------- what a run's files say


def last_logged(run_dir: Path) -> tuple[int, float]:
    """(step, training seconds) of train_log.csv's last row; (0, 0.0) before any."""
    path = run_dir / "train_log.csv"
    if not path.is_file():
        return 0, 0.0
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("step")]
    return (int(rows[-1]["step"]), float(rows[-1]["seconds"] or 0.0)) if rows else (0, 0.0)


def evaluation_seconds(run_dir: Path) -> float:
    path = run_dir / "eval_log.csv"
    if not path.is_file():
        return 0.0
    with open(path, newline="") as f:
        return sum(float(row.get("seconds") or 0.0) for row in csv.DictReader(f))


def configured_steps(run_dir: Path) -> int | None:
    """trainer.max_steps of the run (state/run_config.json, else config_resolved.yaml); None when not known."""
    record = run_dir / "state" / RUN_CONFIG
    if record.is_file():
        return json.loads(record.read_text(encoding="utf-8"))["config"]["trainer"].get("max_steps")
    resolved = run_dir / "config_resolved.yaml"
    return OmegaConf.load(resolved).trainer.get("max_steps") if resolved.is_file() else None


def last_line(run_dir: Path) -> str:
    """The last non-empty line of the run's console.log (a progress bar's last update included), or ''."""
    for log in (run_dir / CONSOLE_LOG, run_dir.with_name(f"{run_dir.name}.{CONSOLE_LOG}")):
        if log.is_file():
            with open(log, "rb") as f:
                f.seek(max(0, log.stat().st_size - 8192))
                tail = f.read().decode("utf-8", errors="replace")
            lines = [line.strip() for line in tail.replace("\r", "\n").splitlines() if line.strip()]
            return lines[-1] if lines else ""
    return ""


def run_status(job: Job) -> RunStatus:
    """A pretraining's or fine-tuning's state, from its files and its run directory's lock."""
    run_dir = job.run_dir
    if job.done():
        metrics = json.loads((job.kept_dir / "metrics.json").read_text(encoding="utf-8") or "{}")
        steps, seconds = metrics.get("steps"), metrics.get("train_seconds", 0) + metrics.get("eval_seconds", 0)
        cost = seconds / steps if steps and seconds else None
        return RunStatus(job, "finished", f"{steps} steps, {seconds / 60:.0f} min" if cost else "", steps or 0,
                         steps, cost)
    step, train_seconds = last_logged(run_dir)
    total = configured_steps(run_dir) if run_dir.is_dir() else None
    cost = (train_seconds + evaluation_seconds(run_dir)) / step if step and train_seconds else None
    holder = lock_holder(run_dir) if run_dir.is_dir() else None
    if holder is not None:
        rate = f", {step / train_seconds:.2f} steps/s" if step and train_seconds else ""
        return RunStatus(job, "running", f"step {step}/{total or '?'}{rate} (pid {holder})", step, total, cost)
    line = last_line(run_dir)
    if step or line:
        saved = " (state/ saved: the next call resumes it)" if (run_dir / "state").is_dir() else ""
        return RunStatus(job, "failed", f"stopped at step {step}{saved}: {line[-160:]}", step, total, cost)
    needed = job.waiting_for()
    return RunStatus(job, "waiting", f"after {needed.parent.name}" if needed else "", 0, total, None)


# --------------------------------------------------------------------------- the rest's duration


def remaining_seconds(statuses: list[RunStatus]) -> float | None:
    """Seconds of one job slot the unfinished runs still need: per stage, the steps a run takes (the finished runs'
    mean, else the configured total) at the measured cost of a step (the finished runs' mean, else the running or
    stopped runs'), less the steps already trained. None when a stage has nothing measured yet."""
    total = 0.0
    for stage in ("pretrain", "fine_tune"):
        of_stage = [s for s in statuses if s.job.stage == stage]
        finished = [s for s in of_stage if s.state == "finished" and s.seconds_per_step]
        measured = finished or [s for s in of_stage if s.seconds_per_step]
        steps_known = [s.total for s in finished] or [s.total for s in of_stage if s.total]
        left = [s for s in of_stage if s.state != "finished"]
        if not left:
            continue
        if not measured or not steps_known:
            return None
        cost = sum(s.seconds_per_step for s in measured) / len(measured)
        steps = sum(steps_known) / len(steps_known)
        total += sum(max(0.0, steps - s.step) * cost for s in left)
    return total


# --------------------------------------------------------------------------- which sweep


def plans_in(path: Path) -> list[dict]:
    """The plans the drivers wrote for `path`: a work dir's own (WORK_DIR/.sweep/*.json); for a report dir, those
    of any outputs/sweeps/*/ work dir whose report it is."""
    own = sorted((path / PLAN_DIR).glob("*.json"))
    if own:
        return [read_plan(p) for p in own]
    plans = [read_plan(p) for p in sorted((REPO / "outputs" / "sweeps").glob(f"*/{PLAN_DIR}/*.json"))]
    return [plan for plan in plans if _same_dir(plan["report_dir"], path)]


def _same_dir(a, b) -> bool:
    resolve = lambda p: (Path(p) if Path(p).is_absolute() else REPO / p).resolve()  # noqa: E731
    return resolve(a) == resolve(b)


def inferred_plan(path: Path) -> dict:
    """The plan of a sweep whose driver wrote none (started before plans were written): the driver's job list for
    the experiment named by the folder, with its default seeds and rows, as scripts/run_comparison.py (or
    scripts/run_semi_supervised.py) would run it. A protocol's stage: tune for a .../tuning report, else tune
    until the tuning's choice exists, then final."""
    from . import sweeps  # the drivers: the reports' imports come with them

    is_report = (path / "runs").is_dir() or "reports" in path.parts
    experiment = path.parent.name if path.name in ("tuning", "horizon") else path.name
    report = (path.parent if path.name in ("tuning", "horizon") else path) if is_report else \
        REPO / "outputs" / "reports" / experiment
    work = REPO / "outputs" / "sweeps" / experiment if is_report else path
    dirs = [f"--work-dir={work}", f"--report-dir={report}"]
    if experiment == sweeps.SEMI_SUPERVISED:
        args, overrides = sweeps.semi_supervised_arguments(dirs, "")
        labeled = sweeps.labeled_pairs(overrides)
        jobs = sweeps.sweep_jobs(args, overrides, experiment,
                                 sweeps.semi_supervised_pretrain_overrides(overrides, labeled))
        return {"label": "sweep", "experiment": experiment, "work_dir": str(work), "report_dir": str(report),
                "jobs": jobs}
    if experiment not in sweeps.COMPARISON_SWEEPS:
        raise ValueError(f"{path}: no sweep plan ({PLAN_DIR}/*.json) and not a known sweep's folder (one of "
                         f"{', '.join([*sweeps.COMPARISON_SWEEPS, sweeps.SEMI_SUPERVISED])}, under outputs/sweeps or "
                         "outputs/reports)")
    stage = []
    if (REPO / "conf" / "protocol" / f"{experiment}.yaml").is_file():
        final = path.name != "tuning" and (report / "tuning" / sweeps.CHOICE_FILE).is_file()
        stage = ["--stage", "final" if final else "tune"]
    args, overrides = sweeps.comparison_arguments(["--experiment", experiment, *stage, *dirs], "")
    label, report_dir, jobs = sweeps.comparison_plan(args, overrides)
    return {"label": label, "experiment": experiment, "work_dir": str(work), "report_dir": str(report_dir),
            "jobs": jobs}


# --------------------------------------------------------------------------- the table


def format_duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def describe(plan: dict, jobs_at_once: int | None) -> tuple[str, bool]:
    """(the plan's table, whether every one of its jobs is done)."""
    runs = [j for j in plan["jobs"] if j.stage != "diagnose"]
    diagnoses = [j for j in plan["jobs"] if j.stage == "diagnose"]
    statuses = [run_status(job) for job in runs]
    width = max([len(s.job.row) for s in statuses] + [4])
    lines = [f"sweep {plan['work_dir']} ({plan['label']}, report {plan['report_dir']}): {len(runs)} runs"
             + (f", {len(diagnoses)} diagnoses" if diagnoses else ""),
             f"{'row':<{width}}  seed  {'state':<8}  detail"]
    lines += [f"{s.job.row:<{width}}  {s.job.seed:>4}  {s.state:<8}  {s.detail}".rstrip() for s in statuses]
    counts = {state: sum(s.state == state for s in statuses) for state in STATES}
    diagnosed = sum(job.done() for job in diagnoses)
    summary = ", ".join(f"{state} {n}" for state, n in counts.items())
    if diagnoses:
        summary += f"; diagnoses done {diagnosed} of {len(diagnoses)}"
    left = remaining_seconds(statuses)
    slots = jobs_at_once or max(1, counts["running"])
    if counts["finished"] == len(statuses):
        eta = "nothing left to train"
    elif left is None:
        eta = "ETA: not yet measured (no run of a stage has logged a step)"
    else:
        eta = f"ETA of the rest: {format_duration(left / slots)} at {slots} job{'s' if slots > 1 else ''} at a time"
    lines.append(f"{summary}. {eta}")
    return "\n".join(lines), counts["finished"] == len(statuses) and diagnosed == len(diagnoses)


def sweep_status(paths: list[Path], jobs_at_once: int | None = None) -> tuple[str, bool]:
    """(the tables of every plan found for `paths`, whether all of them are finished)."""
    plans, seen = [], set()
    for path in paths:
        if not path.is_dir():
            raise ValueError(f"{path}: not a directory (a sweep's work dir or report dir)")
    own = {path: sorted((path / PLAN_DIR).glob("*.json")) for path in paths}
    work_plans = [read_plan(p) for files in own.values() for p in files]
    for path in paths:
        if not own[path] and any(_same_dir(plan["report_dir"], path) for plan in work_plans):
            continue  # a report dir given with its work dir: the work dir's plan covers it
        for plan in plans_in(path) or [inferred_plan(path)]:
            key = (str(Path(plan["work_dir"])), plan["label"])
            if key not in seen:
                seen.add(key)
                plans.append(plan)
    tables = [describe(plan, jobs_at_once) for plan in plans]
    return "\n\n".join(table for table, _ in tables), all(done for _, done in tables)
