"""compare(): a report directory's runs -> comparison.md, comparison.csv, comparison.png and curves.png in it,
replaced together once all four are written (a failure keeps the previous ones)."""
from __future__ import annotations

from pathlib import Path

from ..atomic_files import replacing
from ..errors import one_line
from .build import build_report
from .csv_table import write_csv
from .markdown import write_markdown
from .plots import write_bars, write_curves
from .runs import CompareError

OUTPUT_NAMES = ("comparison.md", "comparison.csv", "comparison.png", "curves.png")


def compare(report_dir, split="dev", baseline="baseline", decode="main", n_boot=1000, seed=0, log=print) -> dict:
    """Build the comparison and write comparison.{md,csv,png} and curves.png into report_dir."""
    root = Path(report_dir)
    if not root.is_dir():
        raise CompareError(f"{root}: not a directory")
    report = build_report(root, split, baseline, decode, n_boot, seed)
    try:  # all four written in full before any replaces its previous version
        with replacing(*(root / name for name in OUTPUT_NAMES)) as (markdown, table, bars, curves):
            write_markdown(markdown, report)
            write_csv(table, report)
            write_bars(bars, report)
            write_curves(curves, report)
    except OSError as e:
        raise CompareError(f"cannot write the report into {root}: {e.strerror or one_line(e)}; its previous files "
                           "are kept") from None
    for p in report["problems"]:
        log(f"  {p.regularizer} seed={p.seed}: {p.reason}" + (f" [{p.path}]" if p.path else ""))
    for w in report["warnings"]:
        log(f"  warning: {w}")
    log(f"Wrote {', '.join(str(root / n) for n in OUTPUT_NAMES)}")
    return report
