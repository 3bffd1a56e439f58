"""How a sweep's jobs (seq2seq_rdrop.sweep_runs.Job) run: one after another in the driver's process, in the
plan's order (the default); or, given `hydra/launcher=NAME` (conf/hydra/launcher/: joblib_2cpu, slurm, or any
launcher Hydra knows), stage by stage through that launcher: every pending pretraining, then every fine-tuning
whose seed's pretraining exists, then the diagnoses of the finished fine-tunings, each stage one Hydra multirun
of scripts/sweep_job.py whose jobs each run one Job in a launcher worker (joblib) or a cluster job (submitit).
Each job still starts its run as its own process, so a crash costs only that run. Every call writes the sweep's
plan (WORK_DIR/.sweep/<label>.json), which scripts/sweep_status.py reads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .atomic_files import write_text_atomically as write_atomically
from .sweep_runs import REPO, STAGES, Job, run_when_ready

PLAN_DIR = ".sweep"  # in the work dir: the plans, each stage's job list and Hydra's multirun folders
STAGE_APP = "scripts/sweep_job.py"
STAGE_APP_OVERRIDES: tuple[str, ...] = ()  # added to every stage's command (tests set a fake job_function)
STAGE_OPTION_PREFIXES = ("hydra/", "hydra.")  # a driver's arguments for the stage app, not for train.py


def split_stage_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(the stage app's overrides: hydra/launcher=..., hydra.launcher.KEY=...; the rest: train.py's)."""
    stage = [o for o in overrides if o.lstrip("+~").startswith(STAGE_OPTION_PREFIXES)]
    return stage, [o for o in overrides if o not in stage]


def plan_path(work_dir: Path, label: str) -> Path:
    return Path(work_dir) / PLAN_DIR / f"{label}.json"


def write_plan(work_dir: Path, label: str, report_dir: Path, experiment: str, jobs: list[Job],
               stage_overrides: list[str]) -> Path:
    """WORK_DIR/.sweep/<label>.json: what this call of the driver runs, for scripts/sweep_status.py."""
    plan = {"label": label, "experiment": experiment, "work_dir": str(work_dir), "report_dir": str(report_dir),
            "launcher": stage_overrides, "written": time.strftime("%Y-%m-%d %H:%M:%S"),
            "jobs": [job.to_json() for job in jobs]}
    path = plan_path(work_dir, label)
    write_atomically(path, json.dumps(plan, indent=1) + "\n")
    return path


def read_plan(path: Path) -> dict:
    """A plan file with its jobs as Job objects; ValueError naming the file when it is not one."""
    try:
        plan = json.loads(Path(path).read_text(encoding="utf-8"))
        plan["jobs"] = [Job.from_json(job) for job in plan["jobs"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a sweep plan ({type(e).__name__}: {e})") from None
    return plan


def run_jobs(jobs: list[Job], work_dir: Path, label: str, report_dir: Path, experiment: str,
             stage_overrides: list[str]) -> int:
    """Every job not done yet, in this process or (stage_overrides) stage by stage through the launcher; the
    number of pretrainings and fine-tunings left unfinished (failed, or waiting on a failed one)."""
    write_plan(work_dir, label, report_dir, experiment, jobs, stage_overrides)
    if stage_overrides:
        launch_stages(jobs, Path(work_dir) / PLAN_DIR / label, stage_overrides)
    else:
        for job in jobs:
            run_when_ready(job)
    return sum(not job.done() for job in jobs if job.stage != "diagnose")


def launch_stages(jobs: list[Job], folder: Path, stage_overrides: list[str]) -> None:
    """Each stage (STAGES order) as one multirun of its jobs that are not done and whose inputs exist."""
    for stage in STAGES:
        ready = []
        for job in (j for j in jobs if j.stage == stage and not j.done()):
            needed = job.waiting_for()
            if needed is None:
                ready.append(job)
            else:
                print(f"{job.name} ({stage}): not started, {needed} is missing", flush=True)
        if ready:
            launch_stage(ready, folder / f"{stage}.json", folder / stage, stage_overrides)


def launch_stage(jobs: list[Job], plan: Path, sweep_dir: Path, stage_overrides: list[str]) -> int:
    """`python scripts/sweep_job.py -m plan=PLAN job=range(0,N) ...`: the jobs through the launcher; its exit
    status (the driver judges each job by its files, not by this)."""
    write_atomically(plan, json.dumps([job.to_json() for job in jobs], indent=1) + "\n")
    command = stage_command(plan, len(jobs), sweep_dir, stage_overrides)
    print(f"[{time.strftime('%H:%M:%S')}] {jobs[0].stage}: {len(jobs)} jobs: {' '.join(command)}", flush=True)
    return subprocess.run([sys.executable, *command], cwd=REPO).returncode


def stage_command(plan: Path, n_jobs: int, sweep_dir: Path, stage_overrides: list[str]) -> list[str]:
    return [STAGE_APP, "-m", f"plan='{plan}'", f"job=range(0,{n_jobs})", f"hydra.sweep.dir='{sweep_dir}'",
            *STAGE_APP_OVERRIDES, *stage_overrides]


def threads_per_job(launcher) -> int | None:
    """Torch threads for each job of a launcher: the cores shared among joblib's n_jobs (one each for
    joblib_2cpu on two cores), a SLURM job's cpus_per_task; None (torch's default) for another launcher."""
    n_jobs = launcher.get("n_jobs")
    if n_jobs is not None:
        cores = os.cpu_count() or 1
        return max(1, cores // n_jobs) if n_jobs > 0 else 1  # joblib's n_jobs=-1: as many jobs as cores
    return launcher.get("cpus_per_task")


def run_planned_job(plan: str, index: int, job_function: str, launcher) -> bool:
    """What each job of scripts/sweep_job.py does: the Job at `index` of the stage's plan file, run by
    job_function (default sweep_runs.run_when_ready) from the repository, with threads_per_job torch threads."""
    from hydra.utils import get_method

    os.chdir(REPO)  # the plan's paths, like the runs', are relative to the repository
    threads = threads_per_job(launcher)
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by the run's process (torch's default count)
    job = Job.from_json(json.loads(Path(plan).read_text(encoding="utf-8"))[index])
    ok = get_method(job_function)(job)
    print(f"[{time.strftime('%H:%M:%S')}] {job.name} ({job.stage}): {'done' if ok else 'not done'}", flush=True)
    return bool(ok)
