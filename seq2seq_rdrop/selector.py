"""A learned content selector: where in an abstract its title comes from (issue 40; Bottom-Up Summarization,
Gehrmann et al. 2018, as a separate small model over the whole abstract).

About 93% of title characters occur in the abstract and the best single span of the abstract scores dev
ROUGE-L 76 (`../shared/docs/quality_anchors.md`), so knowing *where* to copy from is most of a title. The
selector reads the whole abstract (not the generator's first 128 characters), one character at a time, with
the jieba word each character belongs to, and predicts

- a tag per character: does it belong in the title (labels: the abstract's characters in the title's longest
  shared pieces, `copy_tags`);
- a span: where the best single span of the abstract starts and ends (labels: `best_span`, the span of at
  most MAX_SPAN characters with the highest ROUGE-L F1 against the title), as start and end pointers.

Its spans (`Selector.spans`: the most likely (text, probability) pairs) feed the re-ranker's `sel` feature
(rerank.py: expected ROUGE-L of a candidate against them), which stands where the one-line rule's title did.
Train with scripts/train_selector.py; a few minutes of one CPU core.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import pickle
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .checkpoints import CheckpointError

MAX_SPAN = 40          # characters of a span at most (titles: mean 19.3; the anchors' oracle searched up to 40)
MAX_ABSTRACT = 512     # abstract characters read (95% of training abstracts are shorter than 406)
SENTENCE_END = set("。！？!?；;")
POSITION_BUCKETS = 16  # relative position in the abstract
SENTENCE_BUCKETS = 8   # index of the sentence (the last bucket: the 8th and later)
LEXICON_BUCKETS = 9    # how title-like the character's jieba word is (titles vs abstracts), binned
BOUNDARY_TAGS = 4      # the character's place in its jieba word: B, M, E, S
SELECTOR_FILE = "selector.pt"  # its name inside a checkpoint directory


# ------------------------------------------------------------------------------ labels


def best_span(abstract: str, title: str, max_span: int = MAX_SPAN) -> tuple[int, int, float]:
    """(start, end, F1): the span abstract[start:end] (at most max_span characters) with the highest ROUGE-L F1
    against `title` (lower-cased characters, as the metric). All spans of all starts at once: one LCS row per
    start, extended one character at a time (the anchors' method, vectorised over starts)."""
    a, t = abstract.lower(), title.lower()
    if not a or not t:
        return 0, 0, 0.0
    n, m = len(a), len(t)
    a_codes = np.array([ord(c) for c in a] + [-1] * max_span)
    t_codes = np.array([ord(c) for c in t])
    row = np.zeros((n, m + 1), dtype=np.int32)  # row[s, j]: LCS of the span starting at s and t[:j]
    best = (0, 1, -1.0)
    for length in range(1, min(max_span, n) + 1):
        added = a_codes[np.arange(n) + length - 1]  # the character each start's span takes in; -1 past the end
        new = np.zeros_like(row)
        for j in range(1, m + 1):
            new[:, j] = np.where(added == t_codes[j - 1], row[:, j - 1] + 1, np.maximum(new[:, j - 1], row[:, j]))
        row = new
        f1 = 2.0 * row[:, m] / (length + m)
        f1[np.arange(n) + length > n] = -1.0  # spans running past the end
        s = int(np.argmax(f1))
        if f1[s] > best[2]:
            best = (s, s + length, float(f1[s]))
    return best


def copy_tags(abstract: str, title: str, min_piece: int = 2) -> list[int]:
    """1 for each abstract character inside one of the title's longest shared pieces, else 0. Pieces are taken
    longest first, each title character used once (Gehrmann et al.'s alignment, on characters); pieces shorter
    than min_piece are left out (a lone shared character is mostly chance)."""
    a, t = abstract.lower(), title.lower()
    tags, used = [0] * len(a), [False] * len(t)
    while True:
        piece = _longest_shared_piece(a, t, used)
        if piece is None or piece[2] < min_piece:
            return tags
        i, j, length = piece
        for k in range(length):
            tags[i + k], used[j + k] = 1, True


def _longest_shared_piece(a: str, t: str, used: list[bool]):
    """(abstract start, title start, length) of the longest substring of t's unused characters found in a."""
    best = None
    for j in range(len(t)):
        length = 0
        while j + length < len(t) and not used[j + length] and t[j:j + length + 1] in a:
            length += 1
        if length and (best is None or length > best[2]):
            best = (a.index(t[j:j + length]), j, length)
    return best


# ------------------------------------------------------------------------------ inputs


def segment(text: str) -> list[str]:
    """jieba's words of `text` (precise mode), covering every character once."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba.lcut(text, HMM=True)


def boundary_tags(words: Sequence[str]) -> list[int]:
    """Per character of "".join(words): 0 begins a word, 1 inside, 2 ends it, 3 a one-character word."""
    tags = []
    for w in words:
        tags.extend([3] if len(w) == 1 else [0] + [1] * (len(w) - 2) + [2])
    return tags


MAX_SELECTOR_BYTES = 256 << 20  # a saved selector is about 2 MB; refuse a file far beyond that before reading


@dataclass
class Lexicon:
    """How title-like each jieba word is: log((count in titles + 1) / (count in abstracts + 1)) minus the
    corpus-size ratio, binned into LEXICON_BUCKETS (bucket 0: a word seen in neither). words=False: no jieba
    at all (every character its own word, no lexicon): the ablation that measures what the words add."""

    weights: dict[str, float]
    words: bool = True

    @classmethod
    def build(cls, titles: Iterable[str], abstracts: Iterable[str], min_count: int = 2,
              words: bool = True) -> "Lexicon":
        if not words:
            return cls({}, words=False)
        in_titles = Counter(w for t in titles for w in segment(t))
        in_abstracts = Counter(w for a in abstracts for w in segment(a))
        shift = math.log((sum(in_titles.values()) + 1) / (sum(in_abstracts.values()) + 1))
        words = {w for w, c in (in_titles + in_abstracts).items() if c >= min_count}
        return cls({w: math.log((in_titles[w] + 1) / (in_abstracts[w] + 1)) - shift for w in words})

    def bucket(self, word: str) -> int:
        if word not in self.weights:
            return 0
        edges = np.linspace(-3.0, 3.0, LEXICON_BUCKETS - 2)
        return 1 + int(np.searchsorted(edges, self.weights[word]))


def encode_abstract(abstract: str, vocab: dict[str, int], lexicon: Lexicon) -> dict[str, list[int]]:
    """The selector's inputs per character of abstract[:MAX_ABSTRACT]: character id (1 = unknown), jieba
    boundary tag, the word's lexicon bucket, relative position bucket, sentence index bucket."""
    text = abstract[:MAX_ABSTRACT]
    words = segment(text) if lexicon.words else list(text)
    lex = [lexicon.bucket(w.lower()) for w in words for _ in w]
    sentence, sentences = 0, []
    for c in text:
        sentences.append(min(sentence, SENTENCE_BUCKETS - 1))
        sentence += c in SENTENCE_END
    n = max(len(text), 1)
    return {"chars": [vocab.get(c, 1) for c in text.lower()], "boundary": boundary_tags(words), "lexicon": lex,
            "position": [min(i * POSITION_BUCKETS // n, POSITION_BUCKETS - 1) for i in range(len(text))],
            "sentence": sentences}


INPUTS = ("chars", "boundary", "lexicon", "position", "sentence")


def collate(encoded: Sequence[dict[str, list[int]]]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Padded inputs [B, L] per INPUTS name and the mask of real characters."""
    length = max(max(len(e["chars"]) for e in encoded), 1)
    batch = {k: torch.zeros(len(encoded), length, dtype=torch.long) for k in INPUTS}
    mask = torch.zeros(len(encoded), length, dtype=torch.bool)
    for i, e in enumerate(encoded):
        for k in INPUTS:
            batch[k][i, :len(e[k])] = torch.tensor(e[k], dtype=torch.long)
        mask[i, :len(e["chars"])] = True
    return batch, mask


# ------------------------------------------------------------------------------ model


class SelectorNet(nn.Module):
    """Embeddings of the INPUTS, summed, a stack of dilated convolutions (receptive field 49 characters; a GRU
    was about 10x slower on one CPU core), and three heads: tag, span start, span end."""

    def __init__(self, vocab_size: int, dim: int = 64, hidden: int = 96, dropout: float = 0.2):
        super().__init__()
        self.embed = nn.ModuleDict({
            "chars": nn.Embedding(vocab_size, dim, padding_idx=0), "boundary": nn.Embedding(BOUNDARY_TAGS, dim),
            "lexicon": nn.Embedding(LEXICON_BUCKETS, dim), "position": nn.Embedding(POSITION_BUCKETS, dim),
            "sentence": nn.Embedding(SENTENCE_BUCKETS, dim)})
        self.dropout = nn.Dropout(dropout)
        self.inp = nn.Conv1d(dim, hidden, 1)
        self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, 3, padding=d, dilation=d) for d in (1, 2, 4, 8, 8, 1))
        self.heads = nn.Linear(hidden, 3)

    def forward(self, batch: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Logits [B, L, 3]: tag, start, end (padding positions -inf for start and end)."""
        keep = mask[:, None, :].float()
        x = self.inp(self.dropout(sum(self.embed[k](batch[k]) for k in INPUTS)).transpose(1, 2)) * keep
        for conv in self.convs:
            x = (x + torch.relu(conv(self.dropout(x)))) * keep  # residual; padding stays zero
        logits = self.heads(self.dropout(x.transpose(1, 2)))
        pointers = logits[..., 1:].masked_fill(~mask[..., None], float("-inf"))
        return torch.cat([logits[..., :1], pointers], dim=-1)


def selector_loss(logits: torch.Tensor, mask: torch.Tensor, tags: torch.Tensor, starts: torch.Tensor,
                  ends: torch.Tensor, tag_weight: float = 1.0) -> torch.Tensor:
    """tag_weight x the tags' binary cross-entropy (real characters) + the start and end pointers' cross-entropy
    (ends: the span's last character)."""
    tag_loss = nn.functional.binary_cross_entropy_with_logits(logits[..., 0][mask], tags[mask].float())
    span_loss = (nn.functional.cross_entropy(logits[..., 1], starts) + nn.functional.cross_entropy(logits[..., 2], ends))
    return tag_weight * tag_loss + span_loss


def span_log_probs(start_logits: torch.Tensor, end_logits: torch.Tensor, max_span: int = MAX_SPAN) -> torch.Tensor:
    """[L, L] log p(start = s) + log p(end = e) for s <= e < s + max_span, -inf elsewhere (one abstract)."""
    start, end = start_logits.log_softmax(-1), end_logits.log_softmax(-1)
    n = start.size(0)
    s, e = torch.arange(n)[:, None], torch.arange(n)[None, :]
    allowed = (e >= s) & (e < s + max_span)
    return (start[:, None] + end[None, :]).masked_fill(~allowed, float("-inf"))


# ------------------------------------------------------------------------------ the trained selector


@dataclass
class Selector:
    net: SelectorNet
    vocab: dict[str, int]
    lexicon: Lexicon

    @torch.no_grad()
    def predict(self, abstracts: Sequence[str], batch_size: int = 32) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per abstract: (tag probabilities [L], span log-probabilities [L, L]) over abstract[:MAX_ABSTRACT]."""
        self.net.eval()
        out = []
        for i in range(0, len(abstracts), batch_size):
            chunk = abstracts[i:i + batch_size]
            batch, mask = collate([encode_abstract(a, self.vocab, self.lexicon) for a in chunk])
            logits = self.net(batch, mask)
            for k, a in enumerate(chunk):
                n = int(mask[k].sum())
                if n == 0:
                    out.append((np.zeros(0), np.zeros((0, 0))))
                    continue
                spans = span_log_probs(logits[k, :n, 1], logits[k, :n, 2])
                out.append((logits[k, :n, 0].sigmoid().numpy(), spans.numpy()))
        return out

    def spans(self, abstracts: Sequence[str], top: int = 5) -> list[list[tuple[str, float]]]:
        """Per abstract, its `top` most likely spans as (text, probability renormalised over them), best first."""
        result = []
        for abstract, (_, span_lp) in zip(abstracts, self.predict(abstracts)):
            if span_lp.size == 0:
                result.append([])
                continue
            flat = span_lp.ravel()
            k = min(top, int(np.isfinite(flat).sum()))
            index = np.argsort(-flat)[:k]
            probs = np.exp(flat[index] - flat[index].max())
            probs /= probs.sum()
            n = span_lp.shape[0]
            result.append([(abstract[i // n:i % n + 1], float(p)) for i, p in zip(index, probs)])
        return result

    def save(self, path: str | os.PathLike) -> None:
        """One file (atomic: a temporary file renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"state": self.net.state_dict(), "vocab": self.vocab, "lexicon": self.lexicon.weights,
                   "words": self.lexicon.words,
                   "sizes": {"dim": self.net.embed["chars"].embedding_dim, "hidden": self.net.heads.in_features}}
        tmp = path.with_name(f".{path.name}.tmp")  # created as any file (umask), unlike mkstemp's 0600
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Selector":
        """A saved selector read as data: tensors, strings, numbers and containers only (weights_only), size
        checked first. Anything else in the file (an object to build, code to run) is refused in one line."""
        path = Path(path)
        if not path.is_file() or path.stat().st_size > MAX_SELECTOR_BYTES:
            raise CheckpointError(f"{path}: not a content selector file (a regular file of at most "
                                  f"{MAX_SELECTOR_BYTES >> 20} MiB is required)")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
            raise CheckpointError(f"{path}: refused, not a content selector this project wrote "
                                  f"({type(e).__name__}); nothing in it was run") from None
        with torch.random.fork_rng():  # the net's throw-away initialisation must not move the run's random state
            net = SelectorNet(len(payload["vocab"]) + 2, **payload["sizes"])
        net.load_state_dict(payload["state"])
        return cls(net.eval(), payload["vocab"], Lexicon(payload["lexicon"], payload.get("words", True)))


def attach(model, selector: Selector) -> None:
    """Make `selector` travel with `model`: checkpoints.save_model_checkpoint writes it as SELECTOR_FILE beside
    the weights, models.load_model reads it back, decoding.generate feeds its spans to decode.rerank's sel.
    A plain attribute, not a submodule: the generator's state dict and optimiser never see it."""
    object.__setattr__(model, "content_selector", selector)


def build_vocab(abstracts: Iterable[str], min_count: int = 2) -> dict[str, int]:
    """Characters seen at least min_count times -> ids from 2 (0 padding, 1 unknown)."""
    counts = Counter(c for a in abstracts for c in a.lower())
    return {c: i + 2 for i, c in enumerate(sorted(c for c, n in counts.items() if n >= min_count))}


def train_selector(pairs: Sequence[tuple[str, str]], extra_titles: Sequence[str] = (), epochs: int = 6,
                   batch_size: int = 32, lr: float = 2e-3, tag_weight: float = 1.0, seed: int = 0,
                   dim: int = 64, hidden: int = 96, val_pairs: Sequence[tuple[str, str]] = (), words: bool = True,
                   log=print) -> Selector:
    """A Selector trained on (abstract, title) pairs; extra_titles (title-only text) join the pairs' titles in
    the lexicon. Labels: copy_tags and best_span of each pair over abstract[:MAX_ABSTRACT]. With val_pairs,
    the weights kept are those of the epoch whose top span scores best on them (top_span_rouge_l). words=False:
    without jieba (Lexicon)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    abstracts = [a for a, _ in pairs]
    vocab = build_vocab(abstracts)
    lexicon = Lexicon.build([t for _, t in pairs] + list(extra_titles), abstracts, words=words)
    start_time = time.perf_counter()
    examples = []
    for abstract, title in pairs:
        text = abstract[:MAX_ABSTRACT]
        if not text:
            continue
        start, end, _ = best_span(text, title)
        examples.append((encode_abstract(text, vocab, lexicon), copy_tags(text, title), start, end - 1))
    log(f"selector: labels and inputs of {len(examples)} pairs in {time.perf_counter() - start_time:.0f} s")
    net = SelectorNet(len(vocab) + 2, dim=dim, hidden=hidden)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    best = None
    for epoch in range(epochs):
        net.train()
        total = 0.0
        for chunk_index in _length_batches([len(e[1]) for e in examples], batch_size, rng):
            chunk = [examples[j] for j in chunk_index]
            batch, mask = collate([e[0] for e in chunk])
            tags = torch.zeros_like(mask, dtype=torch.long)
            for k, e in enumerate(chunk):
                tags[k, :len(e[1])] = torch.tensor(e[1])
            loss = selector_loss(net(batch, mask), mask, tags, torch.tensor([e[2] for e in chunk]),
                                 torch.tensor([e[3] for e in chunk]), tag_weight)
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimiser.step()
            total += loss.item() * len(chunk)
        message = (f"selector epoch {epoch + 1}/{epochs}: loss {total / len(examples):.3f} "
                   f"({time.perf_counter() - start_time:.0f} s)")
        if val_pairs:
            score = top_span_rouge_l(Selector(net, vocab, lexicon), val_pairs)
            message += f", validation R-L of the top span {score:.2f}"
            if best is None or score > best[0]:
                best = (score, copy.deepcopy(net.state_dict()))
        log(message)
    if best is not None:  # the epoch whose top span scored best on the validation pairs
        net.load_state_dict(best[1])
    return Selector(net.eval(), vocab, lexicon)


def _length_batches(lengths: Sequence[int], batch_size: int, rng) -> list[list[int]]:
    """Batches of similar lengths (less padding), in random order, shuffled within length bands."""
    order = sorted(rng.permutation(len(lengths)), key=lambda i: lengths[i] // 32)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def top_span_rouge_l(selector: Selector, pairs: Sequence[tuple[str, str]]) -> float:
    """Mean ROUGE-L (x100) of the selector's most likely span taken as the title of each (abstract, title)."""
    from .metrics import score_corpus

    top = [spans[0][0] if spans else "" for spans in selector.spans([a for a, _ in pairs], top=1)]
    return score_corpus([t for _, t in pairs], top)["rouge-l"]

