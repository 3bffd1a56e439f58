"""Every pairwise contrast between the rows of a comparison report, with its 95% interval.

    python scripts/contrasts.py REPORT_DIR --rows random_replace grad_penalty rdrop [--split dev]
                                [--decode main=greedy beam16="beam 16"] [--n-boot 1000] [--seed 0] [--out FILE]

Δ = A − B of per-example ROUGE-L over the seeds both rows have, the two-way bootstrap (seeds, then examples) of
the comparison report's Δ against the baseline (scripts/compare.py). The markdown goes to stdout and, with --out,
to FILE (written whole or not at all). It reads the run files only: the same files give the same tables.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seq2seq_rdrop.atomic_files import write_text_atomically
from seq2seq_rdrop.reporting import CompareError
from seq2seq_rdrop.reporting.contrasts import report_contrasts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report_dir", type=Path)
    ap.add_argument("--rows", nargs="+", required=True, help="row names (runs/<row>_seed<S>), contrasted pairwise")
    ap.add_argument("--split", choices=("dev", "test", "val"), default="dev")
    ap.add_argument("--decode", nargs="+", default=["main=greedy", "beam16=beam 16"],
                    help="decodings as NAME=LABEL (main: the runs' own decoding)")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    decodes = dict(d.split("=", 1) if "=" in d else (d, d) for d in args.decode)
    try:
        text = report_contrasts(args.report_dir, args.rows, args.split, decodes, args.n_boot, args.seed) + "\n"
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.out:
        write_text_atomically(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
