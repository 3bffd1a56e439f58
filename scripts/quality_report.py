"""Build the quality preset's report from its run files.

    python scripts/quality_report.py [REPORT_DIR] [--dev ../shared/data/csl/dev.tsv] [--n-boot 10000] [--seed 0]

REPORT_DIR (default outputs/reports/quality_preset) holds runs/<run>/metrics.json, example_scores.json and
pretrain/metrics.json, the small files of `python scripts/run_quality_preset.py seed=S --run-dir ...`. It writes
REPORT_DIR/report.md: each seed's dev scores, their mean with an interval over seeds and examples, the margin over
the one-line rule (recomputed from the dev file), whether issue 31's bar is met, and the titles' shape.
The report is built by seq2seq_rdrop.reporting.quality; this script is its command line.
"""
from __future__ import annotations

import argparse
import sys

from seq2seq_rdrop.data import DataError
from seq2seq_rdrop.reporting.quality import QualityReportError, build_quality_report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report_dir", nargs="?", default="outputs/reports/quality_preset")
    ap.add_argument("--dev", default="../shared/data/csl/dev.tsv", help="the dev file the runs were scored on")
    ap.add_argument("--n-boot", type=int, default=10000, help="bootstrap resamples (default 10000)")
    ap.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default 0)")
    args = ap.parse_args(argv)
    try:
        out = build_quality_report(args.report_dir, args.dev, args.n_boot, args.seed)
    except (QualityReportError, DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out.read_text(encoding="utf-8"))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
