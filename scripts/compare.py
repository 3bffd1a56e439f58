"""Compare regularizers from the run files a sweep left behind.

    python scripts/compare.py REPORT_DIR [--split dev|test] [--baseline baseline] [--decode main|beam16]
                              [--n-boot 1000] [--seed 0]

REPORT_DIR is either a report directory as scripts/run_comparison.py writes it

    REPORT_DIR/notes.md              optional, hand-written; copied verbatim under the title
    REPORT_DIR/bench_train.json      optional, scripts/bench_train.py --json: seconds per step
    REPORT_DIR/runs/<regularizer>_seed<S>/metrics.json, example_scores.json, eval_log.csv,
                                          train_log.csv, diagnostics.json (optional)

or any tree of run directories holding metrics.json and predictions_<split>.tsv (a Hydra multirun of
`python train.py +experiment=compare`; per-example scores are then recomputed from the predictions).
It writes into REPORT_DIR:

- comparison.md  : scores (mean ± sd over seeds) per decoding, Δ ROUGE-L against the baseline with a
                   paired bootstrap over seeds and examples (Holm-adjusted), training cost, the published
                   rows beside ours, the equal-time table, diagnostics, and the (regularizer × seed) grid
                   with what is missing.
- comparison.csv : the same numbers, one row per regularizer.
- comparison.png : grouped bars of the --decode decoding, error bars = sd over seeds.
- curves.png     : ROUGE-L (greedy) of each evaluation, on dev or on the runs' validation split, against
                   optimizer steps and against training minutes.

The four are written to temporary files and renamed into place together: a failure keeps the previous
ones. A directory without run files (or without a finished run) is refused (exit 2) and left untouched; a
damaged run file is named in one line.
The outputs depend on the run files only: a fixed bootstrap seed, sorted iteration, no timestamps,
paths relative to REPORT_DIR, PNGs without a Software tag; two builds are byte-identical.
The report is built by seq2seq_rdrop.reporting.compare(); this script is its command line.
"""
from __future__ import annotations

import argparse
import sys

from seq2seq_rdrop.reporting import CompareError, compare


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report_dir", help="report directory (runs/<regularizer>_seed<S>/...) or a Hydra multirun")
    ap.add_argument("--split", choices=("dev", "test"), default="dev", help="split of the score tables and Δ")
    ap.add_argument("--baseline", default="baseline", help="regularizer the others are compared with")
    ap.add_argument("--decode", default="main",
                    help="decoding of comparison.png: main or a trainer.final_decodes name (beam16)")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's random generator")
    args = ap.parse_args(argv)
    if args.n_boot < 1:
        ap.error("--n-boot must be at least 1")
    try:
        compare(args.report_dir, split=args.split, baseline=args.baseline, decode=args.decode,
                n_boot=args.n_boot, seed=args.seed)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
