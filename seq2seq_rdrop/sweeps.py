"""The sweep drivers of scripts/run_comparison.py and scripts/run_semi_supervised.py: per seed one pretraining
shared by every row, then each row fine-tuned from it for the same steps, diagnosed, its small run files copied
into the report directory, and the report rebuilt (reporting.compare). Pretraining, training and diagnosis each
run as their own process (pretrain.py, train.py, scripts/diagnose.py) in the repository, so that a crash or a kill
costs only that run: a finished run is skipped on the next call, a killed one resumes from its saved state."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from .regularizer_names import (COMPARISON_SWEEPS, DEFAULT_COMPARISON, SEMI_SUPERVISED_REFERENCE,
                                SEMI_SUPERVISED_ROWS)
from .reporting import CompareError, compare

REPO = Path(__file__).resolve().parents[1]
RUN_FILES = ("metrics.json", "example_scores.json", "eval_log.csv", "train_log.csv")
DIAGNOSTICS_FILE = "diagnostics.json"
COMMON_DROPOUT = 0.1  # every checkpoint is also diagnosed at this dropout rate, so that rows compare like for like


# --------------------------------------------------------------------------- one run


def run(command: list[str], log_file: Path) -> int:
    """`python COMMAND` in the repository, its output appended to log_file; its exit status."""
    print(f"[{time.strftime('%H:%M:%S')}] {' '.join(command)}", flush=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as log:
        return subprocess.run([sys.executable, *command], cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode


def pretrain(work: Path, seed: int, overrides: tuple[str, ...] = (), name: str | None = None) -> Path | None:
    """The pretrained checkpoint of one seed (trained unless already there) in WORK/<name> (default
    pretrain_seed<S>); None when pretraining failed."""
    out = work / (name or f"pretrain_seed{seed}")
    checkpoint = out / "checkpoint"
    if not (out / "metrics.json").is_file():
        code = run(["pretrain.py", f"seed={seed}", f"hydra.run.dir={out}", "trainer.resume=true", *overrides],
                   out / "console.log")
        if code != 0:
            print(f"pretrain seed {seed} failed (exit {code}); see {out / 'console.log'}", flush=True)
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
    out, kept = work / name, report / "runs" / (f"{report_name}_seed{seed}" if report_name else name)
    if not (kept / "metrics.json").is_file():
        row = list(row_overrides) if row_overrides is not None else [f"regularizer={regularizer}"]
        command = ["train.py", f"+experiment={experiment}", *row, f"seed={seed}",
                   f"model.pretrained={checkpoint}", f"hydra.run.dir={out}", "trainer.resume=true", *overrides]
        code = run(command, out / "console.log")
        if code != 0:
            print(f"{name} failed (exit {code}); see {out / 'console.log'}", flush=True)
            return False
        copy_run_files(out, kept)
    if diagnostics:
        diagnose(out, kept, common_dropout=experiment != "compare_strong")
    return True


def grid_overrides(protocol: dict) -> dict[str, tuple[str, ...]]:
    """{row: train.py overrides} of every row of the tuning grid."""
    return {row: tuple(o) for rows in protocol["tuning"]["grid"].values() for row, o in rows.items()}


def diagnose_on_validation(out: Path, kept: Path, val_size: int) -> None:
    """scripts/diagnose.py of the run's kept weights at their own dropout on the validation split (the last
    val_size training pairs), into kept/diagnostics_val.json, unless it is there."""
    target = kept / "diagnostics_val.json"
    if target.is_file() or not (out / "checkpoint").is_dir():
        return
    diag_dir = out / "diagnostics_val"
    code = run(["scripts/diagnose.py", str(out / "checkpoint"), f"--out-dir={diag_dir}", f"--val-size={val_size}"],
               out / "diagnose.log")
    if code == 0 and (diag_dir / DIAGNOSTICS_FILE).is_file():
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copy2(diag_dir / DIAGNOSTICS_FILE, target)
    else:
        print(f"diagnostics of {out} on validation failed (exit {code}); see {out / 'diagnose.log'}", flush=True)


def ensemble_gap(diagnostics_file: Path) -> float | None:
    """MC-dropout ensemble minus deterministic greedy R-L of a diagnostics file, or None without it."""
    if not diagnostics_file.is_file():
        return None
    measures = json.loads(diagnostics_file.read_text(encoding="utf-8"))["runs"][0]["measures"]
    return float(measures["rouge_l_greedy_ensemble"] - measures["rouge_l_greedy_deterministic"])


def choose_size(probe: dict, size_report: Path) -> dict | None:
    """{"gaps": {size: gap}, "chosen": the smallest size whose gap reaches min_rouge_l_gap, or None} once every
    size is diagnosed (None before)."""
    gaps = {size: ensemble_gap(size_report / "runs" / f"{size}_seed{probe['seed']}" / "diagnostics_val.json")
            for size in probe["sizes"]}
    if any(g is None for g in gaps.values()):
        return None
    chosen = next((size for size, g in gaps.items() if g >= probe["min_rouge_l_gap"]), None)
    return {"gaps": {k: round(v, 4) for k, v in gaps.items()}, "min_rouge_l_gap": probe["min_rouge_l_gap"],
            "chosen": chosen}


def run_size_probe(args, overrides: list[str], protocol: dict) -> int:
    """The size probe (protocol size_probe): per size a pretraining and the baseline row on the probe's seed, each
    diagnosed on validation into REPORT_DIR/size/runs/<size>_seed<S>/; then REPORT_DIR/size/size_choice.json and,
    once the tuning has chosen, the probe's rows on its seeds at the chosen size (REPORT_DIR/size/<size>/runs/)."""
    probe, experiment, grid = protocol["size_probe"], protocol["experiment"], grid_overrides(protocol)
    report, seed, row = args.report_dir / "size", probe["seed"], probe["row"]
    failures = 0
    for size, model in probe["sizes"].items():
        checkpoint = pretrain(args.work_dir, seed, (*pretrain_overrides_of(experiment), *model),
                              name=f"pretrain_{size}_seed{seed}" if model else None)
        if checkpoint is None:
            failures += 1
            continue
        kept = report / "runs" / f"{size}_seed{seed}"
        if model:
            work_row = f"{row}_{size}"
            failures += not fine_tune(args.work_dir, report, work_row, seed, checkpoint, overrides, diagnostics=False,
                                      experiment=experiment, row_overrides=grid[row], report_name=size)
        else:  # the current size is the tuning's own run of the row, trained by --stage tune
            work_row, tuned_run = row, args.report_dir / "tuning" / "runs" / f"{row}_seed{seed}"
            if not (tuned_run / "metrics.json").is_file():
                print(f"size probe: {size} waits for the tuning's {row} seed {seed} (--stage tune)", flush=True)
                failures += 1
                continue
            if not (kept / "metrics.json").is_file():
                copy_run_files(tuned_run, kept)
        diagnose_on_validation(args.work_dir / f"{work_row}_seed{seed}", kept, probe["val_size"])
    choice = choose_size(probe, report)
    if choice is None:
        return failures + 1
    write_atomically(report / "size_choice.json", json.dumps(choice, indent=2) + "\n")
    tuned = args.report_dir / "tuning" / CHOICE_FILE
    if choice["chosen"] is None or not tuned.is_file():
        print(f"size probe: {choice}" + ("" if tuned.is_file() else "; the rows wait for the tuning's choice"), flush=True)
        return failures
    size, chosen = choice["chosen"], json.loads(tuned.read_text(encoding="utf-8"))["chosen"]
    model = tuple(probe["sizes"][size])
    for s in probe["seeds"]:
        checkpoint = pretrain(args.work_dir, s, (*pretrain_overrides_of(experiment), *model),
                              name=f"pretrain_{size}_seed{s}" if model else None)
        if checkpoint is None:
            failures += 1
            continue
        for method in probe["rows"]:
            failures += not fine_tune(args.work_dir, report / size, f"{chosen[method]}_{size}", s, checkpoint, overrides,
                                      diagnostics=args.diagnostics, experiment=experiment,
                                      row_overrides=grid[chosen[method]], report_name=method)
    return failures + rebuild_report(report / size)


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


