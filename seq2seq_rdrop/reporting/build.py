"""The report as one dict: every number and label the markdown, CSV and figures show, built from a report
directory's runs."""
from __future__ import annotations

import json
from pathlib import Path

from ..metrics import METRIC_NAMES, WORD_METRIC_NAMES
from ..regularizer_names import order_regularizers
from .cost import cost_rows, equal_time_row, minutes_per_run, steps_trained
from .curves import eval_curve
from .paired import bootstrap_against_baseline, holm_over_family, holm_over_report, pairwise_contrasts
from .problems import consistency_warnings, find_problems, grid_status
from .published import published_row
from .runs import (FINAL, FROM_EVAL_LOG, CompareError, Run, decodings_of, diagnostic_measures, discover_runs,
                   expected_grid, load_bench, load_cost_sources, load_notes, load_protocol, relative, seed_key, split_scores)
from .statistics import mean_sd


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


def score_summary(runs: list[Run], split: str, decode: str) -> dict:
    """{metric: (mean, sd)} over the runs that have this split and decoding, plus "n" and "seeds"."""
    have = [r for r in runs if split_scores(r.metrics, split, decode) is not None]
    out = {m: mean_sd([float(split_scores(r.metrics, split, decode)[m]) for r in have]) for m in METRIC_NAMES}
    return {**out, "n": len(have), "seeds": [r.seed for r in have]}


def word_score_summary(runs: list[Run], split: str, decode: str) -> dict | None:
    """{word metric: (mean, sd)} over the runs whose metrics.json recorded word-level ROUGE (metrics
    ["word_rouge"], secondary) for this split and decoding, plus "seeds"; None when none did (older runs)."""
    have = [(r, ((r.metrics.get("word_rouge") or {}).get(split) or {}).get(decode)) for r in runs]
    have = [(r, scores) for r, scores in have if isinstance(scores, dict)]
    if not have:
        return None
    return {**{m: mean_sd([float(scores[m]) for _, scores in have]) for m in WORD_METRIC_NAMES},
            "seeds": [r.seed for r, _ in have]}


def diagnostics_summary(runs: list[Run]) -> tuple[dict[str, tuple[float, float]], list]:
    """({measure: (mean, sd) over the seeds that have it}, the seeds that have any), each run's files read once."""
    per_run = [diagnostic_measures(r) for r in runs]
    names = sorted({k for m in per_run for k in m})
    summary = {k: mean_sd([m[k] for m in per_run if k in m]) for k in names}
    return summary, [r.seed for r, m in zip(runs, per_run) if m]


def regularizer_row(reg, runs_of, scored, ctx) -> dict:
    """Everything the tables say about one regularizer."""
    runs, cost = runs_of(reg), ctx["cost"][reg]
    diagnostics, diagnostics_seeds = diagnostics_summary(runs)
    return {
        "regularizer": reg,
        "seeds": [r.seed for r in runs],
        "scores": {d: score_summary(runs, ctx["split"], d) for d in ctx["decodes"]},
        "word_scores": {d: word_score_summary(runs, ctx["split"], d) for d in ctx["decodes"]},
        "boot": {d: bootstrap_against_baseline(reg, ctx["baseline"], scored, ctx["split"], d,
                                               ctx["n_boot"], ctx["seed"]) for d in ctx["decodes"]},
        "cost": cost,
        "equal_time": equal_time_row(runs, runs_of(ctx["baseline"]), cost["sps"], cost["base_sps"],
                                     best_so_far=ctx["curve_split"] == "val"),
        "diagnostics": diagnostics, "diagnostics_seeds": diagnostics_seeds,
        "published": published_row(reg),
    }


def declared_contrasts(protocol: dict, scored: dict, split: str, decodes: list[str], n_boot: int, seed: int) -> dict:
    """{decode: pairwise contrasts among the declared family and its reference row} for the primary endpoint's
    decoding and each secondary one that the runs have."""
    names = [*protocol["family"], protocol["reference_row"]]
    wanted = [protocol["primary_endpoint"]["decode"], *(e["decode"] for e in protocol["secondary_endpoints"])]
    return {d: pairwise_contrasts(scored, names, split, d, n_boot, seed) for d in dict.fromkeys(wanted) if d in decodes}


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


