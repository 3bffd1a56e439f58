"""R-Drop's gain against the baseline's dropout-ensemble gap, one point per regime and seed (issue 38, item 4).

    python scripts/mechanism.py --regime "converged, dropout 0.3=outputs/reports/compare_converged:baseline_dropout03:rdrop" \
        [--regime LABEL=REPORT_DIR:BASELINE_ROW:RDROP_ROW ...] [--split dev] [--decode beam16] [--out-dir DIR]

A regime pairs a baseline row with the R-Drop row trained like it (same pretraining, seeds, dropout rate where
the label says so) in one comparison report; its seeds give the points. The baseline's gap is read from its
diagnostics.json (scripts/diagnose.py, at its own dropout), R-Drop's gain from both rows' per-example scores.
Writes DIR/mechanism.md and DIR/mechanism.png (each whole or not at all) and prints the table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seq2seq_rdrop.atomic_files import replacing
from seq2seq_rdrop.reporting import CompareError
from seq2seq_rdrop.reporting.mechanism import mechanism_markdown, parse_regime, regime_points, write_mechanism_plot


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--regime", action="append", required=True, help="LABEL=REPORT_DIR:BASELINE_ROW:RDROP_ROW")
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--decode", default="beam16", help="main (the runs' own decoding) or a final_decodes name")
    ap.add_argument("--out-dir", type=Path, default=Path("outputs/reports/mechanism"))
    args = ap.parse_args(argv)
    try:
        points = [p for text in args.regime for p in regime_points(parse_regime(text), args.split, args.decode)]
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    label = "greedy" if args.decode == "main" else args.decode
    text = mechanism_markdown(points, args.split, label)
    print(text, end="")
    with replacing(args.out_dir / "mechanism.md", args.out_dir / "mechanism.png") as (md, png):
        md.write_text(text, encoding="utf-8")
        write_mechanism_plot(png, points, args.split, label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
