"""Run a regularizer comparison sweep, resumably, and rebuild its report.

    python scripts/run_comparison.py [--experiment compare_strong|compare_converged]
                                     [--seeds 0 1 2] [--regularizers baseline random_replace ...]
                                     [--work-dir outputs/sweeps/compare_strong]
                                     [--report-dir outputs/reports/compare_strong] [--no-diagnostics]
                                     [train.py overrides ...]

--experiment names conf/experiment/<name>.yaml and the default regularizers (EXPERIMENTS below):
compare_strong, the 300-step regime (the default), or compare_converged, the converged regime (a validation
split carved from the training file, which pretraining leaves out too, chooses each run's step).
    python scripts/run_comparison.py --experiment compare_converged --horizon-steps 3000 --patience 8
runs the baseline alone, long and stopped by patience on validation, into REPORT_DIR/horizon/: the
learning curve that sets the sweep's trainer.max_steps.

For each seed: one `pretrain.py seed=S` run (conf/pretrain.yaml, 600 steps), shared by every
regularizer of that seed; then, for each regularizer,
    python train.py +experiment=EXPERIMENT regularizer=R seed=S model.pretrained=<pretrain>/checkpoint
(the same number of optimizer steps for all), then the dropout/exposure-bias diagnostics of its final
weights when scripts/diagnose.py is there. Each finished run's small files (metrics.json,
example_scores.json, eval_log.csv, train_log.csv, diagnostics.json; no weights, no data rows) are
copied to REPORT_DIR/runs/R_seedS/, and `scripts/compare.py REPORT_DIR` rebuilds the report from them.

A (regularizer, seed) whose files are already in REPORT_DIR/runs is skipped; a killed run resumes
from its saved state. Weights stay under WORK_DIR (not committed). Extra arguments go to every
train.py run, e.g. `data.test_file=test.tsv` to score every run on another labelled split.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "compare_strong"
EXPERIMENTS = {  # experiment -> the regularizers it compares by default (conf/regularizer names)
    "compare_strong": ("baseline", "random_replace", "random_replace_vocab", "grad_penalty", "rdrop"),
    "compare_converged": ("baseline", "baseline_dropout03", "random_replace", "grad_penalty", "rdrop",
                          "rdrop_random_replace"),
}
REGULARIZERS = EXPERIMENTS[EXPERIMENT]
RUN_FILES = ("metrics.json", "example_scores.json", "eval_log.csv", "train_log.csv")
DIAGNOSTICS_FILE = "diagnostics.json"
COMMON_DROPOUT = 0.1  # every checkpoint is also diagnosed at this dropout rate, so that rows compare like for like


def run(command: list[str], log_file: Path) -> int:
    print(f"[{time.strftime('%H:%M:%S')}] {' '.join(command)}", flush=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as log:
        return subprocess.run([sys.executable, *command], cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode


def pretrain(work: Path, seed: int, overrides: tuple[str, ...] = ()) -> Path | None:
    out = work / f"pretrain_seed{seed}"
    checkpoint = out / "checkpoint"
    if not (out / "metrics.json").is_file():
        code = run(["pretrain.py", f"seed={seed}", f"hydra.run.dir={out}", "trainer.resume=true", *overrides],
                   out / "console.log")
        if code != 0:
            print(f"pretrain seed {seed} failed (exit {code}); see {out / 'console.log'}", flush=True)
            return None
    return checkpoint


def fine_tune(work: Path, report: Path, regularizer: str, seed: int, checkpoint: Path, overrides: list[str],
              diagnostics: bool = True, experiment: str = EXPERIMENT) -> bool:
    name = f"{regularizer}_seed{seed}"
    out, kept = work / name, report / "runs" / name
    if not (kept / "metrics.json").is_file():
        command = ["train.py", f"+experiment={experiment}", f"regularizer={regularizer}", f"seed={seed}",
                   f"model.pretrained={checkpoint}", f"hydra.run.dir={out}", "trainer.resume=true", *overrides]
        code = run(command, out / "console.log")
        if code != 0:
            print(f"{name} failed (exit {code}); see {out / 'console.log'}", flush=True)
            return False
        kept.mkdir(parents=True, exist_ok=True)
        for file in RUN_FILES:
            if (out / file).is_file():
                shutil.copy2(out / file, kept / file)
    if diagnostics:
        diagnose(out, kept, common_dropout=experiment != "compare_strong")
    return True


def diagnose(out: Path, kept: Path, common_dropout: bool = False) -> None:
    """The dropout-consistency and exposure-bias measures (scripts/diagnose.py) of the run's kept weights at
    their own dropout (diagnostics.json) and, with common_dropout, at COMMON_DROPOUT
    (diagnostics_dropout<P>.json)."""
    for dropout in (None, COMMON_DROPOUT) if common_dropout else (None,):
        name = DIAGNOSTICS_FILE if dropout is None else f"diagnostics_dropout{dropout}.json"
        if (kept / name).is_file() or not (out / "checkpoint").is_dir():
            continue
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


def _relative(path: Path) -> Path:
    """`path` relative to the repository when it lies inside it, symbolic links left as they are (a work
    dir linked to a bigger disk stays outputs/sweeps/...), so that no machine path reaches the run files."""
    absolute = Path(os.path.normpath(path if path.is_absolute() else REPO / path))
    try:
        return absolute.relative_to(REPO)
    except ValueError:
        return absolute


def build_report(report: Path, *options: str) -> int:
    return subprocess.run([sys.executable, "scripts/compare.py", str(report), *options], cwd=REPO).returncode


def sweep_arguments(argv, experiment: str, names_option: str, names, description: str):
    """(args, train.py overrides) of a sweep driver: --seeds, the names to fine-tune with, --work-dir and
    --report-dir (relative to the repository where possible: they end up in the committed metrics.json),
    --no-diagnostics. Changes into the repository, whose relative paths the runs read."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(names_option, dest="names", nargs="+", default=list(names), help="conf/regularizer names")
    parser.add_argument("--work-dir", default=f"outputs/sweeps/{experiment}", help="weights and full run dirs")
    parser.add_argument("--report-dir", default=f"outputs/reports/{experiment}", help="committed run files + report")
    parser.add_argument("--no-diagnostics", dest="diagnostics", action="store_false",
                        help="fine-tune only; a later run without this flag adds the missing diagnostics")
    args, overrides = parser.parse_known_args(argv)
    os.chdir(REPO)
    args.work_dir, args.report_dir = _relative(Path(args.work_dir)), _relative(Path(args.report_dir))
    return args, overrides


