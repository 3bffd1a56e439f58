"""What a report says is wrong with its runs: (regularizer, seed) pairs missing, unfinished or only partly
usable, the grid's status cells, and per-example scores that disagree with their run's metrics.json."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from ..regularizer_names import order_regularizers
from .curves import eval_curve
from .runs import FROM_EVAL_LOG, example_scores, relative, seed_key, split_scores

MISSING = "missing (no run directory)"
UNFINISHED = "unfinished (no metrics.json)"
CUT_OFF = ("final evaluation cut off: dev scores of the final weights from eval_log.csv (main decoding, "
           "2 decimals); no per-example scores (left out of the bootstrap), no other decodings")


@dataclass
class Problem:
    """A (regularizer, seed) that is missing, unfinished, or only partly usable."""

    regularizer: str
    seed: int | str | None
    reason: str
    path: str | None = None  # relative to REPORT_DIR


def find_problems(runs, scored, exp_regs, exp_seeds, split, root: Path) -> list[Problem]:
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
    return sorted(problems, key=lambda p: (order.index(p.regularizer), seed_key(p.seed), p.reason))


def grid_status(regs, seeds, problems) -> dict:
    """{(regularizer, seed): 'ok' | 'ok*' (partly usable, see the list) | 'missing' | 'unfinished'}."""
    status = {(reg, s): "ok" for reg in regs for s in seeds}
    for p in problems:
        key = (p.regularizer, p.seed)
        status[key] = {MISSING: "missing", UNFINISHED: "unfinished"}.get(p.reason, "ok*")
    return status


def consistency_warnings(scored, split, decodes, root: Path) -> list[str]:
    """Per-example scores whose mean or count disagrees with the run's own metrics.json."""
    warnings = []
    for (reg, seed), run in sorted(scored.items(), key=lambda kv: (kv[0][0], seed_key(kv[0][1]))):
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
