"""Character-level ROUGE-1/2/L F1 and BLEU for Chinese titles.

A title is compared character by character: lower-cased, whitespace dropped.
rouge-score's default tokenizer keeps only [a-z0-9] and would silently drop every
Chinese character, so we hand it a tokenizer that returns characters.
Scores are averaged over examples (an empty prediction scores 0) and reported x100.

rouge-score and NLTK (about 2 s of imports) load at the first score: config_checks reads METRIC_NAMES, the
allowed values of trainer.monitor, from here before anything else is loaded.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Sequence

from .title_form import form_rates
from .words import WordTokenizer

METRIC_NAMES = ("rouge-1", "rouge-2", "rouge-l", "bleu")
LEAD_CHARS = 20  # the lead baseline: the abstract's first 20 characters as the title


def chars(text: str) -> list[str]:
    """The unit of every metric: lower-cased characters, whitespace removed."""
    return [c for c in text.lower() if not c.isspace()]


class CharTokenizer:
    """Tokenizer object in the shape rouge-score expects (a `tokenize` method)."""

    def tokenize(self, text: str) -> list[str]:
        return chars(text)


@lru_cache(maxsize=1)
def _scorers():
    """(rouge-score's scorer over characters, NLTK's sentence_bleu, its smoothing), built once."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=CharTokenizer())
    return scorer, sentence_bleu, SmoothingFunction().method1


def score_pair(reference: str, prediction: str) -> dict[str, float]:
    """Per-example scores in [0, 100]."""
    ref, hyp = chars(reference), chars(prediction)
    if not ref or not hyp:
        return {name: 0.0 for name in METRIC_NAMES}
    scorer, sentence_bleu, smoothing = _scorers()
    rouge = scorer.score(reference, prediction)
    bleu = sentence_bleu([ref], hyp, smoothing_function=smoothing)
    return {
        "rouge-1": 100.0 * rouge["rouge1"].fmeasure,
        "rouge-2": 100.0 * rouge["rouge2"].fmeasure,
        "rouge-l": 100.0 * rouge["rougeL"].fmeasure,
        "bleu": 100.0 * bleu,
    }


@lru_cache(maxsize=1)
def _rouge_l_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=CharTokenizer())


def rouge_l(reference: str, prediction: str) -> float:
    """ROUGE-L F1 alone, in [0, 1], as score_pair computes it (re-ranking features need only this)."""
    return _rouge_l_scorer().score(reference, prediction)["rougeL"].fmeasure


def score_examples(references: Sequence[str], predictions: Sequence[str]) -> dict[str, list[float]]:
    """Each metric's per-example scores, in input order (what a paired bootstrap resamples)."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    per_example = [score_pair(r, p) for r, p in zip(references, predictions)]
    return {name: [s[name] for s in per_example] for name in METRIC_NAMES}


def score_corpus(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Mean of the per-example scores, plus `n`, the number of examples."""
    per_example = score_examples(references, predictions)
    n = len(references)
    out = {name: (sum(per_example[name]) / n if n else 0.0) for name in METRIC_NAMES}
    out["n"] = n
    return out


WORD_METRIC_NAMES = ("word-rouge-1", "word-rouge-2", "word-rouge-l")  # secondary: METRIC_NAMES decide


@lru_cache(maxsize=1)
def _word_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=WordTokenizer())