def run_sweep(args, overrides: list[str], experiment: str, pretrain_overrides: tuple[str, ...] = ()) -> int:
    """Per seed one pretraining, then every name fine-tuned from it; the number of failed runs."""
    failures = 0
    for seed in args.seeds:
        checkpoint = pretrain(args.work_dir, seed, pretrain_overrides)
        if checkpoint is None:
            failures += 1
            continue
        for name in args.names:
            failures += not fine_tune(args.work_dir, args.report_dir, name, seed, checkpoint, overrides,
                                      args.diagnostics, experiment=experiment)
    return failures


def pretrain_overrides_of(experiment: str) -> tuple[str, ...]:
    """pretrain.py overrides an experiment needs: its validation split (data.val_size) left out."""
    val_size = OmegaConf.select(OmegaConf.load(REPO / "conf" / "experiment" / f"{experiment}.yaml"), "data.val_size")
    return (f"data.val_size={val_size}",) if val_size else ()


def horizon(args, overrides: list[str], experiment: str, steps: int, patience: int) -> int:
    """The baseline of each seed trained up to `steps` and stopped by `patience` evaluations without a better
    validation score; its run files land in REPORT_DIR/horizon/. The number of failed runs."""
    failures = 0
    for seed in args.seeds:
        checkpoint = pretrain(args.work_dir, seed, pretrain_overrides_of(experiment))
        failures += checkpoint is None or not fine_tune(
            args.work_dir / "horizon", args.report_dir / "horizon", "baseline", seed, checkpoint,
            [f"trainer.max_steps={steps}", f"trainer.patience={patience}", *overrides], diagnostics=False,
            experiment=experiment)
    return failures


def main(argv: list[str] | None = None) -> int:
    chooser = argparse.ArgumentParser(add_help=False)
    chooser.add_argument("--experiment", choices=list(EXPERIMENTS), default=EXPERIMENT)
    chooser.add_argument("--horizon-steps", type=int, default=None)
    chooser.add_argument("--patience", type=int, default=8)
    chosen, rest = chooser.parse_known_args(argv)
    experiment = chosen.experiment
    args, overrides = sweep_arguments(rest, experiment, "--regularizers", EXPERIMENTS[experiment], __doc__)
    if chosen.horizon_steps:
        return 1 if horizon(args, overrides, experiment, chosen.horizon_steps, chosen.patience) else 0
    failures = run_sweep(args, overrides, experiment, pretrain_overrides_of(experiment))
    return 1 if failures or build_report(args.report_dir) else 0


if __name__ == "__main__":
    sys.exit(main())