# --------------------------------------------------------------------------- a sweep


def repository_path(path: Path) -> Path:
    """`path` relative to the repository when it lies inside it, symbolic links left as they are (a work
    dir linked to a bigger disk stays outputs/sweeps/...), so that no machine path reaches the run files."""
    absolute = Path(os.path.normpath(path if path.is_absolute() else REPO / path))
    try:
        return absolute.relative_to(REPO)
    except ValueError:
        return absolute


def sweep_arguments(argv, experiment: str, names_option: str, names, description: str):
    """(args, train.py overrides) of a sweep driver: --seeds, the names to fine-tune with, --work-dir and
    --report-dir (relative to the repository where possible: they end up in the committed metrics.json),
    --no-diagnostics. Changes into the repository, whose relative paths the runs read."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 (a protocol: its stage's)")
    parser.add_argument(names_option, dest="names", nargs="+", default=list(names), help="conf/regularizer names")
    parser.add_argument("--work-dir", default=f"outputs/sweeps/{experiment}", help="weights and full run dirs")
    parser.add_argument("--report-dir", default=f"outputs/reports/{experiment}", help="committed run files + report")
    parser.add_argument("--no-diagnostics", dest="diagnostics", action="store_false",
                        help="fine-tune only; a later run without this flag adds the missing diagnostics")
    args, overrides = parser.parse_known_args(argv)
    args.seeds_default = args.seeds is None
    args.seeds = [0, 1, 2] if args.seeds is None else args.seeds
    os.chdir(REPO)
    args.work_dir, args.report_dir = repository_path(Path(args.work_dir)), repository_path(Path(args.report_dir))
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


def rebuild_report(report_dir: Path, baseline: str = "baseline") -> int:
    """The report of report_dir rebuilt, as `python scripts/compare.py REPORT_DIR --baseline BASELINE` does;
    0, or 2 with the reason on stderr when the runs cannot be compared."""
    try:
        compare(report_dir, baseline=baseline)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


# --------------------------------------------------------------------------- scripts/run_comparison.py


def comparison_arguments(argv, description: str):
    """(args, train.py overrides) of scripts/run_comparison.py: sweep_arguments with the experiment's default
    regularizers, plus args.experiment, args.horizon_steps and args.patience."""
    chooser = argparse.ArgumentParser(add_help=False)
    chooser.add_argument("--experiment", choices=list(COMPARISON_SWEEPS), default=DEFAULT_COMPARISON)
    chooser.add_argument("--horizon-steps", type=int, default=None)
    chooser.add_argument("--patience", type=int, default=8)
    chooser.add_argument("--stage", choices=STAGES, default=None,
                         help="a protocol's stage (conf/protocol/EXPERIMENT.yaml): tune, then final")
    chosen, rest = chooser.parse_known_args(argv)
    args, overrides = sweep_arguments(rest, chosen.experiment, "--regularizers", COMPARISON_SWEEPS[chosen.experiment],
                                      description)
    args.experiment, args.horizon_steps, args.patience = chosen.experiment, chosen.horizon_steps, chosen.patience
    args.stage = chosen.stage
    if args.stage and not (REPO / "conf" / "protocol" / f"{args.experiment}.yaml").is_file():
        raise SystemExit(f"error: --stage: {args.experiment} has no protocol (conf/protocol/{args.experiment}.yaml)")
    return args, overrides


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


def run_comparison(args, overrides: list[str]) -> int:
    """The comparison sweep (or, with args.horizon_steps, the baseline's long run; or a protocol's stage) and its
    report; exit status 1 when a run failed or the report could not be built."""
    if (REPO / "conf" / "protocol" / f"{args.experiment}.yaml").is_file():
        return run_protocol_stage(args, overrides)
    if args.horizon_steps:
        return 1 if horizon(args, overrides, args.experiment, args.horizon_steps, args.patience) else 0
    failures = run_sweep(args, overrides, args.experiment, pretrain_overrides_of(args.experiment))
    return 1 if failures or rebuild_report(args.report_dir) else 0


# --------------------------------------------------------------------------- a declared protocol (compare_fair)


STAGES = ("tune", "final", "size")
CHOICE_FILE = "choice.json"  # the tuning's chosen row of each method, in the tuning report directory


def load_protocol(experiment: str) -> dict:
    """conf/protocol/<experiment>.yaml as a plain dict."""
    return yaml.safe_load((REPO / "conf" / "protocol" / f"{experiment}.yaml").read_text(encoding="utf-8"))


def tuning_rows(protocol: dict, methods=None) -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, row, train.py overrides) of the tuning grid, round-robin over the methods (each method's first
    configuration, then each one's second, ...) so that a sweep cut short has tried every method alike."""
    grid = {m: list(rows.items()) for m, rows in protocol["tuning"]["grid"].items() if not methods or m in methods}
    depth = max((len(rows) for rows in grid.values()), default=0)
    return [(m, rows[i][0], tuple(rows[i][1])) for i in range(depth) for m, rows in grid.items() if i < len(rows)]


