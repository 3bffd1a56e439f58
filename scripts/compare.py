"""Compare regularizers across a Hydra multirun sweep.

    python scripts/compare.py MULTIRUN_DIR [--split test|dev] [--baseline baseline]
                              [--n-boot 1000] [--seed 0]

Reads every run directory under MULTIRUN_DIR (any depth; a run is a directory holding
`.hydra/config.yaml` or `metrics.json`) and writes into MULTIRUN_DIR:

- comparison.csv : one row per regularizer: mean and sample sd (ddof=1) over seeds of each
                   metric from metrics.json, training-time ratio to the baseline, and a paired
                   bootstrap of per-example ROUGE-L against the baseline.
- comparison.md  : the same as markdown tables, the bootstrap method, and every missing or
                   failed run.
- comparison.png : grouped bar chart, error bars = sd over seeds.

Runs expected by MULTIRUN_DIR/multirun.yaml (regularizer x seed) but absent, and runs that
never wrote metrics.json, are listed in the outputs rather than dropped.
"""
from __future__ import annotations

import argparse
import csv
import functools
import itertools
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

# `python scripts/compare.py` puts scripts/ (not the repo root) on sys.path; the metric
# must be the exact one training used, so import it from the repo's package.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
from seq2seq_rdrop.metrics import score_pair  # noqa: E402

METRICS = ("rouge-1", "rouge-2", "rouge-l", "bleu")
METRIC_LABELS = {"rouge-1": "ROUGE-1", "rouge-2": "ROUGE-2", "rouge-l": "ROUGE-L", "bleu": "BLEU"}
PREFERRED_ORDER = ("baseline", "random_replace", "grad_penalty", "rdrop")
OUTPUT_NAMES = ("comparison.csv", "comparison.md", "comparison.png")

NO_DIR = "no run directory"
NO_METRICS = "no metrics.json (failed or unfinished)"


class CompareError(RuntimeError):
    """Input that makes the comparison meaningless (e.g. prediction files that do not line up)."""


# --------------------------------------------------------------------------- reading runs


@dataclass
class Run:
    path: Path
    regularizer: str
    seed: int | str | None
    metrics: dict | None  # None: the run never wrote metrics.json


@dataclass
class Problem:
    """A (regularizer, seed) that is missing, failed, or only partly usable."""

    regularizer: str
    seed: int | str | None
    reason: str
    path: Path | None = None


def _norm_seed(value):
    """Seeds come as ints from config.yaml and as strings from override lists; unify them."""
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return str(value).strip()


def _seed_key(seed):
    return (0, seed, "") if isinstance(seed, int) else (1, 0, str(seed))


def _natural_key(path: Path):
    # Hydra numbers jobs 0,1,...,10,11: sort "10" after "9", not after "1".
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts]


def _load_yaml(path: Path):
    # Plain YAML, not OmegaConf: multirun.yaml holds unresolved ${now:...} interpolations.
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _simple_overrides(lines) -> dict[str, str]:
    """`regularizer=rdrop` style job overrides -> {key: value} (leading +/~ dropped)."""
    out = {}
    for line in lines or []:
        key, sep, value = str(line).partition("=")
        if sep:
            out[key.lstrip("+~").strip()] = value.strip()
    return out


def _run_identity(run_dir: Path, config: dict | None, metrics: dict | None):
    """(regularizer, seed) of a run.

    The regularizer is the `regularizer=` override value when there is one (the same names
    multirun.yaml uses, so missing combinations can be matched), else regularizer.name from
    the resolved config, else from metrics.json.
    """
    overrides = {}
    if (run_dir / ".hydra" / "overrides.yaml").is_file():
        overrides = _simple_overrides(_load_yaml(run_dir / ".hydra" / "overrides.yaml"))
    reg, seed = overrides.get("regularizer"), overrides.get("seed")
    for source in (config or {}, metrics or {}):
        r = source.get("regularizer")
        if reg is None and r is not None:
            reg = r.get("name") if isinstance(r, dict) else r
        if seed is None:
            seed = source.get("seed")
    return (str(reg) if reg is not None else "unknown"), _norm_seed(seed)


