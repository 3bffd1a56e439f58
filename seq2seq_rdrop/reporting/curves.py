"""Learning curves from a run's logs: greedy ROUGE-L per evaluation (eval_log.csv), training seconds per step
(train_log.csv), a curve read at a given step, and the mean curve over seeds."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import one_line
from .runs import Run, damaged, read_csv_rows


def log_points(path: Path, column: str) -> dict[int, float]:
    """{step: value} of one column of a training or evaluation log (the last row of a step wins, as
    after a resume); empty without the file."""
    if not path.is_file():
        return {}
    try:
        return {int(float(r["step"])): float(r[column]) for r in read_csv_rows(path) if r.get(column)}
    except (KeyError, ValueError, TypeError) as e:  # a cut row: None where a number should be
        raise damaged(path, f"a row without its step or {column} number ({one_line(e)})") from None


def eval_curve(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, greedy dev ROUGE-L) from eval_log.csv, one point per step (the last row wins, as after
    a resume), sorted by step; None without the file."""
    points = log_points(run.path / "eval_log.csv", "rouge-l")
    if not points:
        return None
    steps = sorted(points)
    return np.array(steps, dtype=float), np.array([points[s] for s in steps])


def train_seconds_at(run: Run, steps: np.ndarray) -> np.ndarray | None:
    """Training seconds (evaluation excluded) at the given steps, interpolated on train_log.csv."""
    points = log_points(run.path / "train_log.csv", "seconds")
    if not points:
        return None
    xs = sorted(points)
    return np.interp(steps, [0, *xs], [0.0, *[points[x] for x in xs]])


def value_at_step(steps: np.ndarray, values: np.ndarray, step: float) -> tuple[float, str]:
    """A learning curve linearly interpolated at `step`; past the last evaluation its last value
    ("capped"); before the first evaluation NaN (nothing measured there)."""
    if step > steps[-1]:
        return float(values[-1]), "capped"
    if step < steps[0]:
        return math.nan, "before the first evaluation"
    return float(np.interp(step, steps, values)), ""


def best_up_to_step(steps: np.ndarray, values: np.ndarray, step: float) -> tuple[float, str]:
    """The best value evaluated at or before `step` (the weights a run that keeps its best validation step
    would hold had it stopped there); past the last evaluation the best of all ("capped"); before the first
    evaluation NaN (nothing measured there)."""
    if step < steps[0]:
        return math.nan, "before the first evaluation"
    return float(values[steps <= step].max()), "capped" if step > steps[-1] else ""


def mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, sd) over seeds on the evaluation steps every seed covers (sd 0 with one seed)."""
    lo = max(c[0][0] for c in curves)
    hi = min(c[0][-1] for c in curves)
    grid = np.array(sorted({float(s) for c in curves for s in c[0] if lo <= s <= hi}))
    stack = np.array([np.interp(grid, steps, values) for steps, values in curves])
    sd = stack.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(grid.size)
    return grid, stack.mean(axis=0), sd