def selection_score(run_dir: Path, select_on: dict) -> float | None:
    """The tuning's selection score of one finished run (e.g. the kept weights' beam-16 R-L on val), or None."""
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        return None
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    scores = metrics.get(select_on["split"]) if select_on["decode"] == "main" else \
        (metrics.get("decodes", {}).get(select_on["decode"]) or {}).get(select_on["split"])
    return None if not scores else float(scores[select_on["metric"]])


def choose_configurations(protocol: dict, tuning_report: Path) -> dict | None:
    """{"chosen": {method: row}, "scores": {row: {seed: score}}} once every row of the grid has finished on every
    tuning seed (None before): each method's row with the best mean selection score over the tuning seeds."""
    tuning = protocol["tuning"]
    scores: dict = {}
    for method, row, _ in tuning_rows(protocol):
        scores[row] = {seed: selection_score(tuning_report / "runs" / f"{row}_seed{seed}", tuning["select_on"])
                       for seed in tuning["seeds"]}
    if any(v is None for per_seed in scores.values() for v in per_seed.values()):
        return None
    chosen = {}
    for method, rows in tuning["grid"].items():
        means = {row: sum(scores[row].values()) / len(scores[row]) for row in rows}
        chosen[method] = max(rows, key=lambda row: (means[row], -list(rows).index(row)))  # ties: the grid's first
    return {"chosen": chosen, "select_on": tuning["select_on"], "seeds": tuning["seeds"],
            "scores": {row: {str(seed): round(v, 4) for seed, v in per_seed.items()} for row, per_seed in scores.items()}}


