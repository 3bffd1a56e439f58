"""Re-ranking an abstract's n-best titles with a weighted sum of features (decode.rerank).

Beam search ranks its finished titles by the model's length-normalised log-probability alone, yet the title
closest to the reference is often further down the list: among beam 16's candidates the best one scores dev
ROUGE-L about 12 points above the top one. decode.rerank={lp:0.34,len:0.54,rule:1,...} re-orders the n-best
by sum_f w_f * z_f, where z_f is feature f standardised within the abstract's list (so weights carry over
between models and lists of another length). The features of a candidate title t of abstract a:

- lp: the search's own score (sum log p / length ** length_penalty)   - logp: sum log p
- len: characters of t                                        - span: longest substring of a in t / len(t)
- mbr: expected ROUGE-L F1 of t against the other candidates, weighted by softmax(sum log p / 3)
  (minimum Bayes risk: what the list agrees on)
- rule: ROUGE-L F1 of t against the one-line rule's title of a (metrics.rule_title: the clause after a verb
  of proposing), a prior on where in the abstract a title comes from.
- sel: expected ROUGE-L F1 of t against the content selector's most likely spans of a (selector.py: a learned
  model of where the title comes from, over the whole abstract), weighted by their probabilities; 0 (so no
  effect) when no selector's spans are given.

Among the re-ordered candidates, those with an unbalanced bracket or copied boilerplate (正文, 摘要, ...) go
last. The flag shape (decode.rerank={...,shape:1}; not a feature, its value only switches it on) puts next-to-last
those that are not word-shaped (title_form: a Latin word cut short, starting or ending inside a jieba word of the
abstract, a repeated word piece). scripts/tune_rerank.py chooses the weights on a validation split. Torch-free (decode_options checks the option
with parse_weights before torch is loaded).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Sequence

from .errors import ConfigError
from .metrics import BOILERPLATE, balanced, rouge_l, rule_title

FEATURES = ("lp", "logp", "len", "mbr", "rule", "span", "sel")
FLAGS = ("shape",)  # ordering switches that share decode.rerank's mapping: > 0 = on (not weights of a feature)
NO_RERANK = "none"
# Named weight sets (decode.rerank=NAME), each chosen on a validation split that no checkpoint trained on. A name,
# not a mapping, is the configs' default because Hydra merges a mapping given over a mapping key by key: a
# {lp: 1} given over these would keep their other weights; given over a name it replaces it whole.
WEIGHT_SETS = {
    # with a content selector's spans as candidates, no rule feature (the default; conf/decode/beam.yaml):
    # docs/experiments/2026-12-07_quality_selector.md, kept for train.py by docs/experiments/2026-12-08_quality_preset_selector.md
    "selector": {"lp": 0.147, "logp": 0.156, "len": 0.35, "mbr": 1.0, "span": 0.868, "sel": 0.874},
    # the weights of 2026-12-03, closeness to the one-line rule's title included: docs/experiments/2026-12-03_rerank.md
    "rule": {"lp": 0.166, "logp": 0.0791, "len": 1.0, "mbr": 0.721, "rule": 0.799, "span": 0.834},
}
MBR_TEMPERATURE = 3.0  # softmax(sum log p / T) weighs the other candidates in the mbr feature
# bounded()'s settings for the features() computed in its block (a server's decode thread); none outside one
_BOUNDS: ContextVar[tuple[Callable[[], None] | None, int | None]] = ContextVar("rerank_bounds", default=(None, None))


@contextmanager
def bounded(check: Callable[[], None] | None = None, mbr_evidence: int | None = None):
    """Within the block (this thread or task only), features() calls `check` before each candidate (it raises to
    stop: serve.py's time budget) and the mbr feature weighs only the `mbr_evidence` most likely other
    candidates (its cost: candidates x mbr_evidence instead of candidates squared). With at most mbr_evidence
    candidates the features are those computed without it, bit for bit."""
    token = _BOUNDS.set((check, mbr_evidence))
    try:
        yield
    finally:
        _BOUNDS.reset(token)


def parse_weights(value, option: str = "decode.rerank") -> dict[str, float]:
    """{feature: weight} of a decode.rerank value: a mapping such as {rule: 1, lp: 0.3}, the name of one of
    WEIGHT_SETS, or none / null ({}); ConfigError (one line) otherwise."""
    if value is None or value == NO_RERANK:
        return {}
    if isinstance(value, str) and value in WEIGHT_SETS:
        return dict(WEIGHT_SETS[value])
    if not isinstance(value, Mapping):
        raise ConfigError(f"{option}={value!r}: allowed values are {NO_RERANK}, {', '.join(WEIGHT_SETS)} (named weight "
                          f"sets) or a mapping of features to weights, e.g. {option}={{rule:1,lp:0.3}} (features: "
                          f"{', '.join(FEATURES)})")
    weights = {}
    for name, weight in value.items():
        if name not in FEATURES + FLAGS:
            raise ConfigError(f"{option}: {name!r} is not a feature; allowed features are {', '.join(FEATURES)} "
                              f"(and the flag {', '.join(FLAGS)})")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ConfigError(f"{option}.{name}={weight!r}: a finite number is required")
        weights[name] = float(weight)
    return weights


def format_weights(weights: dict[str, float]) -> str:
    """`weights` as a command-line value of decode.rerank ({rule:1,lp:0.3}; features in FEATURES' order, zero
    weights left out; none without any)."""
    parts = [f"{name}:{weights[name]:.3g}" for name in FEATURES + FLAGS if weights.get(name)]
    return "{" + ",".join(parts) + "}" if parts else NO_RERANK


def features(titles: Sequence[str], scores: Sequence[float], log_probs: Sequence[float],
             abstract: str, selected: Sequence[tuple[str, float]] = ()) -> list[list[float]]:
    """Each candidate's FEATURES, standardised within the list (zero mean, unit spread; a constant feature
    is all zeros). titles: as decoded (lower-cased); scores and log_probs: the search's (decoding.Hypothesis);
    selected: the selector's (span, probability) pairs of the abstract (Selector.spans), for the sel feature."""
    check, mbr_evidence = _BOUNDS.get()
    source, rule = abstract.lower(), rule_title(abstract).lower()
    top = max(log_probs)
    prior = [math.exp((lp - top) / MBR_TEMPERATURE) for lp in log_probs]
    evidence = range(len(titles))
    if mbr_evidence is not None and len(titles) > mbr_evidence:  # the most likely, in the list's order
        evidence = sorted(sorted(evidence, key=lambda j: -log_probs[j])[:mbr_evidence])
    similarity: dict[tuple[int, int], float] = {}  # ROUGE-L F1 is symmetric: each pair is scored once
    rows = []
    for i, (title, score, lp) in enumerate(zip(titles, scores, log_probs)):
        if check is not None:
            check()
        others = [j for j in evidence if j != i]
        weight = sum(prior[j] for j in others)
        mbr = sum(prior[j] * _pair(similarity, titles, j, i) for j in others) / weight if others else 0.0
        sel = sum(p * rouge_l(span.lower(), title) for span, p in selected)
        rows.append([score, lp, len(title), mbr, rouge_l(rule, title),
                     longest_shared_span(title, source) / max(len(title), 1), sel])
    return [list(z) for z in zip(*(_standardised(column) for column in zip(*rows)))]


