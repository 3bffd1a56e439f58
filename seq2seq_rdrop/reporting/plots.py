"""comparison.png (grouped bars of one decoding's scores) and curves.png (learning curves by step and by
training minutes). matplotlib is imported here only, when a figure is drawn, with the Agg renderer."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..metrics import METRIC_NAMES
from .curves import mean_curve
from .formatting import METRIC_LABELS
from .statistics import is_missing


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless, and the same renderer on every machine
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=120, metadata={"Software": None})  # no version tag: byte-identical rebuilds


def write_bars(path: Path, report: dict) -> None:
    plt = _pyplot()
    d = report["plot_decode"]
    rows = [r for r in report["rows"] if r["scores"][d]["n"]]
    fig, ax = plt.subplots(figsize=(max(8, 2.2 + 1.6 * len(METRIC_NAMES) + 0.4 * len(rows)), 4))
    x = np.arange(len(METRIC_NAMES))
    width = 0.8 / max(len(rows), 1)
    for i, r in enumerate(rows):
        means = [r["scores"][d][m][0] for m in METRIC_NAMES]
        sds = [0.0 if is_missing(r["scores"][d][m][1]) else r["scores"][d][m][1] for m in METRIC_NAMES]
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, means, width, yerr=sds, capsize=3,
               label=f"{r['regularizer']} (n={r['scores'][d]['n']})", color=f"C{i}")
    ax.set_xticks(x, [METRIC_LABELS[m] for m in METRIC_NAMES])
    if rows:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: hides no bar
    else:
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("score (×100)")
    ax.set_title(f"{report['split']}, {d} ({report['labels'][d]}): mean ± sd over seeds")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _plot_band(ax, curves, color, label) -> None:
    x, mean, sd = mean_curve(curves)
    ax.plot(x, mean, color=color, label=f"{label} (n={len(curves)})")
    ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.2, linewidth=0)


def write_curves(path: Path, report: dict) -> None:
    plt = _pyplot()
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(12, 4.2))
    for i, row in enumerate(report["rows"]):
        reg = row["regularizer"]
        if report["curves"][reg]:
            _plot_band(by_step, report["curves"][reg], f"C{i}", reg)
        if report["minutes"][reg]:
            wall = " †" if row["cost"]["source"] == "runs" else ""
            _plot_band(by_time, report["minutes"][reg], f"C{i}", reg + wall)
    by_step.set_xlabel("optimizer steps")
    by_time.set_xlabel("training minutes (bench_train.json s/step × steps; † train_log wall time)")
    for ax in (by_step, by_time):
        ax.set_ylabel(f"{report['curve_split']} ROUGE-L, greedy")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle("Learning curves: mean ± sd over seeds")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
