"""Is a title well formed against its abstract? Checks of one (title, abstract) pair, reusable as decoding or
re-ranking checks, and their rates over a file (metrics.title_shape reports them in every run's
dev_title_shape, beside the references' own rates on the same abstracts).

All checks but the Latin one compare compact text: lower-cased, whitespace removed (the units of the
character metrics). A span of the title is *copied* when it occurs in the compact abstract.

- latin_cut_short: a Latin letter run of the title (2+ letters, lower-cased) that is no Latin word of the
  abstract but a strict prefix or suffix of a longer one ("Spon" for "Sponge"; a plural "s" is not a cut).
- starts_inside_word / ends_inside_word: the title's opening (its longest prefix of 2+ characters that
  occurs in the abstract) starts, at every place it occurs there, at a position that is no boundary between
  two jieba words of the abstract; the ending likewise (its longest copied suffix ends inside a word
  everywhere). A title whose first (last) two characters occur nowhere in the abstract has no copied
  opening (ending) and does not count.
- repeated_piece: an immediately repeated piece of 2+ characters (xx) that the abstract does not hold
  doubled ("wififi" from "WiFi"; "基于基于").
- glued_spans: the title cut greedily into copied spans (from the left, each the longest piece that occurs in
  the abstract; a character the abstract lacks stands alone, uncopied); a junction between two copied spans
  of 2+ characters each is glued when the two characters that meet there never stand side by side in the
  abstract *and* a word is broken there: the left span ends inside a jieba word wherever it occurs in the
  abstract, or the right span starts inside one wherever it occurs. (The bigram test alone flags 66% of CSL
  dev's reference titles, which are built from abstract pieces joined at word boundaries: 基于 + BP神经网络的;
  with the broken word, 6.9%: docs/experiments/2026-12-07_quality_heldout.md.)
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

from .words import words

MIN_COPY = 2  # characters: shorter openings, endings, pieces and spans match anywhere by chance
LATIN = re.compile(r"[a-z]+")
FORM_LABELS = {"latin_cut_short": "a Latin word cut short", "starts_inside_word": "starting inside a word",
               "ends_inside_word": "ending inside a word", "repeated_piece": "a repeated word piece",
               "glued_spans": "glued spans"}  # check -> what a report calls it
FORM_CHECKS = tuple(FORM_LABELS)


def compact(text: str) -> str:
    """Lower-cased, whitespace removed: the text the character metrics score (metrics.chars, as one string)."""
    return "".join(text.lower().split())


@lru_cache(maxsize=8192)
def word_boundaries(abstract: str) -> tuple[str, frozenset[int]]:
    """(the compact abstract, the positions in it where a jieba word starts or ends, 0 and its length too)."""
    positions, end = {0}, 0
    for word in words(abstract):
        end += len(compact(word))
        positions.add(end)
    return compact(abstract), frozenset(positions)


def _occurrences(text: str, piece: str) -> list[int]:
    """Start positions of every occurrence of piece in text, overlaps included."""
    out, at = [], text.find(piece)
    while at >= 0:
        out.append(at)
        at = text.find(piece, at + 1)
    return out


def latin_cut_short(title: str, abstract: str) -> list[str]:
    """The title's Latin runs that are strict prefixes or suffixes of a longer Latin word of the abstract
    and no Latin word of it themselves (a plural, word + "s", is not a cut)."""
    abstract_words = set(LATIN.findall(abstract.lower()))
    return [run for run in LATIN.findall(title.lower())
            if len(run) >= MIN_COPY and run not in abstract_words
            and any(len(w) > len(run) and (w.startswith(run) or w.endswith(run)) and w != run + "s"
                    for w in abstract_words)]


def _longest_copied(title: str, abstract: str, from_start: bool) -> str:
    """The title's longest prefix (suffix) of MIN_COPY+ characters that occurs in the abstract; '' if none."""
    best = ""
    for n in range(MIN_COPY, len(title) + 1):
        piece = title[:n] if from_start else title[-n:]
        if piece not in abstract:
            break  # a longer prefix (suffix) holds this one, so it cannot occur either
        best = piece
    return best


def _inside_everywhere(abstract: str, piece: str, at_start: bool) -> bool:
    """The piece (of the compact abstract) starts (at_start) or ends inside a jieba word of the abstract at
    every place it occurs there."""
    text, bounds = word_boundaries(abstract)
    offset = 0 if at_start else len(piece)
    return not any(at + offset in bounds for at in _occurrences(text, piece))


def starts_inside_word(title: str, abstract: str) -> bool:
    """The copied opening starts inside a jieba word of the abstract wherever it occurs there."""
    opening = _longest_copied(compact(title), compact(abstract), from_start=True)
    return bool(opening) and _inside_everywhere(abstract, opening, at_start=True)


def ends_inside_word(title: str, abstract: str) -> bool:
    """The copied ending ends inside a jieba word of the abstract wherever it occurs there."""
    ending = _longest_copied(compact(title), compact(abstract), from_start=False)
    return bool(ending) and _inside_everywhere(abstract, ending, at_start=False)


def repeated_piece(title: str, abstract: str) -> str:
    """The first immediately repeated piece xx (x of MIN_COPY+ characters) that the abstract does not hold;
    '' when there is none."""
    t, a = compact(title), compact(abstract)
    for start in range(len(t)):
        for n in range(MIN_COPY, (len(t) - start) // 2 + 1):
            doubled = t[start:start + 2 * n]
            if doubled[:n] == doubled[n:] and doubled not in a:
                return doubled
    return ""


def copied_spans(title: str, abstract: str) -> list[tuple[str, bool]]:
    """The compact title cut greedily from the left: (span, copied) with each copied span the longest piece
    from there that occurs in the compact abstract, and each character the abstract lacks alone, uncopied."""
    t, a = compact(title), compact(abstract)
    spans, start = [], 0
    while start < len(t):
        end = start
        while end < len(t) and t[start:end + 1] in a:
            end += 1
        if end == start:
            spans.append((t[start], False))
            start += 1
        else:
            spans.append((t[start:end], True))
            start = end
    return spans


def glued_spans(title: str, abstract: str) -> list[tuple[str, str]]:
    """(left, right) of each junction between two copied spans of MIN_COPY+ characters whose meeting
    characters never stand side by side in the abstract, where the left span ends inside a jieba word of the
    abstract everywhere or the right one starts inside one everywhere."""
    a = compact(abstract)
    spans = copied_spans(title, abstract)
    return [(left, right) for (left, left_copied), (right, right_copied) in zip(spans, spans[1:])
            if left_copied and right_copied and min(len(left), len(right)) >= MIN_COPY
            and left[-1] + right[0] not in a
            and (_inside_everywhere(abstract, left, at_start=False) or _inside_everywhere(abstract, right, at_start=True))]


def form_rates(titles: Sequence[str], abstracts: Sequence[str]) -> dict[str, float]:
    """The share of titles failing each check of FORM_CHECKS (each title against its own abstract)."""
    if len(titles) != len(abstracts):
        raise ValueError(f"{len(titles)} titles but {len(abstracts)} abstracts")
    checks = {"latin_cut_short": latin_cut_short, "starts_inside_word": starts_inside_word,
              "ends_inside_word": ends_inside_word, "repeated_piece": repeated_piece, "glued_spans": glued_spans}
    n = max(len(titles), 1)
    return {name: sum(bool(checks[name](t, a)) for t, a in zip(titles, abstracts)) / n for name in FORM_CHECKS}
