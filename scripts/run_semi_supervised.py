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
    args, overrides = run_comparison.sweep_arguments(argv, EXPERIMENT, "--rows", ROWS, __doc__)
    labeled = labeled_pairs(overrides)
    write_notes(args.report_dir, labeled)
    failures = run_comparison.run_sweep(args, overrides, EXPERIMENT, pretrain_overrides(overrides, labeled))
    return 1 if failures or run_comparison.build_report(args.report_dir, "--baseline", REFERENCE) else 0


if __name__ == "__main__":
    sys.exit(main())