def _pair(similarity: dict, titles: Sequence[str], j: int, i: int) -> float:
    """rouge_l(titles[j], titles[i]), computed once per pair: F1's precision and recall swap with the order,
    and 2 * p * r / (p + r) is the same float either way."""
    key = (j, i) if j < i else (i, j)
    if key not in similarity:
        similarity[key] = rouge_l(titles[j], titles[i])
    return similarity[key]


def _standardised(values: Sequence[float]) -> list[float]:
    mean = sum(values) / len(values)
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / (spread + 1e-6) for v in values]


def longest_shared_span(title: str, source: str) -> int:
    """Length of the longest substring of `title` that occurs in `source`."""
    best = 0
    for start in range(len(title)):
        end = start + best + 1
        while end <= len(title) and title[start:end] in source:
            best, end = end - start, end + 1
    return best


def rerank_order(weights: dict[str, float], titles: Sequence[str], scores: Sequence[float],
                 log_probs: Sequence[float], abstract: str, selected: Sequence[tuple[str, float]] = ()) -> list[int]:
    """Candidate indices, best first by the weighted features, well-formed titles (well_formed) before the
    others; ties keep the given order. selected: as features()."""
    if not weights or len(titles) < 2:
        return list(range(len(titles)))
    return order_of(weights, titles, features(titles, scores, log_probs, abstract, selected), abstract)