def write_atomically(path: Path, text: str) -> None:
    """path's new content, or its old one if the write is cut short (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_tuning(args, overrides: list[str], protocol: dict) -> int:
    """Every grid row on each of args.seeds (default: the protocol's tuning seeds) into REPORT_DIR/tuning/runs,
    then the tuning report and, once the grid is complete, REPORT_DIR/tuning/choice.json. Failed runs counted."""
    experiment, report = protocol["experiment"], args.report_dir / "tuning"
    failures = 0
    for seed in args.seeds:
        checkpoint = pretrain(args.work_dir, seed, pretrain_overrides_of(experiment))
        if checkpoint is None:
            failures += 1
            continue
        for _, row, row_overrides in tuning_rows(protocol, args.names):
            failures += not fine_tune(args.work_dir, report, row, seed, checkpoint, overrides, diagnostics=False,
                                      experiment=experiment, row_overrides=row_overrides)
    choice = choose_configurations(protocol, report)
    if choice is not None:
        write_atomically(report / CHOICE_FILE, json.dumps(choice, indent=2) + "\n")
        print(f"tuning complete; chosen: {choice['chosen']}", flush=True)
    return failures + rebuild_report(report, baseline=protocol["tuning"]["report_baseline"])


def run_final(args, overrides: list[str], protocol: dict) -> int:
    """Each method's chosen row (REPORT_DIR/tuning/choice.json) on each of args.seeds (default: the protocol's final
    seeds) into REPORT_DIR/runs/<method>_seed<S>: a tuning seed's run is taken over (its files copied), the others
    trained; each diagnosed. Then the report. Failed runs counted; refused (exit 2) before the tuning is complete."""
    experiment = protocol["experiment"]
    choice_file = args.report_dir / "tuning" / CHOICE_FILE
    if not choice_file.is_file():
        print(f"error: {choice_file}: no tuning choice yet; run --stage tune to the end first", file=sys.stderr)
        return 2
    chosen = json.loads(choice_file.read_text(encoding="utf-8"))["chosen"]
    grid = grid_overrides(protocol)
    failures = 0
    for seed in args.seeds:
        checkpoint = pretrain(args.work_dir, seed, pretrain_overrides_of(experiment))
        if checkpoint is None:
            failures += 1
            continue
        for method in (m for m in chosen if not args.names or m in args.names):
            row, kept = chosen[method], args.report_dir / "runs" / f"{method}_seed{seed}"
            tuned = args.report_dir / "tuning" / "runs" / f"{row}_seed{seed}"
            if not (kept / "metrics.json").is_file() and (tuned / "metrics.json").is_file():
                copy_run_files(tuned, kept)
            if (kept / "metrics.json").is_file():
                if args.diagnostics:
                    diagnose(args.work_dir / f"{row}_seed{seed}", kept, common_dropout=True)
                continue
            failures += not fine_tune(args.work_dir, args.report_dir, row, seed, checkpoint, overrides,
                                      diagnostics=args.diagnostics, experiment=experiment, row_overrides=grid[row],
                                      report_name=method)
    return failures + rebuild_report(args.report_dir)




def run_protocol_stage(args, overrides: list[str]) -> int:
    """scripts/run_comparison.py --experiment E --stage tune|final for an experiment with a declared protocol;
    --seeds defaults to the stage's seeds and --regularizers filters its methods."""
    protocol = load_protocol(args.experiment)
    if args.stage is None:
        print(f"error: --stage: {args.experiment} runs by stages; choose one of {', '.join(STAGES)}", file=sys.stderr)
        return 2
    if args.seeds_default:
        args.seeds = list(protocol["tuning" if args.stage == "tune" else "final"]["seeds"])
    frozen = args.report_dir / "protocol.yaml"  # the report reads its endpoints and family from this copy
    if not frozen.is_file():
        write_atomically(frozen, (REPO / "conf" / "protocol" / f"{args.experiment}.yaml").read_text(encoding="utf-8"))
    methods = set(protocol["tuning"]["grid"])
    args.names = [n for n in args.names if n in methods]
    run_stage = {"tune": run_tuning, "final": run_final, "size": run_size_probe}[args.stage]
    return 1 if run_stage(args, overrides, protocol) else 0


