"""Δ ROUGE-L against the baseline: the per-example differences of the seeds both have, their bootstraps, and
Holm's adjustment over every comparison of a report."""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np

from .runs import CompareError, example_scores, seed_key
from .statistics import hierarchical_bootstrap, holm, is_missing, paired_bootstrap


def paired_differences(reg: str, baseline: str, scored: dict, split: str, decode: str):
    """(paired seeds, (seeds, examples) array of per-example ROUGE-L differences reg - baseline)."""
    def usable(name):
        return {s for (r, s), run in scored.items() if r == name and decode in example_scores(run, split)}

    seeds = sorted(usable(reg) & usable(baseline), key=seed_key)
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


def holm_over_family(rows: list[dict], family: list[str], decode: str) -> int:
    """Holm-adjusted p of a declared family alone (conf/protocol/*.yaml: each of `family` against the baseline at
    the primary endpoint's decoding), written into those boots' p_holm; every other p_holm stays unset."""
    boots = [row["boot"][decode] for row in rows if row["regularizer"] in family and decode in row["boot"]
             and not is_missing(row["boot"][decode]["p_value"])]
    for boot, adjusted in zip(boots, holm([b["p_value"] for b in boots])):
        boot["p_holm"] = adjusted
    return len(boots)


def holm_over_report(rows: list[dict], decodes: list[str]) -> int:
    """Holm-adjusted p of every comparison in the report (each regularizer against the baseline, each
    decoding), written into its boot's p_holm; returns the number of comparisons adjusted for."""
    boots = [row["boot"][d] for row in rows for d in decodes if not is_missing(row["boot"][d]["p_value"])]
    for boot, adjusted in zip(boots, holm([b["p_value"] for b in boots])):
        boot["p_holm"] = adjusted
    return len(boots)


def pairwise_contrasts(scored: dict, names: list[str], split: str, decode: str, n_boot: int, seed: int) -> list[dict]:
    """One dict per pair of `names` (in their order, A before B): a, b, seeds, delta, ci_low, ci_high, p_value
    (the two-sided bootstrap p of Δ = 0), per_seed."""
    out = []
    for a, b in combinations(names, 2):
        seeds, diffs = paired_differences(a, b, scored, split, decode)
        if diffs is None or diffs.shape[1] == 0:
            continue
        boot = hierarchical_bootstrap(diffs, n_boot, seed)
        out.append({"a": a, "b": b, "seeds": seeds, **boot, "per_seed": [float(d) for d in diffs.mean(axis=1)]})
    return out
