"""Markdown score tables of the decoding scripts (scripts/sweep_decoding.py, scripts/rerank_nbest.py)."""
from __future__ import annotations

import sys
from pathlib import Path

from .metrics import METRIC_NAMES


def mean_cells(runs: list[dict]) -> str:
    """The metrics' means over several checkpoints' scores, as markdown table cells."""
    return " | ".join(f"{sum(r[m] for r in runs) / len(runs):.2f}" for m in METRIC_NAMES)


def finish_report(lines: list[str], out: str | None) -> int:
    """Print the table and, with `out`, write it there below the command that made it; return exit status 0."""
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    if out:
        Path(out).write_text(f"command: `python {' '.join(sys.argv)}`\n\n" + report, encoding="utf-8")
    return 0