def discover_runs(root: Path) -> list[Run]:
    """Every run directory under root, at any depth, in Hydra job order."""
    candidates = {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    candidates |= {p.parent for p in root.rglob("metrics.json")}
    runs: list[Run] = []
    accepted: list[Path] = []
    # Shallowest first, so a metrics.json nested inside a run directory (a checkpoint
    # folder, say) is not mistaken for a second run.
    for d in sorted(candidates, key=lambda p: (len(p.parts), _natural_key(p))):
        if any(a in d.parents for a in accepted):
            continue
        accepted.append(d)
        config = _load_yaml(d / ".hydra" / "config.yaml") if (d / ".hydra" / "config.yaml").is_file() else None
        metrics = None
        if (d / "metrics.json").is_file():
            with open(d / "metrics.json", encoding="utf-8") as f:
                metrics = json.load(f)
        reg, seed = _run_identity(d, config, metrics)
        runs.append(Run(path=d, regularizer=reg, seed=seed, metrics=metrics))
    runs.sort(key=lambda r: _natural_key(r.path))
    return runs


def _sweep_values(override_strings, key: str):
    """Values a sweep gives `key` (comma list, range(), choice(), or a single value).

    Returns None when `key` is not overridden or cannot be expanded (e.g. glob(*), whose
    options live in the config directory we do not have).
    """
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides([str(s) for s in override_strings])
        for o in parsed:
            if o.key_or_group != key or o.is_delete():
                continue
            if not o.is_sweep_override():
                return [o.get_value_element_as_str()]
            try:
                return [str(v) for v in o.sweep_string_iterator()]
            except Exception:  # glob() and friends
                return None
        return None
    except ImportError:  # hydra is a dependency, but a bare comma split covers the usual case
        for s in override_strings:
            k, sep, v = str(s).partition("=")
            if sep and k.lstrip("+~").strip() == key:
                return None if "(" in v else [x.strip() for x in v.split(",")]
        return None


def expected_combinations(root: Path, runs: list[Run]):
    """(regularizers, seeds, notes) the sweep should have produced.

    From multirun.yaml's hydra.overrides.task when present; otherwise inferred as
    (regularizers found) x (seeds found), so a seed one regularizer has and another lacks
    still shows up as missing.
    """
    notes = []
    found_regs = sorted({r.regularizer for r in runs})
    found_seeds = sorted({r.seed for r in runs if r.seed is not None}, key=_seed_key)
    path = root / "multirun.yaml"
    if not path.is_file():
        notes.append("No multirun.yaml: expected runs inferred as (regularizers found) x (seeds found).")
        return found_regs, found_seeds, notes
    doc = _load_yaml(path) or {}
    task = ((doc.get("hydra") or {}).get("overrides") or {}).get("task") or []
    regs = _sweep_values(task, "regularizer")
    if regs is None:
        default = doc.get("regularizer")
        default = default.get("name") if isinstance(default, dict) else default
        regs = found_regs or ([str(default)] if default is not None else [])
        notes.append("multirun.yaml does not list the regularizers explicitly; using those found.")
    seeds = _sweep_values(task, "seed")
    if seeds is None:
        seeds = found_seeds or ([doc["seed"]] if doc.get("seed") is not None else [])
        notes.append("multirun.yaml does not list the seeds explicitly; using those found.")
    return [str(r) for r in regs], sorted({_norm_seed(s) for s in seeds}, key=_seed_key), notes


def choose_split(runs: list[Run], requested: str | None) -> tuple[str, str]:
    """Split to compare on, and a sentence saying why."""
    if requested:
        return requested, "requested with --split"
    finished = [r for r in runs if r.metrics is not None]
    with_test = [r for r in finished if isinstance(r.metrics.get("test"), dict)]
    if finished and len(with_test) == len(finished):
        return "test", "every finished run has test scores"
    if with_test:
        return "dev", (
            f"only {len(with_test)} of {len(finished)} finished runs have test scores; "
            "pass --split test to use those"
        )
    return "dev", "no finished run has test scores"


def order_regularizers(names) -> list[str]:
    names = set(names)
    return [n for n in PREFERRED_ORDER if n in names] + sorted(names - set(PREFERRED_ORDER))


# --------------------------------------------------------------------------- predictions


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


@functools.lru_cache(maxsize=None)
def _rouge_l(reference: str, prediction: str) -> float:
    # Runs of one sweep repeat many (reference, prediction) pairs; score each once.
    return score_pair(reference, prediction)["rouge-l"]


def per_example_rouge_l(path: Path) -> tuple[list[str], np.ndarray]:
    refs, preds = read_predictions(path)
    return refs, np.array([_rouge_l(r, p) for r, p in zip(refs, preds)], dtype=float)


# --------------------------------------------------------------------------- statistics


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample sd (ddof=1); sd is NaN with fewer than 2 seeds, mean NaN with none."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), (float(a.std(ddof=1)) if a.size > 1 else math.nan)


def paired_bootstrap(d: np.ndarray, n_boot: int, seed: int) -> dict:
    """Resample examples of the paired differences d; statistic = mean(d).

    p = min(1, 2 * min(frac(boot <= 0), frac(boot >= 0))): twice the smaller share of
    bootstrap means on either side of 0 (the percentile interval inverted), so p < 0.05
    goes with a 95% interval that excludes 0. Its resolution is 1 / n_boot.
    """
    d = np.asarray(d, dtype=float)
    n = d.size
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(n, 1))  # bound memory: chunk x n indices at a time
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        boot[start : start + k] = d[rng.integers(0, n, size=(k, n))].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    p = min(1.0, 2.0 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0))))
    return {"delta": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi), "p_value": p}


