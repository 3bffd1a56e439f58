"""Where a sweep stands: per row and seed finished / running / waiting / failed, and the ETA of the rest.

    python scripts/sweep_status.py SWEEP_DIR [SWEEP_DIR ...] [--jobs N]

SWEEP_DIR is a sweep's work dir (outputs/sweeps/<experiment>) or report dir (outputs/reports/<experiment>, or its
tuning/): the runs are those the driver planned (WORK_DIR/.sweep/*.json), else the experiment's default grid
(conf/protocol/<experiment>.yaml's for compare_fair). running: step of the configured total and steps per second
(train_log.csv, the run directory's lock); failed: the last line of its console.log. The ETA divides the measured
step costs of the rest by --jobs (default: the number of runs running now). Exit status 0 when every run and
diagnosis is finished, 1 while any is not, 2 on bad input (one line on stderr). seq2seq_rdrop/sweep_status.py."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's package, run from anywhere

from seq2seq_rdrop.sweep_status import sweep_status  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dirs", nargs="+", type=Path, metavar="SWEEP_DIR")
    parser.add_argument("--jobs", type=int, default=None, help="runs at a time for the ETA (default: running now)")
    args = parser.parse_args(argv)
    try:
        table, finished = sweep_status([p.resolve() for p in args.sweep_dirs], args.jobs)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table)
    return 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
