"""Compare regularizers from the run files a sweep left behind.

    python scripts/compare.py REPORT_DIR [--split dev|test] [--baseline baseline] [--decode main|beam16]
                              [--n-boot 1000] [--seed 0]

REPORT_DIR is either a report directory as scripts/run_comparison.py writes it

    REPORT_DIR/notes.md              optional, hand-written; copied verbatim under the title
    REPORT_DIR/bench_train.json      optional, scripts/bench_train.py --json: seconds per step
    REPORT_DIR/runs/<regularizer>_seed<S>/metrics.json, example_scores.json, eval_log.csv,
                                          train_log.csv, diagnostics.json (optional)

or any tree of run directories holding metrics.json and predictions_<split>.tsv (a Hydra multirun of
`python train.py +experiment=compare`; per-example scores are then recomputed from the predictions).
It writes into REPORT_DIR:

- comparison.md  : scores (mean ± sd over seeds) per decoding, Δ ROUGE-L against the baseline with a
                   seed-pooled paired bootstrap, training cost, the published rows beside ours, the
                   equal-time table, diagnostics, and the (regularizer × seed) grid with what is missing.
- comparison.csv : the same numbers, one row per regularizer.
- comparison.png : grouped bars of the --decode decoding, error bars = sd over seeds.
- curves.png     : ROUGE-L (greedy) of each evaluation, on dev or on the runs' validation split, against
                   optimizer steps and against training minutes.

The outputs depend on the run files only: a fixed bootstrap seed, sorted iteration, no timestamps,
paths relative to REPORT_DIR, PNGs without a Software tag; two builds are byte-identical.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from seq2seq_rdrop.metrics import METRIC_NAMES, score_examples

REPO_ROOT = Path(__file__).resolve().parent.parent
METRIC_LABELS = {"rouge-1": "R-1", "rouge-2": "R-2", "rouge-l": "R-L", "bleu": "BLEU"}
PREFERRED_ORDER = ("baseline", "baseline_dropout03", "random_replace", "random_replace_vocab", "grad_penalty", "rdrop",
                   "rdrop_random_replace")
FINAL = "final"  # decodings of the final weights when a validation split chose the kept ones: final, final_<name>
OUTPUT_NAMES = ("comparison.md", "comparison.csv", "comparison.png", "curves.png")
RUN_DIR_NAME = re.compile(r"^(?P<regularizer>.+)_seed(?P<seed>-?\d+)$")

# The reference's rows (CLGE csl val, greedy decoding), in its column order R-L / R-1 / R-2 / BLEU.
PUBLISHED = {
    "baseline": {"rouge-l": 63.81, "rouge-1": 65.45, "rouge-2": 54.91, "bleu": 45.52},
    "random replacement": {"rouge-l": 64.44, "rouge-1": 66.09, "rouge-2": 55.56, "bleu": 46.10},
    "gradient penalty": {"rouge-l": 65.41, "rouge-1": 67.29, "rouge-2": 56.64, "bleu": 47.37},
    "R-Drop": {"rouge-l": 65.51, "rouge-1": 67.41, "rouge-2": 57.12, "bleu": 47.82},
}
PUBLISHED_NAME = {"baseline": "baseline", "random_replace": "random replacement",
                  "random_replace_vocab": "random replacement", "grad_penalty": "gradient penalty",
                  "rdrop": "R-Drop"}

MISSING = "missing (no run directory)"
UNFINISHED = "unfinished (no metrics.json)"
CUT_OFF = ("final evaluation cut off: dev scores of the final weights from eval_log.csv (main decoding, "
           "2 decimals); no per-example scores (left out of the bootstrap), no other decodings")
FROM_EVAL_LOG = "from_eval_log"  # the key that marks metrics read back from eval_log.csv


class CompareError(RuntimeError):
    """Input that makes the comparison meaningless (e.g. per-example scores that do not line up)."""


# --------------------------------------------------------------------------- reading runs


@dataclass
class Run:
    path: Path
    regularizer: str
    seed: int | str | None
    metrics: dict | None  # None: the run never wrote metrics.json
    cache: dict = field(default_factory=dict, repr=False)


@dataclass
class Problem:
    """A (regularizer, seed) that is missing, unfinished, or only partly usable."""

    regularizer: str
    seed: int | str | None
    reason: str
    path: str | None = None  # relative to REPORT_DIR


def _norm_seed(value):
    """Seeds come as ints from JSON/YAML and as strings from names and overrides; unify them."""
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return str(value).strip()


def _seed_key(seed):
    if seed is None:
        return (2, 0, "")
    return (0, seed, "") if isinstance(seed, int) else (1, 0, str(seed))


def _natural_key(path: Path):
    # Hydra numbers jobs 0,1,...,10,11: sort "10" after "9", not after "1".
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts]


def _load_yaml(path: Path):
    # Plain YAML, not OmegaConf: multirun.yaml holds unresolved ${now:...} interpolations.
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _load_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _simple_overrides(lines) -> dict[str, str]:
    """`regularizer=rdrop` style job overrides -> {key: value} (leading +/~ dropped)."""
    out = {}
    for line in lines or []:
        key, sep, value = str(line).partition("=")
        if sep:
            out[key.lstrip("+~").strip()] = value.strip()
    return out


def _run_identity(run_dir: Path, metrics: dict | None):
    """(regularizer, seed) of a run: from Hydra's `regularizer=`/`seed=` overrides, else from a
    `<regularizer>_seed<S>` directory name (run_comparison.py's), else from the config or metrics.json.
    The first two are the names the sweep was launched with (e.g. random_replace_vocab)."""
    overrides = {}
    if (run_dir / ".hydra" / "overrides.yaml").is_file():
        overrides = _simple_overrides(_load_yaml(run_dir / ".hydra" / "overrides.yaml"))
    reg, seed = overrides.get("regularizer"), overrides.get("seed")
    named = RUN_DIR_NAME.match(run_dir.name)
    if named:
        reg = reg if reg is not None else named["regularizer"]
        seed = seed if seed is not None else named["seed"]
    config = _load_yaml(run_dir / ".hydra" / "config.yaml") if (run_dir / ".hydra" / "config.yaml").is_file() else None
    for source in (config or {}, metrics or {}):
        r = source.get("regularizer")
        if reg is None and r is not None:
            reg = r.get("name") if isinstance(r, dict) else r
        if seed is None:
            seed = source.get("seed")
    return (str(reg) if reg is not None else "unknown"), _norm_seed(seed)


def _candidate_run_dirs(root: Path) -> set[Path]:
    """Directories that are (or were meant to be) runs. A report directory (root/runs exists): every directory
    directly under root/runs (so an unfinished run there is still seen), nothing elsewhere (a sub-report
    such as compare_converged/horizon/ has runs of its own). Any other tree: a Hydra job dir, a dir with
    metrics.json."""
    if (root / "runs").is_dir():
        return {p for p in (root / "runs").iterdir() if p.is_dir()}
    found = {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    return found | {p.parent for p in root.rglob("metrics.json")}


def discover_runs(root: Path) -> list[Run]:
    """Every run directory under root, at any depth, in natural path order."""
    runs: list[Run] = []
    accepted: list[Path] = []
    # Shallowest first, so a metrics.json nested inside a run directory (a checkpoint folder,
    # a diagnostics folder) is not mistaken for a second run.
    for d in sorted(_candidate_run_dirs(root), key=lambda p: (len(p.parts), _natural_key(p))):
        if any(a in d.parents for a in accepted):
            continue
        accepted.append(d)
        metrics = _load_json(d / "metrics.json") if (d / "metrics.json").is_file() else metrics_from_eval_log(d)
        reg, seed = _run_identity(d, metrics)
        runs.append(Run(path=d, regularizer=reg, seed=seed, metrics=metrics))
    runs.sort(key=lambda r: _natural_key(r.path))
    return runs


def metrics_from_eval_log(run_dir: Path) -> dict | None:
    """The dev scores of a run stopped after its last optimizer step but before metrics.json (during
    its final decodings): with trainer.keep=last the final weights were scored on dev with the main
    decoding at step trainer.max_steps, and eval_log.csv holds that row. None unless all of this is
    so (a config_resolved.yaml or .hydra/config.yaml says keep=last and max_steps; eval_log.csv
    reaches it). The scores carry 2 decimals; the run is listed as cut off (CUT_OFF)."""
    config_file = next((f for f in (run_dir / "config_resolved.yaml", run_dir / ".hydra" / "config.yaml")
                        if f.is_file()), None)
    config = (_load_yaml(config_file) if config_file else None) or {}
    trainer = config.get("trainer") or {}
    if trainer.get("keep") != "last" or not trainer.get("max_steps") or not (run_dir / "eval_log.csv").is_file():
        return None
    last_rows = {int(float(r["step"])): r for r in read_csv_rows(run_dir / "eval_log.csv")}
    final = last_rows.get(int(trainer["max_steps"]))
    if final is None:
        return None
    return {"dev": {**{m: float(final[m]) for m in METRIC_NAMES}, "n": int(final["n"])},
            "total_steps": int(trainer["max_steps"]), "kept": "last", FROM_EVAL_LOG: True,
            "decode": config.get("decode")}


def _sweep_values(override_strings, key: str):
    """Values a Hydra sweep gives `key` (comma list, range(), or one value); None when `key` is not
    overridden or cannot be expanded (glob(), whose options live in a config directory we lack)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for o in OverridesParser.create().parse_overrides([str(s) for s in override_strings]):
        if o.key_or_group != key or o.is_delete():
            continue
        if not o.is_sweep_override():
            return [o.get_value_element_as_str()]
        try:
            return [str(v) for v in o.sweep_string_iterator()]
        except Exception:  # glob() and friends
            return None
    return None


def expected_grid(root: Path, runs: list[Run]) -> tuple[list[str], list, list[str]]:
    """(regularizers, seeds, notes) the sweep should have produced: multirun.yaml's sweep when there is
    one, else (regularizers found) × (seeds found), so a seed one regularizer has and another lacks
    still shows up as missing."""
    regs = {r.regularizer for r in runs}
    seeds = {r.seed for r in runs if r.seed is not None}
    notes = []
    if (root / "multirun.yaml").is_file():
        doc = _load_yaml(root / "multirun.yaml") or {}
        task = ((doc.get("hydra") or {}).get("overrides") or {}).get("task") or []
        swept_regs, swept_seeds = _sweep_values(task, "regularizer"), _sweep_values(task, "seed")
        regs |= set(swept_regs or [])
        seeds |= {_norm_seed(s) for s in swept_seeds or []}
        if swept_regs is None or swept_seeds is None:
            notes.append("multirun.yaml does not list both the regularizers and the seeds; the grid "
                          "uses those found as well.")
    else:
        notes.append("The expected grid is (regularizers found) × (seeds found).")
    return order_regularizers(regs), sorted(seeds, key=_seed_key), notes


def order_regularizers(names) -> list[str]:
    names = set(names)
    return [n for n in PREFERRED_ORDER if n in names] + sorted(names - set(PREFERRED_ORDER))


def read_csv_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def load_bench(root: Path) -> dict | None:
    path = root / "bench_train.json"
    return _load_json(path) if path.is_file() else None


def load_notes(root: Path) -> str | None:
    path = root / "notes.md"
    return path.read_text(encoding="utf-8").strip("\n") if path.is_file() else None


# --------------------------------------------------------------------------- per-example scores


def read_predictions(path: Path) -> tuple[list[str], list[str]]:
    """`reference<TAB>prediction` per line -> (references, predictions)."""
    refs, preds = [], []
    with open(path, encoding="utf-8") as f:
        # Split on "\n" only: str.splitlines() would also break on U+2028 etc. inside text.
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline, not an example
    for line in lines:
        ref, _, pred = line.rstrip("\r").partition("\t")  # no tab: empty prediction
        refs.append(ref)
        preds.append(pred)
    return refs, preds


def _scores_from_predictions(run: Run, split: str) -> dict:
    """{decode: {metric: [per-example]}} recomputed from predictions_<split>[_<decode>].tsv."""
    out = {}
    for path in sorted(run.path.glob(f"predictions_{split}*.tsv")):
        decode = path.stem[len(f"predictions_{split}"):].lstrip("_") or "main"
        refs, preds = read_predictions(path)
        out[decode] = {**score_examples(refs, preds), "references": refs}
    return out


def example_scores(run: Run, split: str) -> dict:
    """{decode: {metric: np.ndarray}} of one run: example_scores.json when present, else recomputed
    from its prediction files (then also "references", to check the pairing)."""
    if ("examples", split) not in run.cache:
        if (run.path / "example_scores.json").is_file():
            by_decode = _load_json(run.path / "example_scores.json").get(split, {})
        else:
            by_decode = _scores_from_predictions(run, split)
        run.cache[("examples", split)] = {
            decode: {k: (v if k == "references" else np.asarray(v, dtype=float)) for k, v in scores.items()}
            for decode, scores in by_decode.items()}
    return run.cache[("examples", split)]


def split_scores(metrics: dict, split: str, decode: str) -> dict | None:
    """Corpus scores of one split and decoding from metrics.json, None when absent. Decodings named final and
    final_<name> are the final weights' (metrics["final"], runs whose kept step was chosen on validation)."""
    if decode == FINAL or decode.startswith(FINAL + "_"):
        metrics, decode = metrics.get(FINAL) or {}, decode[len(FINAL) + 1:] or "main"
    scores = metrics.get(split) if decode == "main" else (metrics.get("decodes", {}).get(decode) or {}).get(split)
    return scores if isinstance(scores, dict) else None


def decodings_of(metrics: dict) -> set[str]:
    """The decoding names a run's metrics.json holds besides main: trainer.final_decodes entries, and the final
    weights' (final, final_<name>) when a validation split chose the kept step."""
    names = set(metrics.get("decodes", {}))
    if isinstance(metrics.get(FINAL), dict):
        names |= {FINAL} | {f"{FINAL}_{d}" for d in metrics[FINAL].get("decodes", {})}
    return names


# --------------------------------------------------------------------------- curves


def log_points(path: Path, column: str) -> dict[int, float]:
    """{step: value} of one column of a training or evaluation log (the last row of a step wins, as
    after a resume); empty without the file."""
    if not path.is_file():
        return {}
    return {int(float(r["step"])): float(r[column]) for r in read_csv_rows(path) if r.get(column)}


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


def mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, sd) over seeds on the evaluation steps every seed covers (sd 0 with one seed)."""
    lo = max(c[0][0] for c in curves)
    hi = min(c[0][-1] for c in curves)
    grid = np.array(sorted({float(s) for c in curves for s in c[0] if lo <= s <= hi}))
    stack = np.array([np.interp(grid, steps, values) for steps, values in curves])
    sd = stack.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(grid.size)
    return grid, stack.mean(axis=0), sd


# --------------------------------------------------------------------------- statistics


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
    finite = sorted((p, i) for i, p in enumerate(p_values) if not _nan(p))
    adjusted, running = [math.nan] * len(p_values), 0.0
    for k, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (len(finite) - k) * p))
        adjusted[i] = running
    return adjusted


def paired_differences(reg: str, baseline: str, scored: dict, split: str, decode: str):
    """(paired seeds, (seeds, examples) array of per-example ROUGE-L differences reg - baseline)."""
    def usable(name):
        return {s for (r, s), run in scored.items() if r == name and decode in example_scores(run, split)}

    seeds = sorted(usable(reg) & usable(baseline), key=_seed_key)
    rows = []
    for s in seeds:
        mine = example_scores(scored[(reg, s)], split)[decode]
        base = example_scores(scored[(baseline, s)], split)[decode]
        if mine["rouge-l"].size != base["rouge-l"].size:
            raise CompareError(f"{split} {decode}, seed {s}: {reg} has {mine['rouge-l'].size} per-example scores, "
                               f"{baseline} {base['rouge-l'].size}; a paired comparison needs the same examples")
        if mine.get("references") is not None and base.get("references") is not None \
                and mine["references"] != base["references"]:
            raise CompareError(f"{split} {decode}, seed {s}: the references of {reg} and {baseline} differ; "
                               "a paired comparison needs the same examples in the same order")
        rows.append(mine["rouge-l"] - base["rouge-l"])
    if len({r.size for r in rows}) > 1:
        raise CompareError(f"{reg}: the seeds' {split} {decode} scores cover different numbers of examples")
    return seeds, (np.array(rows) if rows else None)


def bootstrap_against_baseline(reg, baseline, scored, split, decode, n_boot, seed) -> dict:
    """Δ R-L against the baseline: the hierarchical bootstrap (seeds, then examples) carries delta, ci_*
    and p_value; "examples_only" holds the seed-pooled example bootstrap; "per_seed" each seed's Δ.
    p_holm is filled in by holm_over_report."""
    nan_boot = {"delta": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    out = {"seeds": [], "n_examples": math.nan, **nan_boot, "p_holm": math.nan, "examples_only": nan_boot,
           "per_seed": []}
    if reg == baseline:
        return out
    seeds, diffs = paired_differences(reg, baseline, scored, split, decode)
    if diffs is None or diffs.shape[1] == 0:
        return out
    return {**out, **hierarchical_bootstrap(diffs, n_boot, seed), "seeds": seeds, "n_examples": int(diffs.shape[1]),
            "examples_only": paired_bootstrap(diffs, n_boot, seed),
            "per_seed": [float(d) for d in diffs.mean(axis=1)]}


def holm_over_report(rows: list[dict], decodes: list[str]) -> int:
    """Holm-adjusted p of every comparison in the report (each regularizer against the baseline, each
    decoding), written into its boot's p_holm; returns the number of comparisons adjusted for."""
    boots = [row["boot"][d] for row in rows for d in decodes if not _nan(row["boot"][d]["p_value"])]
    for boot, adjusted in zip(boots, holm([b["p_value"] for b in boots])):
        boot["p_holm"] = adjusted
    return len(boots)


