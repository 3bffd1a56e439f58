"""Does R-Drop's gain grow with the gap it is meant to close? One point per (regime, seed): the baseline's dropout
ensemble gap (MC-dropout ensemble minus deterministic greedy ROUGE-L, and gap_kl_ensemble_deterministic, from its
diagnostics.json at its own dropout) against R-Drop's gain over that baseline on the same seed (dev ROUGE-L of the
kept weights, one decoding). A regime is a (report directory, baseline row, R-Drop row) triple: a model size, a
dropout rate, a training length. Built from run files only (scripts/mechanism.py)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .formatting import table
from .runs import CompareError, discover_runs, example_scores, load_json


@dataclass(frozen=True)
class Regime:
    label: str
    report_dir: Path
    baseline: str  # row names: REPORT_DIR/runs/<row>_seed<S>/
    rdrop: str


def parse_regime(text: str) -> Regime:
    """'LABEL=REPORT_DIR:BASELINE_ROW:RDROP_ROW' -> Regime; a one-line error otherwise."""
    label, sep, rest = text.partition("=")
    parts = rest.rsplit(":", 2)
    if not sep or len(parts) != 3 or not all(parts) or not label:
        raise CompareError(f"--regime {text!r}: expected LABEL=REPORT_DIR:BASELINE_ROW:RDROP_ROW")
    return Regime(label, Path(parts[0]), parts[1], parts[2])


def regime_points(regime: Regime, split: str, decode: str) -> list[dict]:
    """One dict per seed that has both rows finished and the baseline diagnosed at its own dropout."""
    runs = {(r.regularizer, r.seed): r for r in discover_runs(regime.report_dir) if r.metrics is not None}
    points = []
    for (name, seed), base in sorted(runs.items(), key=lambda kv: str(kv[0][1])):
        rdrop = runs.get((regime.rdrop, seed))
        diagnostics = base.path / "diagnostics.json"
        if name != regime.baseline or rdrop is None or not diagnostics.is_file():
            continue
        first = load_json(diagnostics)["runs"][0]
        measures = first["measures"]
        gain = _mean_difference(rdrop, base, split, decode)
        if gain is None:
            continue
        points.append({"regime": regime.label, "seed": seed, "dropout": first["dropout"]["hidden"],
                       "diagnosed_on": first.get("split", "?"),
                       "ensemble_gap_rouge_l": measures["rouge_l_greedy_ensemble"] - measures["rouge_l_greedy_deterministic"],
                       "gap_kl": measures["gap_kl_ensemble_deterministic"], "rdrop_gain": gain})
    return points


def _mean_difference(rdrop, base, split: str, decode: str) -> float | None:
    """Mean per-example ROUGE-L difference rdrop - baseline on the same examples, or None without the scores."""
    mine, theirs = example_scores(rdrop, split).get(decode), example_scores(base, split).get(decode)
    if mine is None or theirs is None or mine["rouge-l"].size != theirs["rouge-l"].size:
        return None
    return float(np.mean(mine["rouge-l"] - theirs["rouge-l"]))


def mechanism_markdown(points: list[dict], split: str, decode_label: str) -> str:
    """The points, then the Pearson correlation across them (with how many points it rests on)."""
    rows = [[p["regime"], p["seed"], f"{p['dropout']:g}", p["diagnosed_on"], f"{p['ensemble_gap_rouge_l']:+.2f}",
             f"{p['gap_kl']:.4f}", f"{p['rdrop_gain']:+.2f}"] for p in points]
    head = ["regime", "seed", "baseline's dropout", "diagnosed on", "ensemble − deterministic greedy R-L",
            "KL(ensemble ‖ deterministic)", f"R-Drop − baseline, {split} R-L {decode_label}"]
    lines = [f"R-Drop's gain against its baseline's dropout-ensemble gap, one point per regime and seed "
             f"({len(points)} points).", "", *table(head, rows), ""]
    if len(points) >= 3:
        gaps = np.array([p["ensemble_gap_rouge_l"] for p in points])
        gains = np.array([p["rdrop_gain"] for p in points])
        kls = np.array([p["gap_kl"] for p in points])
        lines.append(f"Pearson r across the points: gain vs R-L gap {np.corrcoef(gaps, gains)[0, 1]:+.2f}, gain vs KL "
                     f"gap {np.corrcoef(kls, gains)[0, 1]:+.2f} (n = {len(points)}; points of one regime share its "
                     "dev examples and are not independent: a description, not a test).")
    return "\n".join(lines) + "\n"


def write_mechanism_plot(path: Path, points: list[dict], split: str, decode_label: str) -> None:
    """A scatter of the points, one colour per regime."""
    from .plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    regimes = list(dict.fromkeys(p["regime"] for p in points))
    for i, regime in enumerate(regimes):
        mine = [p for p in points if p["regime"] == regime]
        for ax, key in zip(axes, ("ensemble_gap_rouge_l", "gap_kl")):
            ax.scatter([p[key] for p in mine], [p["rdrop_gain"] for p in mine], color=f"C{i}", label=regime)
    for ax, xlabel in zip(axes, ("baseline: MC-dropout ensemble − deterministic, greedy R-L",
                                 "baseline: KL(ensemble ‖ deterministic)")):
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"R-Drop − baseline, {split} R-L ({decode_label})")
    if regimes:
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