def bootstrap_against_baseline(reg, baseline, runs_by_key, split, n_boot, seed, warnings, checked) -> dict:
    """Paired bootstrap of per-example ROUGE-L, regularizer minus baseline (see METHOD_TEXT)."""
    pred_name = f"predictions_{split}.tsv"

    def usable_seeds(name):
        return {
            s for (r, s), run in runs_by_key.items()
            if r == name and run.metrics is not None and (run.path / pred_name).is_file()
        }

    shared = sorted(usable_seeds(reg) & usable_seeds(baseline), key=_seed_key)
    out = {"seeds": shared, "n_examples": math.nan, "delta": math.nan, "ci_low": math.nan,
           "ci_high": math.nan, "p_value": math.nan, "note": ""}
    if not shared:
        out["note"] = f"no seed with {pred_name} for both {reg} and {baseline}: no bootstrap"
        return out
    diffs = []
    for s in shared:
        r_run, b_run = runs_by_key[(reg, s)], runs_by_key[(baseline, s)]
        r_refs, r_scores = per_example_rouge_l(r_run.path / pred_name)
        b_refs, b_scores = per_example_rouge_l(b_run.path / pred_name)
        if len(r_refs) != len(b_refs):
            raise CompareError(
                f"seed {s}: {r_run.path / pred_name} has {len(r_refs)} lines but "
                f"{b_run.path / pred_name} has {len(b_refs)}; a paired comparison needs the same examples"
            )
        if r_refs != b_refs:
            i = next(i for i, (a, b) in enumerate(zip(r_refs, b_refs)) if a != b)
            raise CompareError(
                f"seed {s}: references differ at line {i + 1} between {r_run.path / pred_name} and "
                f"{b_run.path / pred_name}; a paired comparison needs the same examples in the same order"
            )
        for run, scores in ((r_run, r_scores), (b_run, b_scores)):
            _check_against_metrics(run, split, scores, warnings, checked)
        diffs.append(r_scores - b_scores)
    if len({len(x) for x in diffs}) > 1:
        raise CompareError(f"{reg}: prediction files of different seeds have different lengths")
    d = np.mean(diffs, axis=0)  # average seeds per example first, then resample examples
    out["n_examples"] = int(d.size)
    if d.size == 0:
        out["note"] = f"{pred_name} files are empty: no bootstrap"
        return out
    out.update(paired_bootstrap(d, n_boot, seed))
    out["note"] = f"{len(shared)} shared seed(s)"
    return out


