"""The comparison report of a sweep (scripts/compare.py): from the run files a sweep left in a report directory
to comparison.md, comparison.csv, comparison.png and curves.png; and the decoding scripts' score tables.

    runs.py         run directories, their identity, metrics.json / eval_log.csv, per-example scores, the grid
    curves.py       learning curves from eval_log.csv and train_log.csv
    statistics.py   mean ± sd, the paired bootstraps (example-only, hierarchical), Holm
    paired.py       Δ against the baseline over the seeds both have
    cost.py         seconds per step, time ratios, the equal-time table
    problems.py     missing, unfinished and partly usable runs; inconsistent per-example scores
    published.py    the reference's published rows
    build.py        the report as one dict
    formatting.py, markdown.py, csv_table.py, plots.py   writing it
    comparison.py   compare(): build and write
    decoding_tables.py   not the comparison report: the markdown score tables of the decoding scripts
                         (sweep_decoding.py, rerank_nbest.py, tune_rerank.py, measure_diversity.py)

The outputs depend on the run files only: a fixed bootstrap seed, sorted iteration, no timestamps, paths
relative to the report directory, PNGs without a Software tag; two builds are byte-identical.

Kept light: compare, CompareError and OUTPUT_NAMES are imported on first use, so that importing
decoding_tables (or any one module) does not load the comparison report's modules, numpy and yaml.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["OUTPUT_NAMES", "CompareError", "compare"]

if TYPE_CHECKING:  # for type checkers and IDEs only
    from .comparison import OUTPUT_NAMES, compare
    from .runs import CompareError


def __getattr__(name: str):
    if name in ("OUTPUT_NAMES", "compare"):
        from . import comparison

        return getattr(comparison, name)
    if name == "CompareError":
        from .runs import CompareError

        return CompareError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