# --------------------------------------------------------------------------- cost and equal time


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


def equal_time_row(reg_runs: list[Run], base_runs: list[Run], reg_sps: float, base_sps: float) -> dict:
    """Dev ROUGE-L (greedy) at the training time of a whole baseline run: each seed's eval_log curve
    interpolated at baseline_total_steps × base_sps / reg_sps steps."""
    base_steps = [float(r.metrics["total_steps"]) for r in base_runs if r.metrics.get("total_steps")]
    out = {"steps": math.nan, "mean": math.nan, "sd": math.nan, "n": 0, "flags": []}
    if not base_steps or math.isnan(reg_sps) or math.isnan(base_sps) or reg_sps <= 0:
        return out
    out["steps"] = float(np.mean(base_steps)) * base_sps / reg_sps
    values, flags = [], set()
    for run in reg_runs:
        curve = eval_curve(run)
        if curve is None:
            continue
        value, flag = value_at_step(*curve, out["steps"])
        flags.add(flag)
        if not math.isnan(value):
            values.append(value)
    out["mean"], out["sd"] = mean_sd(values)
    out["n"], out["flags"] = len(values), sorted(f for f in flags if f)
    return out


# --------------------------------------------------------------------------- diagnostics


DIAGNOSTICS_FILES = {  # file in a run directory -> suffix of its measures' names in the report
    "diagnostics.json": "",  # at the run's own dropout rates
    "diagnostics_dropout0.1.json": " @ dropout 0.1",  # every checkpoint at one common rate (like for like)
}


