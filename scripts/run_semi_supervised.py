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
scripts/run_comparison.py does (seq2seq_rdrop.sweeps runs both), and the report is rebuilt as
    python scripts/compare.py outputs/reports/semi_supervised --baseline rdrop
(Δ and the paired bootstrap against R-Drop on the 500 pairs). REPORT_DIR/notes.md, which compare.py puts
under the report's title, is written once with this set-up (edit it freely afterwards).
"""
from __future__ import annotations

import sys

from seq2seq_rdrop.sweeps import run_semi_supervised, semi_supervised_arguments


def main(argv: list[str] | None = None) -> int:
    args, overrides = semi_supervised_arguments(argv, __doc__)
    return run_semi_supervised(args, overrides)


if __name__ == "__main__":
    sys.exit(main())
