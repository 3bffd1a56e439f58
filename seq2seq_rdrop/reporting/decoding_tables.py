"""Markdown score tables of the decoding scripts (scripts/sweep_decoding.py, scripts/rerank_nbest.py,
scripts/tune_rerank.py, scripts/measure_diversity.py); torch is imported only when a table is written."""
from __future__ import annotations

from ..atomic_files import write_text_atomically
from ..metrics import METRIC_NAMES


def mean_cells(runs: list[dict]) -> str:
    """The metrics' means over several checkpoints' scores, as markdown table cells."""
    return " | ".join(f"{sum(r[m] for r in runs) / len(runs):.2f}" for m in METRIC_NAMES)


def finish_report(lines: list[str], out: str | None, device: str = "cpu") -> int:
    """Print the table and, with `out`, write it there below the command, date and machine that made it;
    return exit status 0."""
    import torch

    from ..machine import machine_lines

    report = "\n".join(lines) + "\n"
    print("\n" + report)
    if out:
        header = "".join(f"- {line}\n" for line in machine_lines(torch.device(device)))
        write_text_atomically(out, header + "\n" + report)
    return 0
