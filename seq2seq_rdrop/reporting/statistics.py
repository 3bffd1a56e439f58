"""The numbers behind the tables: mean and sample sd over seeds, the paired bootstraps of a (seeds, examples)
matrix of per-example differences (example-only and hierarchical), and Holm's adjustment."""
from __future__ import annotations

import math

import numpy as np


def is_missing(x) -> bool:
    """None or NaN: a value that could not be computed (one seed's sd, the baseline's own Δ, no file, ...)."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample sd (ddof=1); sd is NaN with fewer than 2 seeds, mean NaN with none."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), (float(a.std(ddof=1)) if a.size > 1 else math.nan)


def bootstrap_summary(diffs: np.ndarray, boot: np.ndarray) -> dict:
    """Δ (the statistic on all examples), the 95% percentile interval of the resampled statistics `boot`, and
    the two-sided p = min(1, 2 * min(frac(boot <= 0), frac(boot >= 0)))."""
    lo, hi = np.percentile(boot, [2.5, 97.5])
    p = min(1.0, 2.0 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0))))
    return {"delta": float(diffs.mean(axis=1).mean()), "ci_low": float(lo), "ci_high": float(hi), "p_value": p}


def paired_bootstrap(diffs: np.ndarray, n_boot: int, seed: int) -> dict:
    """Seed-pooled paired bootstrap. diffs: (seeds, examples), regularizer minus baseline per paired
    seed. Each resample draws example indices with replacement, the same indices for every seed;
    its statistic is the mean over seeds of the mean per-example difference.

    p = min(1, 2 * min(frac(boot <= 0), frac(boot >= 0))): twice the smaller share of resampled
    statistics on either side of 0 (the percentile interval inverted), so p < 0.05 goes with a 95%
    interval that excludes 0. Its resolution is 1 / n_boot.
    """
    diffs = np.atleast_2d(np.asarray(diffs, dtype=float))
    n_seeds, n = diffs.shape
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(n * n_seeds, 1))  # bound memory: chunk x seeds x n values at a time
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(k, n))
        boot[start: start + k] = diffs[:, idx].mean(axis=2).mean(axis=0)
    return bootstrap_summary(diffs, boot)


def hierarchical_bootstrap(diffs: np.ndarray, n_boot: int, seed: int) -> dict:
    """Two-way paired bootstrap that counts training runs as a source of variance. diffs: (seeds, examples),
    regularizer minus baseline per paired seed. Each resample draws the seeds with replacement and the example
    indices with replacement, one draw of examples for all drawn seeds: every seed is scored on the same
    examples, so an example that favours one side tends to do so in every seed, and drawing examples anew per
    seed would average that away. Its statistic is the mean over the drawn seeds of the mean per-example
    difference. With one seed it is the example bootstrap. Δ, CI and p as paired_bootstrap."""
    diffs = np.atleast_2d(np.asarray(diffs, dtype=float))
    n_seeds, n = diffs.shape
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(n * n_seeds, 1))
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        seeds = rng.integers(0, n_seeds, size=(k, n_seeds))
        examples = rng.integers(0, n, size=(k, 1, n))
        boot[start: start + k] = diffs[seeds[:, :, None], examples].mean(axis=2).mean(axis=1)
    return bootstrap_summary(diffs, boot)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of m p-values (family-wise error): the k-th smallest is multiplied by
    m - k + 1, then made non-decreasing in that order and capped at 1. NaNs stay NaN and do not count."""
    finite = sorted((p, i) for i, p in enumerate(p_values) if not is_missing(p))
    adjusted, running = [math.nan] * len(p_values), 0.0
    for k, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (len(finite) - k) * p))
        adjusted[i] = running
    return adjusted