def diagnostic_measures(run: Run) -> dict[str, float]:
    """runs[0]["measures"] of the run's diagnostics files (numbers only), and the hidden dropout they were
    measured at, each name with its file's suffix; {} without the files."""
    out = {}
    for file, suffix in DIAGNOSTICS_FILES.items():
        if not (run.path / file).is_file():
            continue
        first = (_load_json(run.path / file).get("runs") or [{}])[0]
        measures = {**(first.get("measures") or {}), "dropout_hidden": (first.get("dropout") or {}).get("hidden")}
        out.update({k + suffix: float(v) for k, v in measures.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return out


def diagnostics_summary(runs: list[Run]) -> dict[str, tuple[float, float]]:
    """{measure: (mean, sd) over the seeds that have it}."""
    per_run = [diagnostic_measures(r) for r in runs]
    names = sorted({k for m in per_run for k in m})
    return {k: mean_sd([m[k] for m in per_run if k in m]) for k in names}


# --------------------------------------------------------------------------- building the report


def relative(path: Path, root: Path) -> str:
    """path relative to root, in POSIX form ('.' for root itself)."""
    return path.resolve().relative_to(root.resolve()).as_posix() or "."


def decode_label(decode: str, runs: list[Run]) -> str:
    """'greedy' / 'beam 4' for the main decoding (metrics["decode"]), the overrides for the others; the final
    weights' decodings say so."""
    if decode == FINAL or decode.startswith(FINAL + "_"):
        finals = [Run(r.path, r.regularizer, r.seed, {**r.metrics[FINAL], "decode": r.metrics.get("decode")})
                  for r in runs if isinstance(r.metrics.get(FINAL), dict)]
        return "final weights, " + decode_label(decode[len(FINAL) + 1:] or "main", finals)
    if decode == "main":
        beams = sorted({int((r.metrics.get("decode") or {}).get("beam_size", 0)) for r in runs} - {0})
        return "greedy" if beams == [1] else ("beam " + "/".join(map(str, beams)) if beams else "main")
    overrides = sorted({json.dumps((r.metrics.get("decodes", {}).get(decode) or {}).get("overrides") or {},
                                   sort_keys=True) for r in runs if decode in r.metrics.get("decodes", {})})
    return "; ".join(", ".join(f"{k} {v}" for k, v in json.loads(o).items()) for o in overrides) or decode


def find_problems(runs, scored, exp_regs, exp_seeds, split, root) -> list[Problem]:
    """Missing, unfinished and partly usable runs, in grid order."""
    problems = [Problem(r.regularizer, r.seed, UNFINISHED, relative(r.path, root)) for r in runs if r.metrics is None]
    for (reg, seed), run in scored.items():
        where = relative(run.path, root)
        if run.metrics.get(FROM_EVAL_LOG):
            problems.append(Problem(reg, seed, CUT_OFF if split == "dev" else f"{CUT_OFF}; no {split} scores", where))
        elif split_scores(run.metrics, split, "main") is None:
            problems.append(Problem(reg, seed, f"metrics.json has no {split} scores (left out)", where))
        elif "main" not in example_scores(run, split):
            problems.append(Problem(reg, seed, f"no per-example {split} scores (left out of the bootstrap)", where))
        if eval_curve(run) is None:
            problems.append(Problem(reg, seed, "no eval_log.csv (no learning curve, no equal-time point)", where))
    present = {(r.regularizer, r.seed) for r in runs}
    problems += [Problem(reg, s, MISSING) for reg, s in itertools.product(exp_regs, exp_seeds)
                 if (reg, s) not in present]
    order = order_regularizers({p.regularizer for p in problems} | set(exp_regs))
    return sorted(problems, key=lambda p: (order.index(p.regularizer), _seed_key(p.seed), p.reason))


def grid_status(regs, seeds, problems) -> dict:
    """{(regularizer, seed): 'ok' | 'ok*' (partly usable, see the list) | 'missing' | 'unfinished'}."""
    status = {(reg, s): "ok" for reg in regs for s in seeds}
    for p in problems:
        key = (p.regularizer, p.seed)
        status[key] = {MISSING: "missing", UNFINISHED: "unfinished"}.get(p.reason, "ok*")
    return status


def consistency_warnings(scored, split, decodes, root) -> list[str]:
    """Per-example scores whose mean or count disagrees with the run's own metrics.json."""
    warnings = []
    for (reg, seed), run in sorted(scored.items(), key=lambda kv: (kv[0][0], _seed_key(kv[0][1]))):
        for decode in decodes:
            corpus, examples = split_scores(run.metrics, split, decode), example_scores(run, split).get(decode)
            if corpus is None or examples is None or examples["rouge-l"].size == 0:
                continue
            mean = float(examples["rouge-l"].mean())
            if corpus.get("n") is not None and int(corpus["n"]) != examples["rouge-l"].size:
                warnings.append(f"{relative(run.path, root)}: {examples['rouge-l'].size} per-example {split} "
                                f"{decode} scores, metrics.json says n={corpus['n']}")
            if corpus.get("rouge-l") is not None and abs(float(corpus["rouge-l"]) - mean) > 0.05:
                warnings.append(f"{relative(run.path, root)}: per-example {split} {decode} ROUGE-L averages "
                                f"{mean:.2f}, metrics.json says {float(corpus['rouge-l']):.2f}")
    return warnings


def score_summary(runs: list[Run], split: str, decode: str) -> dict:
    """{metric: (mean, sd)} over the runs that have this split and decoding, plus "n" and "seeds"."""
    have = [r for r in runs if split_scores(r.metrics, split, decode) is not None]
    out = {m: mean_sd([float(split_scores(r.metrics, split, decode)[m]) for r in have]) for m in METRIC_NAMES}
    return {**out, "n": len(have), "seeds": [r.seed for r in have]}


def published_row(reg: str) -> dict | None:
    name = PUBLISHED_NAME.get(reg)
    if name is None:
        return None
    return {"name": name, **PUBLISHED[name],
            "delta": PUBLISHED[name]["rouge-l"] - PUBLISHED["baseline"]["rouge-l"]}


def regularizer_row(reg, runs_of, scored, ctx) -> dict:
    """Everything the tables say about one regularizer."""
    runs, cost = runs_of(reg), ctx["cost"][reg]
    return {
        "regularizer": reg,
        "seeds": [r.seed for r in runs],
        "scores": {d: score_summary(runs, ctx["split"], d) for d in ctx["decodes"]},
        "boot": {d: bootstrap_against_baseline(reg, ctx["baseline"], scored, ctx["split"], d,
                                               ctx["n_boot"], ctx["seed"]) for d in ctx["decodes"]},
        "cost": cost,
        "equal_time": equal_time_row(runs, runs_of(ctx["baseline"]), cost["sps"], cost["base_sps"]),
        "diagnostics": diagnostics_summary(runs),
        "published": published_row(reg),
    }


def setup_facts(finished: list[Run]) -> dict[str, list[str]]:
    """Distinct values across runs of the settings a reader needs to read the numbers."""
    def values(get):
        out = set()
        for r in finished:
            try:
                v = get(r.metrics)
            except (KeyError, TypeError):
                continue
            if v is not None:
                out.add(json.dumps(v, sort_keys=True, ensure_ascii=False))
        return sorted(out)

    return {
        "kept": values(lambda m: m["kept"]), "kept_step": values(lambda m: m["kept_step"]),
        "total_steps": values(lambda m: m["total_steps"]), "steps": values(steps_trained),
        "data": values(lambda m: m["data"]),
        "model": values(lambda m: {k: v for k, v in m["model"].items() if k not in ("pretrained", "dropout")}),
    }


def build_report(root: Path, split: str, baseline: str, decode: str, n_boot: int, seed: int) -> dict:
    runs = discover_runs(root)
    scored: dict[tuple, Run] = {}
    for run in (r for r in runs if r.metrics is not None):
        key = (run.regularizer, run.seed)
        if key in scored:
            raise CompareError(f"two finished runs for regularizer={run.regularizer} seed={run.seed}: "
                               f"{relative(scored[key].path, root)} and {relative(run.path, root)}")
        scored[key] = run
    exp_regs, exp_seeds, notes = expected_grid(root, runs)
    regs = order_regularizers({r for r, _ in scored} | set(exp_regs))
    finished = [scored[k] for k in sorted(scored, key=lambda k: (regs.index(k[0]), _seed_key(k[1])))]
    decodes = ["main"] + sorted({d for r in finished for d in decodings_of(r.metrics)
                                 if split_scores(r.metrics, split, d) is not None})
    if decode not in decodes:
        raise CompareError(f"--decode {decode}: no run has {split} scores for it (found: {', '.join(decodes)})")

    def runs_of(name):
        return [r for r in finished if r.regularizer == name]

    bench = load_bench(root)
    ctx = {"split": split, "baseline": baseline, "decodes": decodes, "n_boot": n_boot, "seed": seed,
           "cost": cost_rows(regs, runs_of, baseline, bench)}
    problems = find_problems(runs, scored, exp_regs, exp_seeds, split, root)
    if baseline not in {r for r, _ in scored}:
        notes.append(f"Baseline '{baseline}' has no finished run: no Δ, time ratio or equal-time point.")
    rows = [regularizer_row(reg, runs_of, scored, ctx) for reg in regs]
    return {
        **ctx, "root": root, "plot_decode": decode, "bench": bench, "notes_md": load_notes(root),
        "labels": {d: decode_label(d, finished) for d in decodes},
        "rows": rows, "n_comparisons": holm_over_report(rows, decodes),
        # the split of the eval_log curves: the validation split when the runs chose their step on one
        "curve_split": "val" if any(r.metrics.get("selected_on") == "val" for r in finished) else "dev",
        "curves": {reg: [c for c in (eval_curve(r) for r in runs_of(reg)) if c is not None] for reg in regs},
        "minutes": {reg: minutes_per_run(runs_of(reg), ctx["cost"][reg]) for reg in regs},
        "grid": (exp_regs, exp_seeds, grid_status(exp_regs, exp_seeds, problems)),
        "problems": problems, "notes": notes, "setup": setup_facts(finished),
        "warnings": consistency_warnings(scored, split, decodes, root),
        "n_runs": (len(finished), len(runs), sum(bool(r.metrics.get(FROM_EVAL_LOG)) for r in finished)),
    }


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


# --------------------------------------------------------------------------- formatting


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _fmt(x, spec=".2f", empty="n/a") -> str:
    return empty if _nan(x) else format(x, spec)


def _pm(mean_and_sd) -> str:
    mean, sd = mean_and_sd
    return "n/a" if _nan(mean) else f"{mean:.2f} ± {_fmt(sd)}"


def _pm_small(mean_and_sd) -> str:
    """mean ± sd with 4 decimals for measures below 10 (NLLs, KLs, accuracies), 2 above (ROUGE)."""
    mean, sd = mean_and_sd
    if _nan(mean):
        return "n/a"
    digits = 4 if abs(mean) < 10 else 2
    return f"{mean:.{digits}f} ± " + ("n/a" if _nan(sd) else f"{sd:.{digits}f}")


def _p_text(p, n_boot) -> str:
    return "n/a" if _nan(p) else (f"< {1 / n_boot:.2g}" if p == 0 else f"{p:.3f}")


def _delta_text(boot, n_boot) -> str:
    if _nan(boot["delta"]):
        return "n/a"
    return (f"{boot['delta']:+.2f} [{boot['ci_low']:+.2f}, {boot['ci_high']:+.2f}], p {_p_text(boot['p_value'], n_boot)}"
            f" (Holm {_p_text(boot['p_holm'], n_boot)})")


def _ci_text(boot) -> str:
    return "n/a" if _nan(boot["ci_low"]) else f"[{boot['ci_low']:+.2f}, {boot['ci_high']:+.2f}]"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
           ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _seeds_text(seeds) -> str:
    return f"{len(seeds)} ({', '.join(map(str, seeds))})" if seeds else "0"


def _json_list(values: list[str]) -> str:
    return ", ".join(v.strip('"') for v in values) or "n/a"


# --------------------------------------------------------------------------- comparison.csv


def csv_record(row: dict, report: dict, diag_names: list[str]) -> dict:
    rec = {"regularizer": row["regularizer"], "n_seeds": row["scores"]["main"]["n"],
           "seeds": ";".join(map(str, row["scores"]["main"]["seeds"])), "split": report["split"]}
    for d in report["decodes"]:
        rec.update({f"{d}_{m}_{s}": row["scores"][d][m][i] for m in METRIC_NAMES for i, s in enumerate(("mean", "sd"))})
        b = row["boot"][d]
        e = b["examples_only"]
        rec.update({f"{d}_delta_rouge-l": b["delta"], f"{d}_ci_low": b["ci_low"], f"{d}_ci_high": b["ci_high"],
                    f"{d}_p_value": b["p_value"], f"{d}_p_holm": b["p_holm"],
                    f"{d}_examples_only_ci_low": e["ci_low"], f"{d}_examples_only_ci_high": e["ci_high"],
                    f"{d}_examples_only_p_value": e["p_value"],
                    f"{d}_per_seed_delta": ";".join(f"{x:.4f}" for x in b["per_seed"]),
                    f"{d}_bootstrap_seeds": ";".join(map(str, b["seeds"])), f"{d}_n_examples": b["n_examples"]})
    cost, eq, pub = row["cost"], row["equal_time"], row["published"] or {}
    rec.update({"seconds_per_step": cost["sps"], "seconds_per_step_source": cost["source"],
                "train_time_ratio": cost["ratio"], "equal_time_steps": eq["steps"],
                "equal_time_rouge-l_mean": eq["mean"], "equal_time_rouge-l_sd": eq["sd"],
                "equal_time_n": eq["n"], "equal_time_flags": ";".join(eq["flags"]),
                "published_name": pub.get("name", "")})
    rec.update({f"published_{m}": pub.get(m) for m in METRIC_NAMES})
    rec["published_delta_rouge-l"] = pub.get("delta")
    for name in diag_names:
        rec[f"diag_{name}_mean"], rec[f"diag_{name}_sd"] = row["diagnostics"].get(name, (math.nan, math.nan))
    rec["missing_or_unfinished"] = "; ".join(f"seed {p.seed}: {p.reason}" for p in report["problems"]
                                             if p.regularizer == row["regularizer"])
    return rec


def _csv_value(x) -> str:
    if _nan(x):
        return ""  # not computable (one seed, the baseline's own Δ, no file, ...)
    return repr(x) if isinstance(x, float) else str(x)


def write_csv(path: Path, report: dict) -> None:
    diag_names = sorted({k for row in report["rows"] for k in row["diagnostics"]})
    records = [csv_record(row, report, diag_names) for row in report["rows"]]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        if records:
            writer.writerow(list(records[0]))
        for rec in records:
            writer.writerow([_csv_value(v) for v in rec.values()])


# --------------------------------------------------------------------------- comparison.md


def method_text(report: dict) -> str:
    b, n_boot, seed = report["baseline"], report["n_boot"], report["seed"]
    return (
        f"Δ R-L is the regularizer's per-example ROUGE-L minus {b}'s on the same {report['split']} examples, "
        f"from each run's example_scores.json (or recomputed from its predictions_{report['split']}*.tsv with "
        f"seq2seq_rdrop.metrics.score_examples); each seed s pairs the regularizer's run with {b}'s run of seed s. "
        f"Intervals and p come from a hierarchical paired bootstrap, which counts the training runs as a source "
        f"of variance: a resample draws the paired seeds with replacement and the example indices with "
        f"replacement (one draw for all seeds: every seed is scored on the same examples, whose effects carry "
        f"across seeds); its statistic is the mean over the drawn seeds of the mean per-example difference. {n_boot} resamples (numpy default_rng({seed}), restarted for each regularizer "
        f"and decoding). Δ is that statistic on all examples; the 95% CI is the 2.5th-97.5th percentile of the "
        f"resampled statistics; the two-sided p is min(1, 2 × min(share ≤ 0, share ≥ 0)), resolution 1/{n_boot}. "
        f"With three seeds the seed level has few distinct resamples, so these intervals are coarse; they are "
        f"still the honest ones. Holm's step-down adjustment over all {report['n_comparisons']} comparisons of "
        f"this report (every regularizer against {b}, every decoding) is given beside the raw p. The bootstrap "
        f"table also keeps the example-only interval (the same example indices for every seed, runs held fixed), "
        f"which ignores seed variance and is narrower. Only seeds both have enter, so Δ can differ from the "
        f"difference of the mean columns."
    )


def kept_text(setup: dict) -> str:
    kept = _json_list(setup["kept"])
    steps = _json_list(setup["kept_step"])
    if kept == "last":
        return f"the final weights (metrics.json kept = last; step {steps})"
    if kept == "best":
        return (f"the checkpoint with the best dev score (metrics.json kept = best; steps {steps}): "
                "dev scores are then selected on dev")
    return f"the weights metrics.json calls kept = {kept} (steps {steps})"


def md_header(report: dict) -> list[str]:
    root, setup = report["root"], report["setup"]
    try:
        where = f"`{relative(root, REPO_ROOT)}` (relative to the repository)"
    except ValueError:
        where = "this directory"
    labels = "; ".join(f"{d} = {report['labels'][d]}" for d in report["decodes"])
    finished, found, cut_off = report["n_runs"]
    lines = ["# Regularizer comparison", ""]
    if report["notes_md"]:
        lines += [report["notes_md"], ""]
    return lines + [
        "## How these numbers were made", "",
        f"- Built by `python scripts/compare.py` from the run files in {where}; paths below are relative to it.",
        f"- Runs: {finished} finished of {found} run directories"
        + (f" ({cut_off} of them cut off in their final evaluation, scored from eval_log.csv)" if cut_off else "")
        + "; the grid at the end lists what is missing.",
        f"- Split: **{report['split']}**. Scores are those of {kept_text(setup)}.",
        f"- Decodings: {labels}. Total optimizer steps per run: {_json_list(setup['total_steps'])}"
        + (f" (trained: {_json_list(setup['steps'])})" if setup["steps"] != setup["total_steps"] else "") + ".",
        f"- Data: {_json_list(setup['data'])}.",
        f"- Model: {_json_list(setup['model'])}.",
        "- Mean ± sd over seeds; sd is the sample sd (ddof=1), n/a with one seed.",
        f"- {method_text(report)}", "",
    ]


def md_summary(report: dict) -> list[str]:
    decodes, n_boot, base = report["decodes"], report["n_boot"], report["baseline"]
    header = ["regularizer", "seeds"]
    for d in decodes:
        name = report["labels"][d] if d == "main" else d
        header += [f"R-L {name}", f"Δ R-L {name} [95% CI], p"]
    header += ["s/step", f"time / {base}", "published R-L", "published Δ"]
    rows = []
    for row in report["rows"]:
        cells = [row["regularizer"], _seeds_text(row["scores"]["main"]["seeds"])]
        for d in decodes:
            cells += [_pm(row["scores"][d]["rouge-l"]), _delta_text(row["boot"][d], n_boot)]
        pub = row["published"]
        cells += [_fmt(row["cost"]["sps"], ".3g") + (" †" if row["cost"]["source"] == "runs" else ""),
                  _fmt(row["cost"]["ratio"], ".2f") + ("×" if not _nan(row["cost"]["ratio"]) else ""),
                  f"{pub['rouge-l']:.2f}" if pub else "-", f"{pub['delta']:+.2f}" if pub else "-"]
        rows.append(cells)
    return [f"## Summary: ROUGE-L on {report['split']}", ""] + _table(header, rows) + [
        "", "s/step and time: see Training cost († = wall times of the runs, not a benchmark).", "",
        order_text(report), ""]


def order_text(report: dict) -> str:
    ours = [(row["scores"]["main"]["rouge-l"][0], row["regularizer"]) for row in report["rows"]
            if row["published"] and not _nan(row["scores"]["main"]["rouge-l"][0])]
    ours = [reg for _, reg in sorted(ours, key=lambda t: (-t[0], t[1]))]
    names = {PUBLISHED_NAME[r] for r in ours}
    published = [n for n, _ in sorted(PUBLISHED.items(), key=lambda kv: -kv[1]["rouge-l"]) if n in names]
    return (f"Order by mean R-L, best first: ours ({report['labels']['main']}) "
            f"{' > '.join(ours) or 'n/a'}; published (greedy, CLGE csl val) {' > '.join(published) or 'n/a'}. "
            "Published rows: random_replace and random_replace_vocab both map to 'random replacement'.")


def cost_source_text(report: dict) -> str:
    bench, base = report["bench"], report["baseline"]
    text = ("s/step: seconds per optimizer step. † (source 'runs') = mean train_seconds / total_steps of the "
            f"runs: wall times of a shared machine, not a benchmark; the time ratio is then mean train_seconds "
            f"over {base}'s.")
    if bench:
        text += (f" Source 'bench' = the medians of bench_train.json (machine: {bench.get('machine', 'n/a')}; "
                 f"command: `{bench.get('command', 'n/a')}`); the time ratio is then s/step × total steps over "
                 f"{base}'s bench s/step × total steps.")
    else:
        text += " There is no bench_train.json (with the baseline) in this directory."
    return text


def md_scores(report: dict) -> list[str]:
    lines = []
    for d in report["decodes"]:
        header = ["regularizer", "seeds"] + [METRIC_LABELS[m] for m in METRIC_NAMES]
        rows = [[row["regularizer"], _seeds_text(row["scores"][d]["seeds"])]
                + [_pm(row["scores"][d][m]) for m in METRIC_NAMES] for row in report["rows"]]
        lines += [f"## Scores on {report['split']}: {d} ({report['labels'][d]})", ""] + _table(header, rows) + [""]
    return lines


def md_bootstrap(report: dict) -> list[str]:
    header = ["regularizer", "decoding", "paired seeds", "Δ per seed", "examples", "Δ R-L",
              "95% CI (seeds × examples)", "p", f"p Holm (m = {report['n_comparisons']})",
              "95% CI (examples only)", "p (examples only)"]
    rows = []
    for row in report["rows"]:
        for d in report["decodes"]:
            b, n_boot = row["boot"][d], report["n_boot"]
            if row["regularizer"] == report["baseline"]:
                continue
            rows.append([row["regularizer"], d, ", ".join(map(str, b["seeds"])) or "none",
                         ", ".join(f"{x:+.2f}" for x in b["per_seed"]) or "n/a", _fmt(b["n_examples"], "d"),
                         _fmt(b["delta"], "+.2f"), _ci_text(b), _p_text(b["p_value"], n_boot),
                         _p_text(b["p_holm"], n_boot), _ci_text(b["examples_only"]),
                         _p_text(b["examples_only"]["p_value"], n_boot)])
    return [f"## Paired bootstrap of ROUGE-L against {report['baseline']}", ""] + _table(header, rows) + [""]


def md_published(report: dict) -> list[str]:
    header = ["regularizer", "published row"] + [f"ours {METRIC_LABELS[m]}" for m in METRIC_NAMES] \
        + [f"published {METRIC_LABELS[m]}" for m in METRIC_NAMES] + ["published Δ R-L"]
    rows = [[row["regularizer"], row["published"]["name"]]
            + [_fmt(row["scores"]["main"][m][0]) for m in METRIC_NAMES]
            + [f"{row['published'][m]:.2f}" for m in METRIC_NAMES] + [f"{row['published']['delta']:+.2f}"]
            for row in report["rows"] if row["published"]]
    return ["## Published rows beside ours", "",
            f"Ours: mean over seeds, {report['split']} split, {report['labels']['main']}. Published: the reference's "
            "CLGE csl val rows, greedy decoding, BERT-wwm-base fine-tuned to its best epoch.", ""] \
        + _table(header, rows) + [""]


def md_cost(report: dict) -> list[str]:
    rows = [[row["regularizer"], _fmt(row["cost"]["sps"], ".4g"),
             {"bench": "bench", "runs": "runs †"}.get(row["cost"]["source"], "n/a"),
             _fmt(row["cost"]["seconds"] / 60 if not _nan(row["cost"]["seconds"]) else math.nan, ".1f"),
             _fmt(row["cost"]["ratio"], ".2f") + ("×" if not _nan(row["cost"]["ratio"]) else "")]
            for row in report["rows"]]
    lines = ["## Training cost", ""] + _table(
        ["regularizer", "s/step", "source", "minutes per run", f"time / {report['baseline']}"], rows)
    bench = report["bench"]
    if bench and bench.get("setup"):
        lines += ["", "bench_train.json setup: " + "; ".join(map(str, bench["setup"]))]
    return lines + ["", cost_source_text(report), ""]


def md_equal_time(report: dict) -> list[str]:
    base = report["baseline"]
    rows = [[row["regularizer"], _fmt(row["equal_time"]["steps"], ".0f"), row["equal_time"]["n"],
             _pm((row["equal_time"]["mean"], row["equal_time"]["sd"])), ", ".join(row["equal_time"]["flags"]) or "-"]
            for row in report["rows"]]
    return [f"## Equal-time comparison ({report['curve_split']} R-L, greedy, at {base}'s training time)", "",
            f"Each regularizer's greedy {report['curve_split']} ROUGE-L (its eval_log.csv) after the training time a whole {base} run needs: equivalent "
            f"steps = {base} total steps × ({base} s/step ÷ regularizer s/step), both s/step from the regularizer's "
            "source in the cost table; "
            "R-L is linearly interpolated on the run's eval_log.csv (step, rouge-l) curve, capped at its last "
            "evaluation ('capped'), then mean ± sd over seeds. A curve point mid-schedule is not the same as a "
            "shorter run with its own annealed schedule: there the learning rate has not yet decayed, so with a "
            "decaying schedule this table is no equal-time competitor and favours the baseline (whose end point "
            "is annealed). With a constant learning rate after a fixed warm-up (the converged protocol), a run's "
            "first M steps are exactly a complete run of M steps, and its best validation step within them is "
            "the equal-time competitor.", ""] \
        + _table(["regularizer", "equivalent steps", "seeds", "dev R-L", "note"], rows) + [""]


def md_diagnostics(report: dict) -> list[str]:
    names = sorted({k for row in report["rows"] for k in row["diagnostics"]})
    if not names:
        return []
    regs = [row for row in report["rows"] if row["diagnostics"]]
    rows = [[name] + [_pm_small(row["diagnostics"].get(name, (math.nan, math.nan))) for row in regs] for name in names]
    return ["## Diagnostics (kept weights; mean ± sd over seeds)", "",
            "From each run's diagnostics.json (runs[0].measures, at the run's own dropout: dropout_hidden) and, "
            "where present, diagnostics_dropout0.1.json (every checkpoint at hidden and attention dropout 0.1: "
            "like for like; names ending @ dropout 0.1). The nll_corrupt / rouge_l_corrupt probe draws its noise "
            "as random replacement trains; the own-prefix measures (nll_after_own_prefix_k vs "
            "nll_after_gold_prefix_k) use the model's own greedy tokens instead.", ""] \
        + _table(["measure"] + [row["regularizer"] for row in regs], rows) + [""]


def md_grid(report: dict) -> list[str]:
    regs, seeds, status = report["grid"]
    lines = ["## Runs: regularizer × seed", ""]
    lines += _table(["regularizer"] + [f"seed {s}" for s in seeds],
                    [[r] + [status[(r, s)] for s in seeds] for r in regs])
    lines += ["", "ok* = finished but partly usable (see below)."]
    if report["problems"]:
        lines += [""] + _table(["regularizer", "seed", "what", "directory"],
                               [[p.regularizer, p.seed, p.reason, f"`{p.path}`" if p.path else "-"]
                                for p in report["problems"]])
    else:
        lines += ["", "Nothing missing: every run of the grid finished with all its files."]
    return lines + [""]


def md_notes(report: dict) -> list[str]:
    items = report["notes"] + report["warnings"]
    return ["## Notes", ""] + [f"- {_cell(n)}" for n in items] + [""] if items else []


def write_markdown(path: Path, report: dict) -> None:
    sections = (md_header, md_summary, md_scores, md_bootstrap, md_published, md_cost, md_equal_time,
                md_diagnostics, md_grid, md_notes)
    lines = [line for section in sections for line in section(report)]
    path.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- figures


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
        sds = [0.0 if _nan(r["scores"][d][m][1]) else r["scores"][d][m][1] for m in METRIC_NAMES]
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


# --------------------------------------------------------------------------- entry points


def compare(report_dir, split="dev", baseline="baseline", decode="main", n_boot=1000, seed=0, log=print) -> dict:
    """Build the comparison and write comparison.{md,csv,png} and curves.png into report_dir."""
    root = Path(report_dir)
    if not root.is_dir():
        raise CompareError(f"{root}: not a directory")
    report = build_report(root, split, baseline, decode, n_boot, seed)
    write_markdown(root / "comparison.md", report)
    write_csv(root / "comparison.csv", report)
    write_bars(root / "comparison.png", report)
    write_curves(root / "curves.png", report)
    for p in report["problems"]:
        log(f"  {p.regularizer} seed={p.seed}: {p.reason}" + (f" [{p.path}]" if p.path else ""))
    for w in report["warnings"]:
        log(f"  warning: {w}")
    log(f"Wrote {', '.join(str(root / n) for n in OUTPUT_NAMES)}")
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report_dir", help="report directory (runs/<regularizer>_seed<S>/...) or a Hydra multirun")
    ap.add_argument("--split", choices=("dev", "test"), default="dev", help="split of the score tables and Δ")
    ap.add_argument("--baseline", default="baseline", help="regularizer the others are compared with")
    ap.add_argument("--decode", default="main",
                    help="decoding of comparison.png: main or a trainer.final_decodes name (beam16)")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's random generator")
    args = ap.parse_args(argv)
    if args.n_boot < 1:
        ap.error("--n-boot must be at least 1")
    try:
        compare(args.report_dir, split=args.split, baseline=args.baseline, decode=args.decode,
                n_boot=args.n_boot, seed=args.seed)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