def finished_runs(runs: list[Run], root: Path) -> dict[tuple, Run]:
    """{(regularizer, seed): run} of the runs with metrics; two for one pair is an error."""
    scored: dict[tuple, Run] = {}
    for run in (r for r in runs if r.metrics is not None):
        key = (run.regularizer, run.seed)
        if key in scored:
            raise CompareError(f"two finished runs for regularizer={run.regularizer} seed={run.seed}: "
                               f"{relative(scored[key].path, root)} and {relative(run.path, root)}")
        scored[key] = run
    return scored


def build_report(root: Path, split: str, baseline: str, decode: str, n_boot: int, seed: int) -> dict:
    """The report of the runs under root: one row per regularizer (scores, Δ against baseline with n_boot
    resamples from `seed`, cost, equal time, diagnostics, published row), the curves, the grid and its problems.
    `decode` is the decoding of comparison.png; one no run has is an error."""
    runs = discover_runs(root)
    if not runs:  # a report of nothing would replace one of something
        raise CompareError(f"{root}: no run files (runs/<regularizer>_seed<S>/, or run directories with metrics.json "
                           "or .hydra/config.yaml); nothing written")
    scored = finished_runs(runs, root)
    if not scored:
        raise CompareError(f"{root}: none of its {len(runs)} run directories has finished (no metrics.json); "
                           "nothing written")
    exp_regs, exp_seeds, notes = expected_grid(root, runs)
    regs = order_regularizers({r for r, _ in scored} | set(exp_regs))
    finished = [scored[k] for k in sorted(scored, key=lambda k: (regs.index(k[0]), seed_key(k[1])))]
    decodes = ["main"] + sorted({d for r in finished for d in decodings_of(r.metrics)
                                 if split_scores(r.metrics, split, d) is not None})
    if decode not in decodes:
        raise CompareError(f"--decode {decode}: no run has {split} scores for it (found: {', '.join(decodes)})")

    def runs_of(name):
        return [r for r in finished if r.regularizer == name]

    bench = load_bench(root)
    ctx = {"split": split, "baseline": baseline, "decodes": decodes, "n_boot": n_boot, "seed": seed,
           "cost": cost_rows(regs, runs_of, baseline, bench),
           # the split of the eval_log curves: the validation split when the runs chose their step on one
           "curve_split": "val" if any(r.metrics.get("selected_on") == "val" for r in finished) else "dev"}
    problems = find_problems(runs, scored, exp_regs, exp_seeds, split, root)
    if baseline not in {r for r, _ in scored}:
        notes.append(f"Baseline '{baseline}' has no finished run: no Δ, time ratio or equal-time point.")
    rows = [regularizer_row(reg, runs_of, scored, ctx) for reg in regs]
    protocol = load_protocol(root)
    return {
        **ctx, "root": root, "plot_decode": decode, "bench": bench, "notes_md": load_notes(root),
        "hardware_cost": load_cost_sources(root),
        "methods": sorted({r.metrics.get("regularizer", {}).get("name", r.regularizer) for r in finished}),
        "labels": {d: decode_label(d, finished) for d in decodes},
        "rows": rows, "protocol": protocol,
        "n_comparisons": (holm_over_family(rows, protocol["family"], protocol["primary_endpoint"]["decode"])
                          if protocol else holm_over_report(rows, decodes)),
        "contrasts": declared_contrasts(protocol, scored, split, decodes, n_boot, seed) if protocol else {},
        "capped": [(r.regularizer, r.seed) for r in finished if r.metrics.get("steps") == r.metrics.get("total_steps")
                   and r.metrics.get("kept_step") == r.metrics.get("steps")],
        "curves": {reg: [c for c in (eval_curve(r) for r in runs_of(reg)) if c is not None] for reg in regs},
        "minutes": {reg: minutes_per_run(runs_of(reg), ctx["cost"][reg]) for reg in regs},
        "grid": (exp_regs, exp_seeds, grid_status(exp_regs, exp_seeds, problems)),
        "problems": problems, "notes": notes, "setup": setup_facts(finished),
        "warnings": consistency_warnings(scored, split, decodes, root),
        "n_runs": (len(finished), len(runs), sum(bool(r.metrics.get(FROM_EVAL_LOG)) for r in finished)),
    }
