"""Run the semi-supervised R-Drop experiment (issue 18), resumably, and rebuild its report.

    python scripts/run_semi_supervised.py [--seeds 0 1 2] [--rows baseline rdrop rdrop_semi ...]
                                          [--work-dir outputs/sweeps/semi_supervised]
                                          [--report-dir outputs/reports/semi_supervised] [--no-diagnostics]
                                          [train.py overrides ...]

Labelled data: the first 500 pairs of train.tsv (data.max_train_samples in
conf/experiment/semi_supervised.yaml). Unlabelled data: the abstracts of the other pairs of train.tsv,
read with their titles dropped (data.unlabeled_file=train.tsv; training leaves out the labelled pairs'
abstracts). For each seed: one `pretrain.py seed=S pretrain.train_titles=500` run, whose title
denoising reads only the labelled pairs' titles (and titles_only.txt less any copy of a withheld
title), shared by every row of that seed; then, for each row,
    python train.py +experiment=semi_supervised regularizer=ROW seed=S model.pretrained=<pretrain>/checkpoint
(the same number of optimizer steps for all), with the diagnostics of its final weights. The rows:
    baseline               CE on the 500 pairs
    rdrop                  R-Drop on the 500 pairs: the reference row of the report
    rdrop_semi             R-Drop + the KL between two dropout passes over the model's own greedy titles
                           of unlabelled abstracts
    self_train             CE on the 500 pairs + CE on the greedy titles of unlabelled abstracts
    rdrop_semi_self_train  both unlabelled terms on top of R-Drop
Finished runs are skipped, killed ones resume, small run files land in REPORT_DIR/runs/ROW_seedS/, all as
scripts/run_comparison.py does (its functions run them), and the report is rebuilt with
    python scripts/compare.py outputs/reports/semi_supervised --baseline rdrop
(Δ and the paired bootstrap against R-Drop on the 500 pairs). REPORT_DIR/notes.md, which compare.py puts
under the report's title, is written once with this set-up (edit it freely afterwards).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_comparison  # noqa: E402  (scripts/ is not a package)

REPO = run_comparison.REPO
EXPERIMENT = "semi_supervised"
ROWS = ("baseline", "rdrop", "rdrop_semi", "self_train", "rdrop_semi_self_train")
REFERENCE = "rdrop"
# train.py overrides that say where the data are: pretraining must read the same files
PRETRAIN_DATA_KEYS = ("data.dir", "data.train_file", "data.dev_file", "data.holdout_test")
NOTES = """Semi-supervised R-Drop (issue 18), built by `python scripts/run_semi_supervised.py`. Labelled: the
first {labeled} pairs of train.tsv. Unlabelled: the abstracts of the other training pairs, titles never
read. Per seed one pretraining that saw only the labelled pairs' titles (pretrain.train_titles={labeled}),
then every row fine-tuned for the same steps (+experiment=semi_supervised). Rows: baseline and rdrop use
the labelled pairs only; rdrop_semi adds the symmetric KL between two dropout passes over the model's own
greedy title of unlabelled abstracts; self_train adds the CE on those titles; rdrop_semi_self_train both.
Δ and the bootstrap are against **rdrop** (R-Drop on the labelled pairs). The published rows (the
article's, 10k labelled pairs) are not comparable to these runs."""


def labeled_pairs(overrides: list[str]) -> int:
    """data.max_train_samples as the runs will use it: a command-line override, else the preset's."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") == "data.max_train_samples":
            return int(value)
    preset = yaml.safe_load((REPO / "conf" / "experiment" / f"{EXPERIMENT}.yaml").read_text(encoding="utf-8"))
    return int(preset["data"]["max_train_samples"])


def pretrain_overrides(overrides: list[str], labeled: int) -> tuple[str, ...]:
    """What pretrain.py gets: the withheld titles left out, and the fine-tuning's data location."""
    located = [o for o in overrides if o.partition("=")[0].lstrip("+") in PRETRAIN_DATA_KEYS]
    return (f"pretrain.train_titles={labeled}", *located)


def write_notes(report: Path, labeled: int) -> None:
    notes = report / "notes.md"
    if not notes.is_file():
        report.mkdir(parents=True, exist_ok=True)
        notes.write_text(NOTES.format(labeled=labeled) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help="conf/regularizer names")
    parser.add_argument("--work-dir", default=f"outputs/sweeps/{EXPERIMENT}", help="weights and full run dirs")
    parser.add_argument("--report-dir", default=f"outputs/reports/{EXPERIMENT}", help="committed run files + report")
    parser.add_argument("--no-diagnostics", dest="diagnostics", action="store_false",
                        help="fine-tune only; a later run without this flag adds the missing diagnostics")
    args, overrides = parser.parse_known_args(argv)
    os.chdir(REPO)  # the runs' relative paths (work dir, checkpoints) are read from here
    work, report = run_comparison._relative(Path(args.work_dir)), run_comparison._relative(Path(args.report_dir))
    labeled = labeled_pairs(overrides)
    write_notes(report, labeled)
    failures = 0
    for seed in args.seeds:
        checkpoint = run_comparison.pretrain(work, seed, pretrain_overrides(overrides, labeled))
        if checkpoint is None:
            failures += 1
            continue
        for row in args.rows:
            failures += not run_comparison.fine_tune(work, report, row, seed, checkpoint, overrides, args.diagnostics,
                                                     experiment=EXPERIMENT)
    return 1 if failures or run_comparison.build_report(report, "--baseline", REFERENCE) else 0


if __name__ == "__main__":
    sys.exit(main())