def word_rouge(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """ROUGE-1/2/L F1 x100 over jieba words (words.words: lower-cased, whitespace dropped), averaged over
    examples as score_corpus does (an empty side scores 0), plus `n`. A secondary figure, as Chinese
    summarization papers report it beside character ROUGE; every comparison and choice uses the characters."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    totals = dict.fromkeys(WORD_METRIC_NAMES, 0.0)
    for reference, prediction in zip(references, predictions):
        if not chars(reference) or not chars(prediction):
            continue
        scores = _word_scorer().score(reference, prediction)
        for name, key in zip(WORD_METRIC_NAMES, ("rouge1", "rouge2", "rougeL")):
            totals[name] += 100.0 * scores[key].fmeasure
    n = len(references)
    return {**{name: (total / n if n else 0.0) for name, total in totals.items()}, "n": n}


def distinct_ngrams(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n of a set of texts (Li et al., 2016): distinct character n-gram types / n-gram tokens over all
    of them, characters as `chars` gives them (a text of k characters holds k - n + 1 n-grams); 0.0 when they
    hold no n-gram. 1.0: no n-gram occurs twice; m copies of one text score at most 1/m."""
    grams = [tuple(c[i:i + n]) for c in map(chars, texts) for i in range(len(c) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def lead_scores(references: Sequence[str], abstracts: Sequence[str], chars: int = LEAD_CHARS) -> dict[str, float]:
    """Scores of the trivial title "the abstract's first `chars` characters": the floor a model must beat
    (on CSL dev it is ROUGE-L 28.8, as the data README says)."""
    return score_corpus(references, [a[:chars] for a in abstracts])


# The one-line rule of ../shared/docs/quality_anchors.md: the first verb of proposing, optionally 一种/一个/一类,
# then 4-30 characters up to the next punctuation; a floor that needs no training (dev ROUGE-L 47.4)
RULE_PATTERN = re.compile(r"(?:提出了|提出|设计了|设计|研究了|研究|给出了|给出|构建了|构建|建立了|建立)"
                          r"(一种|一个|一类)?([^,，。.;；:：]{4,30})")


def rule_title(abstract: str, lead_chars: int = LEAD_CHARS) -> str:
    """The rule's title: 一种/一个/一类 (when present) + the clause after the first verb of proposing, else
    the abstract's first `lead_chars` characters."""
    match = RULE_PATTERN.search(abstract)
    return (match.group(1) or "") + match.group(2) if match else abstract[:lead_chars]


def rule_scores(references: Sequence[str], abstracts: Sequence[str]) -> dict[str, float]:
    """Scores of rule_title: a trained title generator should beat it clearly."""
    return score_corpus(references, [rule_title(a) for a in abstracts])


BRACKETS = {"(": ")", "（": "）", "[": "]", "【": "】", "《": "》", "“": "”", "<": ">"}
BOILERPLATE = ("正文", "摘要", "目的:", "目的：", "关键词")  # abstract furniture that a title should not copy


def balanced(text: str) -> bool:
    """Every bracket of BRACKETS closed, in order."""
    closing, stack = set(BRACKETS.values()), []
    for ch in text:
        if ch in BRACKETS and not (ch in closing and stack and stack[-1] == ch):
            stack.append(BRACKETS[ch])
        elif ch in closing:
            if not stack or stack.pop() != ch:
                return False
    return not stack


def repeats_ngram(text: str, n: int = 3) -> bool:
    """Some character n-gram occurs twice (overlaps allowed): a title that loops."""
    grams = [text[i:i + n] for i in range(len(text) - n + 1)]
    return len(grams) != len(set(grams))


def title_shape(titles: Sequence[str], references: Sequence[str],
                abstracts: Sequence[str] | None = None) -> dict[str, float]:
    """Whether generated titles read as titles, beside the references' own rates: mean length in characters
    (and its ratio to the references'), shares of titles with unbalanced brackets, copied boilerplate
    (BOILERPLATE), a repeated character 3-gram, and starting with 基于; with the abstracts, also the shares
    failing each well-formedness check of title_form.FORM_CHECKS (Latin words cut short, starting or ending
    inside a jieba word, repeated word pieces, glued spans), the references checked against the same abstracts."""
    def rates(texts: Sequence[str]) -> dict[str, float]:
        n = max(len(texts), 1)
        return {"length": sum(len(chars(t)) for t in texts) / n,
                "unbalanced_brackets": sum(not balanced(t) for t in texts) / n,
                "boilerplate": sum(any(b in t for b in BOILERPLATE) for t in texts) / n,
                "repetitive": sum(repeats_ngram("".join(chars(t))) for t in texts) / n,
                "starts_jiyu": sum(t.startswith("基于") for t in texts) / n,
                **(form_rates(texts, abstracts) if abstracts is not None else {})}

    ours, refs = rates(titles), rates(references)
    return {**ours, "length_ratio": ours["length"] / refs["length"] if refs["length"] else float("nan"),
            **{f"reference_{k}": v for k, v in refs.items()}}


def format_table(scores: dict[str, dict[str, float]] | dict[str, float], title: str = "") -> str:
    """A small plain-text table: one row per split, one column per metric."""
    rows: Iterable[tuple[str, dict]] = (
        scores.items() if all(isinstance(v, dict) for v in scores.values()) else [("", scores)]
    )
    head = f"{'split':<8}" + "".join(f"{m:>10}" for m in METRIC_NAMES) + f"{'n':>7}"
    lines = ([title] if title else []) + [head]
    for split, s in rows:
        lines.append(f"{split:<8}" + "".join(f"{s[m]:>10.2f}" for m in METRIC_NAMES) + f"{s.get('n', 0):>7}")
    return "\n".join(lines)
