"""The comparison report of a sweep (scripts/compare.py): from the run files a sweep left in a report directory
to comparison.md, comparison.csv, comparison.png and curves.png.

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

The outputs depend on the run files only: a fixed bootstrap seed, sorted iteration, no timestamps, paths
relative to the report directory, PNGs without a Software tag; two builds are byte-identical.
"""
from .comparison import OUTPUT_NAMES, compare
from .runs import CompareError

__all__ = ["OUTPUT_NAMES", "CompareError", "compare"]
