"""The sweep drivers of scripts/run_comparison.py and scripts/run_semi_supervised.py: per seed one pretraining
shared by every row, then each row fine-tuned from it for the same steps, diagnosed, its small run files copied
into the report directory, and the report rebuilt (reporting.compare). Each driver lists its runs as Jobs
(seq2seq_rdrop.sweep_runs: each run is its own process, a finished run skipped, a killed one resumed) and hands
them to seq2seq_rdrop.sweep_launch, which runs them in this process or, given hydra/launcher=NAME, stage by stage
through that Hydra launcher."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from .regularizer_names import (COMPARISON_SWEEPS, DEFAULT_COMPARISON, SEMI_SUPERVISED_REFERENCE,
                                SEMI_SUPERVISED_ROWS)
from .reporting import CompareError, compare
from .sweep_launch import run_jobs, split_stage_overrides
from . import sweep_runs
from .atomic_files import write_text_atomically as write_atomically
from .sweep_runs import REPO, Job, copy_run_files, pretrain_dir


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
    --no-diagnostics; args.stage_overrides, the hydra/launcher=NAME and hydra.launcher.KEY=VALUE arguments that
send the sweep's stages through a Hydra launcher (seq2seq_rdrop.sweep_launch). Changes into the repository, whose relative paths the runs read."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 (a protocol: its stage's)")
    parser.add_argument(names_option, dest="names", nargs="+", default=list(names), help="conf/regularizer names")
    parser.add_argument("--work-dir", default=f"outputs/sweeps/{experiment}", help="weights and full run dirs")
    parser.add_argument("--report-dir", default=f"outputs/reports/{experiment}", help="committed run files + report")
    parser.add_argument("--no-diagnostics", dest="diagnostics", action="store_false",
                        help="fine-tune only; a later run without this flag adds the missing diagnostics")
    args, rest = parser.parse_known_args(argv)
    args.stage_overrides, overrides = split_stage_overrides(rest)  # hydra/launcher=...: the stages' launcher
    args.seeds_default = args.seeds is None
    args.seeds = [0, 1, 2] if args.seeds is None else args.seeds
    os.chdir(REPO)
    args.work_dir, args.report_dir = repository_path(Path(args.work_dir)), repository_path(Path(args.report_dir))
    return args, overrides


def sweep_jobs(args, overrides: list[str], experiment: str, pretrain_overrides: tuple[str, ...] = ()) -> list[Job]:
    """Per seed one pretraining, then every name fine-tuned from it (and diagnosed, unless --no-diagnostics)."""
    jobs = []
    for seed in args.seeds:
        jobs.append(Job.pretraining(args.work_dir, seed, pretrain_overrides))
        for name in args.names:
            jobs += fine_tuning_jobs(args.work_dir, args.report_dir, name, seed, overrides, experiment,
                                     diagnostics=args.diagnostics, common_dropout=experiment != "compare_strong")
    return jobs


def fine_tuning_jobs(work: Path, report: Path, row: str, seed: int, overrides: list[str], experiment: str,
                     diagnostics: bool, common_dropout: bool, pretrain_work: Path | None = None,
                     row_overrides=None, report_name: str | None = None) -> list[Job]:
    """A row's fine-tuning from its seed's pretraining (in pretrain_work, default work) and, with diagnostics,
    the diagnosis of its kept weights (at their own dropout and, with common_dropout, at the common one)."""
    checkpoint = pretrain_dir(pretrain_work or work, seed) / "checkpoint"
    fine_tuning = Job.fine_tuning(work, report, row, seed, checkpoint, overrides, experiment, row_overrides,
                                  report_name)
    return [fine_tuning, *([Job.diagnosis(fine_tuning, common_dropout)] if diagnostics else [])]


def run_sweep(args, overrides: list[str], experiment: str, pretrain_overrides: tuple[str, ...] = ()) -> int:
    """sweep_jobs run (sweep_launch.run_jobs); the number of runs left unfinished."""
    return run_jobs(sweep_jobs(args, overrides, experiment, pretrain_overrides), args.work_dir, "sweep",
                    args.report_dir, experiment, args.stage_overrides)


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
    """pretrain.py overrides an experiment needs: its validation split (data.val_size) left out. The preset is
    composed as train.py composes it, so that a value it inherits (compare_fair's, from compare_converged) counts."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        val_size = OmegaConf.select(compose("train", overrides=[f"+experiment={experiment}"]), "data.val_size")
    return (f"data.val_size={val_size}",) if val_size else ()


def horizon_jobs(args, overrides: list[str], experiment: str, steps: int, patience: int) -> list[Job]:
    """The baseline of each seed trained up to `steps` and stopped by `patience` evaluations without a better
    validation score, into WORK_DIR/horizon/ and REPORT_DIR/horizon/runs/."""
    jobs = []
    for seed in args.seeds:
        jobs.append(Job.pretraining(args.work_dir, seed, pretrain_overrides_of(experiment)))
        jobs += fine_tuning_jobs(args.work_dir / "horizon", args.report_dir / "horizon", "baseline", seed,
                                 [f"trainer.max_steps={steps}", f"trainer.patience={patience}", *overrides],
                                 experiment, diagnostics=False, common_dropout=False, pretrain_work=args.work_dir)
    return jobs


def run_comparison(args, overrides: list[str]) -> int:
    """The comparison sweep (or, with args.horizon_steps, the baseline's long run; or a protocol's stage) and its
    report; exit status 1 when a run failed or the report could not be built."""
    if (REPO / "conf" / "protocol" / f"{args.experiment}.yaml").is_file():
        return run_protocol_stage(args, overrides)
    if args.horizon_steps:
        jobs = horizon_jobs(args, overrides, args.experiment, args.horizon_steps, args.patience)
        return 1 if run_jobs(jobs, args.work_dir, "horizon", args.report_dir / "horizon", args.experiment,
                             args.stage_overrides) else 0
    failures = run_sweep(args, overrides, args.experiment, pretrain_overrides_of(args.experiment))
    return 1 if failures or rebuild_report(args.report_dir) else 0


# --------------------------------------------------------------------------- a declared protocol (compare_fair)


STAGES = ("tune", "final", "size")
CHOICE_FILE = "choice.json"  # the tuning's chosen row of each method, in the tuning report directory


def load_protocol(experiment: str) -> dict:
    """conf/protocol/<experiment>.yaml as a plain dict."""
    return yaml.safe_load((REPO / "conf" / "protocol" / f"{experiment}.yaml").read_text(encoding="utf-8"))


def grid_overrides(protocol: dict) -> dict[str, tuple[str, ...]]:
    """{row: train.py overrides} of every row of the tuning grid."""
    return {row: tuple(o) for rows in protocol["tuning"]["grid"].values() for row, o in rows.items()}


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



def tuning_jobs(args, overrides: list[str], protocol: dict) -> list[Job]:
    """Per seed of args.seeds its pretraining, then every grid row (round-robin over the methods) into
    REPORT_DIR/tuning/runs, without diagnostics."""
    experiment, report = protocol["experiment"], args.report_dir / "tuning"
    jobs = []
    for seed in args.seeds:
        jobs.append(Job.pretraining(args.work_dir, seed, pretrain_overrides_of(experiment)))
        for _, row, row_overrides in tuning_rows(protocol, args.names):
            jobs += fine_tuning_jobs(args.work_dir, report, row, seed, overrides, experiment, diagnostics=False,
                                     common_dropout=False, row_overrides=row_overrides)
    return jobs


def run_tuning(args, overrides: list[str], protocol: dict) -> int:
    """Every grid row on each of args.seeds (default: the protocol's tuning seeds) into REPORT_DIR/tuning/runs,
    then the tuning report and, once the grid is complete, REPORT_DIR/tuning/choice.json. Failed runs counted."""
    experiment, report = protocol["experiment"], args.report_dir / "tuning"
    failures = run_jobs(tuning_jobs(args, overrides, protocol), args.work_dir, "tune", report, experiment,
                        args.stage_overrides)
    choice = choose_configurations(protocol, report)
    if choice is not None:
        write_atomically(report / CHOICE_FILE, json.dumps(choice, indent=2) + "\n")
        print(f"tuning complete; chosen: {choice['chosen']}", flush=True)
    return failures + rebuild_report(report, baseline=protocol["tuning"]["report_baseline"])


def final_jobs(args, overrides: list[str], protocol: dict, chosen: dict) -> list[Job]:
    """Per seed of args.seeds its pretraining, then each method's chosen row into REPORT_DIR/runs/<method>_seed<S>
    (a tuning seed's run is taken over first: take_over_tuning_runs), diagnosed unless --no-diagnostics."""
    grid = grid_overrides(protocol)
    jobs = []
    for seed in args.seeds:
        jobs.append(Job.pretraining(args.work_dir, seed, pretrain_overrides_of(protocol["experiment"])))
        for method in (m for m in chosen if not args.names or m in args.names):
            jobs += fine_tuning_jobs(args.work_dir, args.report_dir, chosen[method], seed, overrides,
                                     protocol["experiment"], diagnostics=args.diagnostics, common_dropout=True,
                                     row_overrides=grid[chosen[method]], report_name=method)
    return jobs


def take_over_tuning_runs(args, chosen: dict) -> None:
    """A chosen row's tuning run of a seed becomes that method's final run of the seed (its files copied)."""
    for seed in args.seeds:
        for method, row in ((m, r) for m, r in chosen.items() if not args.names or m in args.names):
            kept = args.report_dir / "runs" / f"{method}_seed{seed}"
            tuned = args.report_dir / "tuning" / "runs" / f"{row}_seed{seed}"
            if not (kept / "metrics.json").is_file() and (tuned / "metrics.json").is_file():
                copy_run_files(tuned, kept)


def read_choice(report_dir: Path) -> dict | None:
    """The tuning's chosen row of each method (REPORT_DIR/tuning/choice.json), None before the tuning ends."""
    choice_file = report_dir / "tuning" / CHOICE_FILE
    return json.loads(choice_file.read_text(encoding="utf-8"))["chosen"] if choice_file.is_file() else None


def run_final(args, overrides: list[str], protocol: dict) -> int:
    """Each method's chosen row (REPORT_DIR/tuning/choice.json) on each of args.seeds (default: the protocol's final
    seeds) into REPORT_DIR/runs/<method>_seed<S>: a tuning seed's run is taken over (its files copied), the others
    trained; each diagnosed. Then the report. Failed runs counted; refused (exit 2) before the tuning is complete."""
    chosen = read_choice(args.report_dir)
    if chosen is None:
        print(f"error: {args.report_dir / 'tuning' / CHOICE_FILE}: no tuning choice yet; run --stage tune to the end "
              "first", file=sys.stderr)
        return 2
    take_over_tuning_runs(args, chosen)
    failures = run_jobs(final_jobs(args, overrides, protocol, chosen), args.work_dir, "final", args.report_dir,
                        protocol["experiment"], args.stage_overrides)
    return failures + rebuild_report(args.report_dir)


def size_probe_jobs(args, overrides: list[str], protocol: dict) -> list[Job]:
    """Per larger size (protocol size_probe) its pretraining and the probe's baseline row on the probe's seed, in
    WORK_DIR/size_<size>/ and REPORT_DIR/size/runs/<size>_seed<S>/ (the current size is the tuning's own run)."""
    probe, experiment = protocol["size_probe"], protocol["experiment"]
    row, seed, jobs = probe["row"], probe["seed"], []
    for size, model in ((s, m) for s, m in probe["sizes"].items() if m):
        work = args.work_dir / f"size_{size}"
        jobs.append(Job.pretraining(work, seed, (*pretrain_overrides_of(experiment), *model)))
        jobs += fine_tuning_jobs(work, args.report_dir / "size", row, seed, overrides, experiment, diagnostics=False,
                                 common_dropout=False, row_overrides=grid_overrides(protocol)[row], report_name=size)
    return jobs


def size_rows_jobs(args, overrides: list[str], protocol: dict, size: str, chosen: dict) -> list[Job]:
    """The probe's rows (each method at its tuned row) on args.seeds at `size`, into REPORT_DIR/size/<size>/runs/."""
    probe, experiment = protocol["size_probe"], protocol["experiment"]
    work, jobs = args.work_dir / f"size_{size}", []
    for seed in args.seeds:
        jobs.append(Job.pretraining(work, seed, (*pretrain_overrides_of(experiment), *probe["sizes"][size])))
        for method in probe["rows"]:
            jobs += fine_tuning_jobs(work, args.report_dir / "size" / size, chosen[method], seed, overrides, experiment,
                                     diagnostics=args.diagnostics, common_dropout=True,
                                     row_overrides=grid_overrides(protocol)[chosen[method]], report_name=method)
    return jobs


def diagnose_on_validation(out: Path, kept: Path, val_size: int) -> None:
    """scripts/diagnose.py of the run's kept weights at their own dropout on the validation split (the last
    val_size training pairs), into kept/diagnostics_val.json, unless it is there."""
    target = kept / "diagnostics_val.json"
    if target.is_file() or not (out / "checkpoint").is_dir():
        return
    diag_dir = out / "diagnostics_val"
    code = sweep_runs.run(["scripts/diagnose.py", str(out / "checkpoint"), f"--out-dir={diag_dir}",
                           f"--val-size={val_size}"], out / "diagnose.log")
    if code == 0 and (diag_dir / "diagnostics.json").is_file():
        write_atomically(target, (diag_dir / "diagnostics.json").read_text(encoding="utf-8"))
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
    """The size probe (protocol size_probe): the baseline row at each size on the probe's seed, each diagnosed on
    validation; REPORT_DIR/size/size_choice.json; then, once the tuning has chosen, the probe's rows on its seeds at
    the chosen size, and their report. Failed or waiting runs counted."""
    probe, experiment, report = protocol["size_probe"], protocol["experiment"], args.report_dir / "size"
    seed, row = probe["seed"], probe["row"]
    failures = run_jobs(size_probe_jobs(args, overrides, protocol), args.work_dir, "size", report, experiment,
                        args.stage_overrides)
    for size, model in probe["sizes"].items():
        kept = report / "runs" / f"{size}_seed{seed}"
        if not model:  # the current size is the tuning's own run of the row, trained by --stage tune
            tuned_run = args.report_dir / "tuning" / "runs" / f"{row}_seed{seed}"
            if not (tuned_run / "metrics.json").is_file():
                print(f"size probe: {size} waits for the tuning's {row} seed {seed} (--stage tune)", flush=True)
                failures += 1
                continue
            if not (kept / "metrics.json").is_file():
                copy_run_files(tuned_run, kept)
        work = args.work_dir / (f"size_{size}" if model else "")
        diagnose_on_validation(work / f"{row}_seed{seed}", kept, probe["val_size"])
    choice = choose_size(probe, report)
    if choice is None:
        return failures + 1
    write_atomically(report / "size_choice.json", json.dumps(choice, indent=2) + "\n")
    chosen = read_choice(args.report_dir)
    if choice["chosen"] is None or chosen is None or not probe["sizes"][choice["chosen"]]:
        print(f"size probe: {choice}" + ("; the rows wait for the tuning's choice" if chosen is None else "")
              + ("; the current size: its rows are the final stage's" if choice["chosen"] and
                 not probe["sizes"][choice["chosen"]] else ""), flush=True)
        return failures
    size = choice["chosen"]
    failures += run_jobs(size_rows_jobs(args, overrides, protocol, size, chosen), args.work_dir, f"size_{size}",
                         report / size, experiment, args.stage_overrides)
    return failures + rebuild_report(report / size)


def protocol_stage(args) -> dict:
    """The protocol of args.experiment, args.seeds defaulting to its stage's seeds and args.names kept to its
    methods (scripts/run_comparison.py --experiment E --stage tune|final)."""
    protocol = load_protocol(args.experiment)
    if args.seeds_default:
        args.seeds = list(protocol[{"tune": "tuning", "final": "final", "size": "size_probe"}[args.stage]]["seeds"])
    methods = set(protocol["tuning"]["grid"])
    args.names = [n for n in args.names if n in methods]
    return protocol


def run_protocol_stage(args, overrides: list[str]) -> int:
    """scripts/run_comparison.py --experiment E --stage tune|final for an experiment with a declared protocol;
    --seeds defaults to the stage's seeds and --regularizers filters its methods."""
    if args.stage is None:
        print(f"error: --stage: {args.experiment} runs by stages; choose one of {', '.join(STAGES)}", file=sys.stderr)
        return 2
    protocol = protocol_stage(args)
    frozen = args.report_dir / "protocol.yaml"  # the report reads its endpoints and family from this copy
    if not frozen.is_file():
        write_atomically(frozen, (REPO / "conf" / "protocol" / f"{args.experiment}.yaml").read_text(encoding="utf-8"))
    run_stage = {"tune": run_tuning, "final": run_final, "size": run_size_probe}[args.stage]
    return 1 if run_stage(args, overrides, protocol) else 0


def comparison_plan(args, overrides: list[str]) -> tuple[str, Path, list[Job]]:
    """(label, report dir, jobs) of what scripts/run_comparison.py ARGS runs, without running anything: what
    scripts/sweep_status.py shows of a sweep whose driver wrote no plan yet. A final stage before the tuning's
    choice has no jobs yet."""
    if (REPO / "conf" / "protocol" / f"{args.experiment}.yaml").is_file():
        protocol = protocol_stage(args)
        if args.stage == "final":
            chosen = read_choice(args.report_dir)
            return "final", args.report_dir, final_jobs(args, overrides, protocol, chosen) if chosen else []
        return "tune", args.report_dir / "tuning", tuning_jobs(args, overrides, protocol)
    if args.horizon_steps:
        return "horizon", args.report_dir / "horizon", horizon_jobs(args, overrides, args.experiment,
                                                                    args.horizon_steps, args.patience)
    return "sweep", args.report_dir, sweep_jobs(args, overrides, args.experiment, pretrain_overrides_of(args.experiment))


# --------------------------------------------------------------------------- scripts/run_semi_supervised.py


SEMI_SUPERVISED = "semi_supervised"  # its conf/experiment preset
# train.py overrides that say where the data are: pretraining must read the same files
PRETRAIN_DATA_KEYS = ("data.dir", "data.train_file", "data.dev_file", "data.holdout_test")
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
