"""Training cost: seconds per optimizer step (bench_train.json, else the runs' wall times), a whole run's time
against the baseline's, the learning curves against training minutes, and each regularizer's dev ROUGE-L at
the baseline's training time (the equal-time table)."""
from __future__ import annotations

import math

import numpy as np

from .curves import best_up_to_step, eval_curve, train_seconds_at, value_at_step
from .runs import Run
from .statistics import mean_sd


def steps_trained(metrics: dict) -> int | None:
    """The steps a run trained: metrics["steps"] (fewer than total_steps when patience or the clock stopped
    it), else total_steps (runs written before "steps" existed trained them all)."""
    return metrics.get("steps") or metrics.get("total_steps")


def seconds_per_step(runs: list[Run], name: str, bench: dict | None) -> tuple[float, str]:
    """(seconds per optimizer step, source): bench_train.json's median when it has the regularizer
    ("bench"), else the mean over seeds of train_seconds / total_steps ("runs": wall time)."""
    bench_value = ((bench or {}).get("seconds_per_step") or {}).get(name)
    if bench_value is not None:
        return float(bench_value), "bench"
    values = [r.metrics["train_seconds"] / steps_trained(r.metrics) for r in runs
              if r.metrics.get("train_seconds") is not None and steps_trained(r.metrics)]
    return (float(np.mean(values)), "runs") if values else (math.nan, "")


def total_train_seconds(runs: list[Run], sps: float, source: str) -> float:
    """A whole run's training time: s/step × mean total_steps (bench), or mean train_seconds (runs)."""
    key = "total_steps" if source == "bench" else "train_seconds"
    values = [float(r.metrics[key]) for r in runs if r.metrics.get(key) is not None]
    if not values:
        return math.nan
    return sps * float(np.mean(values)) if source == "bench" else float(np.mean(values))


def cost_rows(regs, runs_of, baseline, bench) -> dict:
    """{regularizer: {"sps", "source", "seconds", "base_sps", "ratio"}}. ratio: a whole run's training
    time over the baseline's, and base_sps: the baseline's s/step, both from the regularizer's own source
    (a bench figure is never divided by a wall time)."""
    if baseline not in ((bench or {}).get("seconds_per_step") or {}):
        bench = None  # a ratio needs the baseline's figure from the same source
    out = {}
    for reg in regs:
        sps, source = seconds_per_step(runs_of(reg), reg, bench)
        out[reg] = {"sps": sps, "source": source, "seconds": total_train_seconds(runs_of(reg), sps, source)}
    for reg in regs:
        source = out[reg]["source"]
        base_sps, base_source = seconds_per_step(runs_of(baseline), baseline, bench if source == "bench" else None)
        base_seconds = total_train_seconds(runs_of(baseline), base_sps, base_source)
        out[reg]["base_sps"] = base_sps if base_source == source else math.nan
        same = base_source == source and base_seconds and not math.isnan(base_seconds)
        out[reg]["ratio"] = out[reg]["seconds"] / base_seconds if same else math.nan
    return out


def equal_time_row(reg_runs: list[Run], base_runs: list[Run], reg_sps: float, base_sps: float,
                   best_so_far: bool = False) -> dict:
    """Greedy ROUGE-L at the training time of a whole baseline run: each seed's eval_log curve read at
    the baseline's steps trained × base_sps / reg_sps steps, interpolated, or with best_so_far (runs that keep their
    best validation step) the best evaluation up to there."""
    base_steps = [float(steps_trained(r.metrics)) for r in base_runs if steps_trained(r.metrics)]
    out = {"steps": math.nan, "mean": math.nan, "sd": math.nan, "n": 0, "flags": []}
    if not base_steps or math.isnan(reg_sps) or math.isnan(base_sps) or reg_sps <= 0:
        return out
    out["steps"] = float(np.mean(base_steps)) * base_sps / reg_sps
    read = best_up_to_step if best_so_far else value_at_step
    values, flags = [], set()
    for run in reg_runs:
        curve = eval_curve(run)
        if curve is None:
            continue
        value, flag = read(*curve, out["steps"])
        flags.add(flag)
        if not math.isnan(value):
            values.append(value)
    out["mean"], out["sd"] = mean_sd(values)
    out["n"], out["flags"] = len(values), sorted(f for f in flags if f)
    return out


def minutes_per_run(runs: list[Run], cost: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training minutes, dev ROUGE-L) curves: eval steps × bench s/step, else train_log seconds."""
    out = []
    for run in runs:
        curve = eval_curve(run)
        if curve is None:
            continue
        steps, values = curve
        seconds = steps * cost["sps"] if cost["source"] == "bench" else train_seconds_at(run, steps)
        if seconds is not None and not np.isnan(seconds).any():
            out.append((seconds / 60.0, values))
    return out