# --------------------------------------------------------------------------- scripts/run_semi_supervised.py


SEMI_SUPERVISED = "semi_supervised"  # its conf/experiment preset
# train.py overrides that say where the data are: pretraining must read the same files
PRETRAIN_DATA_KEYS = ("data.dir", "data.train_file", "data.dev_file", "data.holdout_test", "data.holdout_offset")
SEMI_SUPERVISED_NOTES = """\
Semi-supervised R-Drop (issue 18), built by `python scripts/run_semi_supervised.py`. Labelled: the
first {labeled} pairs of train.tsv. Unlabelled: the abstracts of the other training pairs, titles never
read. Per seed one pretraining that saw only the labelled pairs' titles (pretrain.train_titles={labeled}),
then every row fine-tuned for the same steps (+experiment=semi_supervised). Rows: baseline and rdrop use
the labelled pairs only; rdrop_semi adds the symmetric KL between two dropout passes over the model's own
greedy title of unlabelled abstracts; self_train adds the CE on those titles; rdrop_semi_self_train both.
Δ and the bootstrap are against **rdrop** (R-Drop on the labelled pairs). The published rows (the
article's, 10k labelled pairs) are not comparable to these runs."""


def semi_supervised_arguments(argv, description: str):
    """(args, train.py overrides) of scripts/run_semi_supervised.py: sweep_arguments with --rows."""
    return sweep_arguments(argv, SEMI_SUPERVISED, "--rows", SEMI_SUPERVISED_ROWS, description)


def labeled_pairs(overrides: list[str]) -> int:
    """data.max_train_samples as the runs will use it: a command-line override, else the preset's."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") == "data.max_train_samples":
            return int(value)
    preset = yaml.safe_load((REPO / "conf" / "experiment" / f"{SEMI_SUPERVISED}.yaml").read_text(encoding="utf-8"))
    return int(preset["data"]["max_train_samples"])


def semi_supervised_pretrain_overrides(overrides: list[str], labeled: int) -> tuple[str, ...]:
    """What pretrain.py gets: the withheld titles left out, and the fine-tuning's data location."""
    located = [o for o in overrides if o.partition("=")[0].lstrip("+") in PRETRAIN_DATA_KEYS]
    return (f"pretrain.train_titles={labeled}", *located)


def write_semi_supervised_notes(report: Path, labeled: int) -> None:
    """REPORT_DIR/notes.md with the set-up, written once (edits made afterwards stay)."""
    notes = report / "notes.md"
    if not notes.is_file():
        report.mkdir(parents=True, exist_ok=True)
        notes.write_text(SEMI_SUPERVISED_NOTES.format(labeled=labeled) + "\n", encoding="utf-8")


def run_semi_supervised(args, overrides: list[str]) -> int:
    """The semi-supervised sweep and its report (Δ against SEMI_SUPERVISED_REFERENCE); exit status 1 when a
    run failed or the report could not be built."""
    labeled = labeled_pairs(overrides)
    write_semi_supervised_notes(args.report_dir, labeled)
    failures = run_sweep(args, overrides, SEMI_SUPERVISED, semi_supervised_pretrain_overrides(overrides, labeled))
    return 1 if failures or rebuild_report(args.report_dir, baseline=SEMI_SUPERVISED_REFERENCE) else 0