def order_of(weights: dict[str, float], titles: Sequence[str], rows: Sequence[Sequence[float]],
             abstract: str | None = None) -> list[int]:
    """rerank_order from the candidates' features() rows, when they are at hand already (the shape flag needs
    the abstract; without it the flag is off)."""
    w = [weights.get(name, 0.0) for name in FEATURES]
    total = [sum(a * b for a, b in zip(w, row)) for row in rows]
    shaped = ([word_shaped(t, abstract) for t in titles] if weights.get("shape", 0) > 0 and abstract is not None
              else [True] * len(titles))
    return sorted(range(len(titles)), key=lambda i: (not well_formed(titles[i]), not shaped[i], -total[i]))


def word_shaped(title: str, abstract: str) -> bool:
    """No Latin word cut short, no start or end inside a jieba word of the abstract, no repeated word piece
    (title_form's checks; jieba is loaded on first use)."""
    from .title_form import ends_inside_word, latin_cut_short, repeated_piece, starts_inside_word

    return not (latin_cut_short(title, abstract) or starts_inside_word(title, abstract)
                or ends_inside_word(title, abstract) or repeated_piece(title, abstract))


def well_formed(title: str) -> bool:
    """No bracket left open or closed alone, no abstract furniture copied (metrics.BOILERPLATE): what the
    features cannot see and a reader does."""
    return balanced(title) and not any(b in title for b in BOILERPLATE)


def tune_weights(candidate_features: Sequence[Sequence[Sequence[float]]], gains: Sequence[Sequence[float]],
                 use: Sequence[str] = FEATURES, trials: int = 2000, seed: int = 0) -> dict[str, float]:
    """Weights of the features `use` that maximise the mean gain (e.g. ROUGE-L against the reference) of
    the picked candidates, by random search: each trial draws fresh weights or perturbs the best so far.
    candidate_features[k][i]: features(...) of list k's candidate i; gains[k][i]: its gain. Starts from
    the beam's own order (lp alone, or the first feature used when lp is not); the largest weight is 1."""
    import numpy as np

    mask = np.array([name in use for name in FEATURES], dtype=float)
    lists = [(np.asarray(f, dtype=float), np.asarray(g, dtype=float)) for f, g in zip(candidate_features, gains)]

    def mean_gain(w):
        return float(np.mean([g[int(np.argmax(f @ w))] for f, g in lists]))

    rng = np.random.default_rng(seed)
    best_w = mask * (np.arange(len(FEATURES)) == (0 if mask[0] else int(np.argmax(mask))))
    best = mean_gain(best_w)
    for _ in range(trials):
        fresh = rng.random() < 0.5
        w = mask * (rng.normal(size=len(FEATURES)) if fresh else best_w + 0.3 * rng.normal(size=len(FEATURES)))
        score = mean_gain(w)
        if score > best:
            best, best_w = score, w
    best_w = best_w / np.abs(best_w).max()
    return {name: float(v) for name, v in zip(FEATURES, best_w) if v}