def _check_against_metrics(run: Run, split, scores: np.ndarray, warnings: list[str], checked: set):
    """Warn (once per run) when the predictions file disagrees with the run's own metrics.json."""
    if run.path in checked:
        return
    checked.add(run.path)
    m = run.metrics.get(split) if run.metrics else None
    if not isinstance(m, dict):
        return
    if m.get("n") is not None and int(m["n"]) != scores.size:
        warnings.append(f"{run.path}: predictions_{split}.tsv has {scores.size} lines, metrics.json says n={m['n']}")
    if m.get("rouge-l") is not None and scores.size and abs(float(m["rouge-l"]) - float(scores.mean())) > 0.05:
        warnings.append(
            f"{run.path}: ROUGE-L recomputed from predictions_{split}.tsv is {scores.mean():.2f}, "
            f"metrics.json says {float(m['rouge-l']):.2f}"
        )


# --------------------------------------------------------------------------- main logic


def method_text(split: str, baseline: str, n_boot: int, seed: int) -> str:
    return (
        f"Paired bootstrap on per-example ROUGE-L (character level, recomputed from each run's "
        f"predictions_{split}.tsv with seq2seq_rdrop.metrics.score_pair). Seeds are pooled by averaging "
        f"them per example: for a regularizer R, d_i = mean over the seeds run for both R and "
        f"{baseline} of (ROUGE-L of R on example i - ROUGE-L of {baseline} on example i). Then examples "
        f"(not seeds) are resampled with replacement {n_boot} times (numpy default_rng({seed}), restarted "
        f"for each regularizer), and the statistic is mean(d). Delta is mean(d) on all examples; the 95% "
        f"interval is the 2.5th-97.5th percentile of the bootstrap means; the two-sided p-value is "
        f"min(1, 2 * min(share of bootstrap means <= 0, share >= 0)), so its resolution is 1/{n_boot} and "
        f"p = 0 means no resample reached 0. Only seeds shared with {baseline} enter, so Delta can differ "
        f"from the difference of the mean columns when seeds are missing. The interval reflects variation "
        f"over examples only; variation between training seeds is what the sd columns show."
    )


def compare(runs_dir, split=None, baseline="baseline", n_boot=1000, seed=0, log=print) -> dict:
    """Build the comparison and write comparison.{csv,md,png} into runs_dir."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise CompareError(f"{root}: not a directory")
    runs = discover_runs(root)
    exp_regs, exp_seeds, notes = expected_combinations(root, runs)
    split, split_reason = choose_split(runs, split)
    log(f"Using split '{split}' ({split_reason}).")

    problems: list[Problem] = []
    runs_by_key: dict[tuple, Run] = {}
    for run in runs:
        key = (run.regularizer, run.seed)
        if run.metrics is None:
            problems.append(Problem(run.regularizer, run.seed, NO_METRICS, run.path))
            continue
        if key in runs_by_key:
            raise CompareError(
                f"two finished runs for regularizer={run.regularizer} seed={run.seed}: "
                f"{runs_by_key[key].path} and {run.path} (was something else swept too? compare them separately)"
            )
        runs_by_key[key] = run
        if not isinstance(run.metrics.get(split), dict):
            problems.append(Problem(run.regularizer, run.seed,
                                    f"metrics.json has no '{split}' scores (left out)", run.path))
        elif not (run.path / f"predictions_{split}.tsv").is_file():
            problems.append(Problem(run.regularizer, run.seed,
                                    f"no predictions_{split}.tsv (left out of the bootstrap only)", run.path))
    present = {(r.regularizer, r.seed) for r in runs}
    for reg, s in itertools.product(exp_regs, exp_seeds):
        if (reg, s) not in present:
            problems.append(Problem(reg, s, NO_DIR))
    regs = order_regularizers({r.regularizer for r in runs} | set(exp_regs))
    problems.sort(key=lambda p: (regs.index(p.regularizer), _seed_key(p.seed) if p.seed is not None else (2, 0, "")))
    scored = {k: r for k, r in runs_by_key.items() if isinstance(r.metrics.get(split), dict)}

    def train_seconds(name):
        vals = [r.metrics.get("train_seconds") for (n, _), r in runs_by_key.items() if n == name]
        vals = [float(v) for v in vals if v is not None]
        return float(np.mean(vals)) if vals else math.nan

    base_time = train_seconds(baseline)
    warnings: list[str] = []
    checked: set = set()
    rows = []
    for reg in regs:
        seeds = sorted((s for (n, s) in scored if n == reg), key=_seed_key)
        row = {"regularizer": reg, "n_seeds": len(seeds), "seeds": seeds}
        for m in METRICS:
            vals = [float(scored[(reg, s)].metrics[split][m]) for s in seeds
                    if scored[(reg, s)].metrics[split].get(m) is not None]
            row[f"{m}_mean"], row[f"{m}_sd"] = mean_sd(vals)
        t = train_seconds(reg)
        row["train_time_ratio"] = t / base_time if base_time and not math.isnan(base_time) else math.nan
        row["missing_or_failed"] = "; ".join(f"seed {p.seed}: {p.reason}" for p in problems if p.regularizer == reg)
        if reg == baseline:
            row.update(delta=math.nan, ci_low=math.nan, ci_high=math.nan, p_value=math.nan,
                       boot_seeds=[], n_examples=math.nan, note="baseline")
        else:
            b = bootstrap_against_baseline(reg, baseline, runs_by_key, split, n_boot, seed, warnings, checked)
            row.update(delta=b["delta"], ci_low=b["ci_low"], ci_high=b["ci_high"], p_value=b["p_value"],
                       boot_seeds=b["seeds"], n_examples=b["n_examples"], note=b["note"])
        rows.append(row)
    if baseline not in regs:
        notes.append(f"Baseline '{baseline}' has no runs: no time ratio and no bootstrap.")

    result = {"runs_dir": root, "split": split, "split_reason": split_reason, "baseline": baseline,
              "n_boot": n_boot, "seed": seed, "rows": rows, "problems": problems,
              "notes": notes, "warnings": warnings}
    write_csv(root / "comparison.csv", result)
    write_markdown(root / "comparison.md", result)
    write_plot(root / "comparison.png", result)
    for p in problems:
        log(f"  {p.regularizer} seed={p.seed}: {p.reason}" + (f" [{p.path}]" if p.path else ""))
    for w in warnings:
        log(f"  warning: {w}")
    log(f"Wrote {', '.join(str(root / n) for n in OUTPUT_NAMES)}")
    return result


# --------------------------------------------------------------------------- outputs

CSV_COLUMNS = (
    ["regularizer", "n_seeds"]
    + [f"{m}_{s}" for m in METRICS for s in ("mean", "sd")]
    + ["train_time_ratio", "delta_rouge-l", "ci_low", "ci_high", "p_value",
       "bootstrap_seeds", "n_examples", "bootstrap_note", "missing_or_failed", "split"]
)


def _csv_value(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""  # empty cell: not computable (1 seed, no baseline, baseline row, ...)
    return repr(x) if isinstance(x, float) else str(x)


def write_csv(path: Path, result: dict):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in result["rows"]:
            values = dict(r, **{"delta_rouge-l": r["delta"], "bootstrap_note": r["note"],
                                "bootstrap_seeds": ";".join(str(s) for s in r["boot_seeds"]),
                                "split": result["split"]})
            w.writerow([_csv_value(values[c]) for c in CSV_COLUMNS])


def _fmt(x, spec=".2f", empty="n/a"):
    return empty if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|")


def write_markdown(path: Path, result: dict):
    split, baseline, n_boot = result["split"], result["baseline"], result["n_boot"]
    lines = [
        "# Regularizer comparison",
        "",
        f"- Runs directory: `{result['runs_dir'].resolve()}`",
        f"- Split: **{split}** ({result['split_reason']})",
        f"- Baseline: `{baseline}`",
        "",
        f"## Scores on {split} (mean ± sd over seeds, sd with ddof=1)",
        "",
        "| regularizer | seeds | " + " | ".join(METRIC_LABELS[m] for m in METRICS) + f" | train time / {baseline} |",
        "|---|---|" + "---|" * len(METRICS) + "---|",
    ]
    for r in result["rows"]:
        seeds = f"{r['n_seeds']} ({', '.join(map(str, r['seeds']))})" if r["seeds"] else "0"
        cells = [f"{_fmt(r[f'{m}_mean'])} ± {_fmt(r[f'{m}_sd'])}" if r["n_seeds"] else "n/a" for m in METRICS]
        ratio = _fmt(r["train_time_ratio"])
        lines.append(f"| {_md_cell(r['regularizer'])} | {seeds} | " + " | ".join(cells)
                     + f" | {ratio + '×' if ratio != 'n/a' else ratio} |")
    lines += [
        "",
        "sd is n/a with a single seed. Train time is mean train_seconds of the regularizer over mean "
        f"train_seconds of {baseline}.",
        "",
        f"## Paired bootstrap of ROUGE-L against {baseline}",
        "",
        method_text(split, baseline, n_boot, result["seed"]),
        "",
        "| regularizer | shared seeds | examples | ΔROUGE-L | 95% CI | p | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        if r["regularizer"] == baseline:
            continue
        p = r["p_value"]
        p_text = "n/a" if math.isnan(p) else (f"< {1 / n_boot:.2g}" if p == 0 else f"{p:.3f}")
        ci = "n/a" if math.isnan(r["ci_low"]) else f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        lines.append(
            f"| {_md_cell(r['regularizer'])} | {', '.join(map(str, r['boot_seeds'])) or 'none'} | "
            f"{_fmt(r['n_examples'], 'd')} | {_fmt(r['delta'], '+.2f')} | {ci} | {p_text} | {_md_cell(r['note'])} |"
        )
    lines += ["", "## Missing or failed runs", ""]
    if result["problems"]:
        lines += ["| regularizer | seed | reason | directory |", "|---|---|---|---|"]
        for p in result["problems"]:
            lines.append(f"| {_md_cell(p.regularizer)} | {p.seed} | {p.reason} | "
                         f"{'`' + str(p.path) + '`' if p.path else '-'} |")
    else:
        lines.append("None: every expected run finished.")
    if result["notes"] or result["warnings"]:
        lines += ["", "## Notes", ""] + [f"- {_md_cell(n)}" for n in result["notes"] + result["warnings"]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_plot(path: Path, result: dict):
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on training machines
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["n_seeds"]]
    fig, ax = plt.subplots(figsize=(max(8, 2.2 + 1.6 * len(METRICS) + 0.4 * len(rows)), 4))
    if rows:
        x = np.arange(len(METRICS))
        width = 0.8 / len(rows)
        for i, r in enumerate(rows):
            means = [r[f"{m}_mean"] for m in METRICS]
            sds = [0 if math.isnan(r[f"{m}_sd"]) else r[f"{m}_sd"] for m in METRICS]  # 1 seed: no bar
            ax.bar(x + (i - (len(rows) - 1) / 2) * width, means, width, yerr=sds, capsize=3,
                   label=f"{r['regularizer']} (n={r['n_seeds']})")
        ax.set_xticks(x, [METRIC_LABELS[m] for m in METRICS])
        # Outside the axes, so it never hides a bar.
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("score (×100)")
    ax.set_title(f"{result['split']} split: mean ± sd over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs_dir", help="Hydra multirun directory (holds multirun.yaml and 0/, 1/, ...)")
    ap.add_argument("--split", choices=("test", "dev"), default=None,
                    help="default: test if every finished run has test scores, else dev")
    ap.add_argument("--baseline", default="baseline", help="regularizer the others are compared with")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's random generator")
    args = ap.parse_args(argv)
    if args.n_boot < 1:
        ap.error("--n-boot must be at least 1")
    try:
        compare(args.runs_dir, split=args.split, baseline=args.baseline, n_boot=args.n_boot, seed=args.seed)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
