"""Diagnostics that test the R-Drop article's explanation on any checkpoint (`scripts/diagnose.py`).

The article's argument: a dropout network is an ensemble of sub-models, but it is trained as a
sub-model (one random mask per step) and used as the deterministic "average" model (no dropout)
at test time. R-Drop pulls the sub-models' predictions together, which should (1) shrink the gap
between the deterministic model and the MC-dropout ensemble it stands for, and (2) make the
sub-models agree, also on the non-target classes that cross-entropy alone does not constrain.
The exposure-bias measures ask the competing explanation (random replacement's): does the model
fail when it continues from its own or a corrupted prefix rather than from the gold one? The corrupted
prefix draws its noise as random replacement trains (so random replacement is favoured by construction);
the own-prefix measure does not: the NLL of the reference continuation after the model's own first k
greedy tokens against after the gold first k, on the examples whose two prefixes differ.

Every measure is teacher-forced on a labelled split and averaged per title token over the
non-padding `tgt_out` positions (title + end token), unless it is a decoding score (ROUGE-L x100).
Dropout is on (`model.train()`) only for the MC-dropout passes and the ensemble decoding; all
randomness comes from `torch.manual_seed(seed)` and generators seeded with `seed`, so a given
checkpoint, data and seed give the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .fast_dropout import use_fast_dropout
from .metrics import score_corpus
from .regularizers.random_replace import replace_title_inputs
from .tokenizer import decode_ids, encode_text

NEG_INF = float("-inf")
CORRUPTION_RATES = (0.0, 0.1, 0.2, 0.3)
OWN_PREFIX_LENGTHS = (1, 2, 4)  # k: the model's own first k greedy tokens as the prefix
MAX_POSITIONS = 32  # positions reported in the accuracy-by-position curves
MEASURE_KEYS = (
    "nll_deterministic", "nll_ensemble", "nll_single_pass",
    "gap_kl_ensemble_deterministic", "gap_nll",
    "submodel_sym_kl", "submodel_sym_kl_nontarget",
    "rouge_l_greedy_deterministic", "rouge_l_greedy_ensemble",
    "acc_teacher_forced", "acc_free_running",
    *(f"nll_corrupt_{r}" for r in CORRUPTION_RATES if r > 0),
    *(f"rouge_l_corrupt_{r}" for r in CORRUPTION_RATES),
    *(f"{name}_{k}" for k in OWN_PREFIX_LENGTHS
      for name in ("own_prefix_differs", "nll_after_own_prefix", "nll_after_gold_prefix", "own_prefix_gap")),
)


# --------------------------------------------------------------------------- divergences


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(P||Q) = sum_v p_v (log p_v - log q_v) over the last dim. A term with p_v = 0 is 0 (also where
    log q_v = -inf: tokens neither can produce); p_v > 0 with q_v = 0 gives +inf, as it should."""
    terms = log_p.exp() * (log_p - log_q)
    return torch.where(log_p > NEG_INF, terms, torch.zeros_like(terms)).sum(-1)


def symmetric_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(P||Q) + KL(Q||P) = sum_v (p_v - q_v)(log p_v - log q_v) over the last dim; a term is 0 where both
    log-probs are -inf (the difference -inf - -inf is undefined, the term is not)."""
    both_impossible = torch.isinf(log_p) & torch.isinf(log_q)
    diff = (log_p - log_q).masked_fill(both_impossible, 0.0)
    return ((log_p.exp() - log_q.exp()) * diff).sum(-1)


def without_target(log_p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log P(v | v != target): the distribution over the non-target classes, renormalised (the target
    gets -inf). Cross-entropy only fixes the target's probability; the article argues that R-Drop also
    makes sub-models agree on how the rest is spread. Rows with all mass on the target give NaN."""
    masked = log_p.scatter(-1, target.unsqueeze(-1), NEG_INF)
    return masked - masked.logsumexp(-1, keepdim=True)


def ensemble_log_probs(log_probs: torch.Tensor) -> torch.Tensor:
    """[K, ..., V] log-probs of K sub-models -> log of their averaged probabilities [..., V]."""
    return log_probs.logsumexp(0) - math.log(log_probs.size(0))


def gold_nll(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log p(target) at every position; `target` (broadcast to log_probs' leading dims) may hold pad ids."""
    return -log_probs.gather(-1, target.expand(log_probs.shape[:-1]).unsqueeze(-1)).squeeze(-1)


# --------------------------------------------------------------------------- teacher forcing


def mc_passes(model, batch: dict, k: int, max_rows: int = 64) -> torch.Tensor:
    """K dropout passes [K, B, T, V]: the batch repeated along the batch dimension (as many copies
    per forward as `max_rows` rows allow), in whatever mode the model is in."""
    per_forward = max(1, min(k, max_rows // batch["src_ids"].size(0)))
    chunks = []
    for first in range(0, k, per_forward):
        copies = min(per_forward, k - first)
        out = model({key: torch.cat([v] * copies) for key, v in batch.items()})
        chunks.append(out.view(copies, -1, *out.shape[1:]))
    return torch.cat(chunks)


def pair_disagreement(passes: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean symmetric KL between passes (1,2), (3,4), ... [B, T], the same over the non-target classes,
    and where the latter is defined (both renormalisations finite). NaN for K < 2."""
    n = passes.size(0) // 2
    if n == 0:
        nan = torch.full(target.shape, float("nan"))
        return nan, nan, torch.ones_like(target, dtype=torch.bool)
    full, nontarget, defined = 0.0, 0.0, torch.ones_like(target, dtype=torch.bool)
    for i in range(n):
        p, q = passes[2 * i], passes[2 * i + 1]
        full = full + symmetric_kl(p, q)
        p_nt, q_nt = without_target(p, target), without_target(q, target)
        ok = ~(p_nt.isnan().any(-1) | q_nt.isnan().any(-1))
        defined &= ok
        nontarget = nontarget + symmetric_kl(p_nt, q_nt).masked_fill(~ok, 0.0)
    return full / n, nontarget / n, defined


@torch.no_grad()
def teacher_forced_measures(model, batch: dict, k: int, max_rows: int = 64) -> dict[str, torch.Tensor]:
    """Per-token values [B, T] of the dropout-consistency measures and teacher-forced correctness.
    The deterministic model runs in eval mode, the K sub-models in train mode."""
    target = batch["tgt_out"].clamp_min(0)
    model.eval()
    det = model(batch)
    model.train()
    passes = mc_passes(model, batch, k, max_rows)
    model.eval()
    ens = ensemble_log_probs(passes)
    sym, sym_nt, nt_defined = pair_disagreement(passes, target)
    return {
        "nll_deterministic": gold_nll(det, target),
        "nll_ensemble": gold_nll(ens, target),
        "nll_single_pass": gold_nll(passes, target).mean(0),
        "gap_kl_ensemble_deterministic": kl_divergence(ens, det),
        "submodel_sym_kl": sym,
        "submodel_sym_kl_nontarget": sym_nt,
        "nontarget_defined": nt_defined,
        "correct_teacher_forced": det.argmax(-1) == target,
    }


# --------------------------------------------------------------------------- decoding


def _ban(log_probs: torch.Tensor, model, title_len: int) -> torch.Tensor:
    """The same rules as decoding.greedy with min_len=1: specials never, the end token not first."""
    log_probs = log_probs.clone()
    log_probs[:, [i for i in model.special_ids() if i != model.eos_id]] = NEG_INF
    if title_len < 1:
        log_probs[:, model.eos_id] = NEG_INF
    return log_probs


@torch.no_grad()
def greedy_continue(model, src_ids: torch.Tensor, prefixes: list[list[int]], max_len: int,
                    replicas: int = 1) -> list[list[int]]:
    """Greedy titles for src_ids [B, S] with the KV cache; row b's first len(prefixes[b]) title tokens
    are forced. Returns the tokens chosen after each prefix (end token excluded); a title holds at
    most max_len tokens, prefix included.

    replicas > 1 (the MC-dropout ensemble, with the model in train mode): each abstract's row is
    repeated `replicas` times; each step averages the replicas' probabilities per abstract, takes the
    argmax and feeds that token to all replicas. Every replica is a sub-model whose dropout masks for
    positions already in its cache stay fixed; only the new position gets fresh masks at each step."""
    B = src_ids.size(0)
    state, log_probs = model.start(src_ids.repeat_interleave(replicas, 0))
    out: list[list[int]] = [[] for _ in range(B)]
    ended = [False] * B
    for step in range(max_len):
        averaged = ensemble_log_probs(log_probs.float().view(B, replicas, -1).transpose(0, 1))
        choice = _ban(averaged, model, step).argmax(-1).tolist()
        tokens = []
        for b in range(B):
            token = prefixes[b][step] if step < len(prefixes[b]) else choice[b]
            if not ended[b] and token == model.eos_id:
                ended[b] = True
            elif not ended[b] and step >= len(prefixes[b]):
                out[b].append(token)
            tokens.append(model.eos_id if ended[b] else token)
        if all(ended) or step == max_len - 1:
            break
        fed = torch.tensor(tokens, device=src_ids.device).repeat_interleave(replicas)
        state, log_probs = model.step(state, fed)
    return out


def title_tokens(model, tgt_in_row: torch.Tensor, tgt_out_row: torch.Tensor) -> list[int]:
    """The title's tokens as fed in `tgt_in` (BART puts a decoder-start token first; UniLM does not)."""
    length = int((tgt_out_row != model.pad_id).sum()) - 1  # tgt_out = title + end token
    fed = tgt_in_row[tgt_in_row != model.pad_id].tolist()
    return fed[len(fed) - length:]


def free_running_correct(hyp_tokens: list[int], gold: list[int], eos_id: int, max_len: int) -> list[bool]:
    """Position t of the greedy output (+ end token when it stopped before max_len) == gold token t."""
    output = hyp_tokens + ([eos_id] if len(hyp_tokens) < max_len else [])
    return [t < len(output) and output[t] == g for t, g in enumerate(gold)]


# --------------------------------------------------------------------------- one checkpoint


@dataclass
class Settings:
    k: int = 8
    seed: int = 0
    max_source_len: int = 256
    max_target_len: int = 64
    max_len: int = 32  # decode.max_len
    batch_size: int = 16  # examples per teacher-forced batch
    max_rows: int = 64  # rows per forward for the K dropout copies (memory; 64 was fastest on a CPU)
    fast_dropout: bool = True  # on CPU: seq2seq_rdrop.fast_dropout's masks, as training on CPU draws them


class _Totals:
    """Token-weighted sums of per-token measures and per-position accuracy counts."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}
        self.by_position = {name: np.zeros(MAX_POSITIONS) for name in ("tf", "fr", "n")}

    def add(self, name: str, values: torch.Tensor, mask: torch.Tensor) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + float(values.double()[mask].sum())
        self.counts[name] = self.counts.get(name, 0.0) + float(mask.sum())

    def add_position(self, name: str, correct: list[bool]) -> None:
        for t, c in enumerate(correct[:MAX_POSITIONS]):
            self.by_position[name][t] += c

    def mean(self, name: str) -> float:
        return self.sums[name] / self.counts[name] if self.counts.get(name) else float("nan")


PER_TOKEN = ("nll_deterministic", "nll_ensemble", "nll_single_pass", "gap_kl_ensemble_deterministic",
             "submodel_sym_kl")


def _add_teacher_forced(totals: _Totals, values: dict, mask: torch.Tensor) -> None:
    for name in PER_TOKEN:
        totals.add(name, values[name], mask)
    totals.add("submodel_sym_kl_nontarget", values["submodel_sym_kl_nontarget"], mask & values["nontarget_defined"])
    totals.add("acc_teacher_forced", values["correct_teacher_forced"], mask)
    for row, row_mask in zip(values["correct_teacher_forced"], mask):
        correct = row[row_mask].tolist()
        totals.add_position("tf", correct)
        totals.add_position("n", [True] * len(correct))


@torch.no_grad()
def corrupted_prefix(model, batch: dict, r: float, generator: torch.Generator, max_len: int):
    """Robustness to a corrupted prefix, in eval mode. Each non-special gold title input is replaced with
    probability r by a token drawn from the example's own sequence (random replacement's recipe).
    Returns (1) the teacher-forced NLL of the reference title given the corrupted inputs [B, T]
    (r = 0: exactly the plain teacher-forced NLL), (2) greedy continuations after forcing the first
    floor(len/2) corrupted title tokens, (3) the reference's remaining tokens they are scored against.
    One generator per r, seeded alike, makes the corrupted positions nested across rates."""
    noisy = replace_title_inputs(batch["tgt_in"], prob=r, example_prob=1.0, vocab_size=model.vocab_size,
                                 special_ids=model.special_ids(), generator=generator, source="sequence",
                                 src_ids=batch["src_ids"])
    model.eval()
    nll = gold_nll(model({**batch, "tgt_in": noisy}), batch["tgt_out"].clamp_min(0))
    prefixes, remainders = [], []
    for noisy_row, gold_row, out_row in zip(noisy, batch["tgt_in"], batch["tgt_out"]):
        gold = title_tokens(model, gold_row, out_row)
        half = len(gold) // 2
        prefixes.append(title_tokens(model, noisy_row, out_row)[:half])
        remainders.append(gold[half:])
    return nll, greedy_continue(model, batch["src_ids"], prefixes, max_len), remainders


def deterministic_greedy(model, tokenizer, examples, settings: Settings) -> list[list[int]]:
    """The deterministic model's greedy titles (eval mode, decoding.generate with beam size 1)."""
    from .decoding import generate

    options = {"beam_size": 1, "max_len": settings.max_len, "min_len": 1, "length_penalty": 1.0,
               "no_repeat_ngram": 0, "num_return": 1, "use_cache": True}
    hyps = generate(model, tokenizer, [e.abstract for e in examples], options, batch_size=64,
                    max_source_len=settings.max_source_len, device="cpu", progress=False)
    return [h[0].tokens for h in hyps]


def ensemble_greedy(model, encoded, order: list[int], settings: Settings) -> list[list[int]]:
    """Greedy titles of the MC-dropout ensemble (K replicas per abstract, train mode), in input order."""
    per_batch = max(1, settings.max_rows // settings.k)
    titles: list = [None] * len(encoded)
    model.train()
    for first in range(0, len(order), per_batch):
        chunk = order[first:first + per_batch]
        src = model.collate([(encoded[i][0], None, None) for i in chunk])["src_ids"]
        for i, tokens in zip(chunk, greedy_continue(model, src, [[]] * len(chunk), settings.max_len, settings.k)):
            titles[i] = tokens
    model.eval()
    return titles


def encode_examples(model, tokenizer, examples, settings: Settings) -> list[tuple]:
    """(src, tgt_in, tgt_out) id lists, cut as in training (model_setup.encode_pairs)."""
    return [model.build_example(encode_text(tokenizer, e.abstract, settings.max_source_len),
                                encode_text(tokenizer, e.title, settings.max_target_len)) for e in examples]


def _teacher_forced_pass(model, tokenizer, encoded, order, settings: Settings, totals: _Totals) -> dict:
    """Every teacher-forced measure and the corrupted-prefix decodes, batch by batch (shortest abstracts
    first). Returns {r: (predicted continuations, reference remainders)} as text."""
    generators = {r: torch.Generator().manual_seed(settings.seed) for r in CORRUPTION_RATES}
    texts = {r: ([], []) for r in CORRUPTION_RATES}
    for first in range(0, len(order), settings.batch_size):
        batch = model.collate([encoded[i] for i in order[first:first + settings.batch_size]])
        mask = batch["tgt_out"] != model.pad_id
        _add_teacher_forced(totals, teacher_forced_measures(model, batch, settings.k, settings.max_rows), mask)
        for r in CORRUPTION_RATES:
            nll, continuations, remainders = corrupted_prefix(model, batch, r, generators[r], settings.max_len)
            totals.add(f"nll_corrupt_{r}", nll, mask)
            texts[r][0].extend(decode_ids(tokenizer, c) for c in continuations)
            texts[r][1].extend(decode_ids(tokenizer, g) for g in remainders)
    return texts


def _free_running(model, tokenizer, examples, encoded, settings: Settings, totals: _Totals) -> list[list[int]]:
    """Deterministic greedy titles (token ids); their position-by-position agreement with the gold tokens."""
    greedy = deterministic_greedy(model, tokenizer, examples, settings)
    correct_total = 0
    for tokens, (_, _, gold) in zip(greedy, encoded):
        correct = free_running_correct(tokens, gold, model.eos_id, settings.max_len)
        correct_total += sum(correct)
        totals.add_position("fr", correct)
    totals.sums["acc_free_running"], totals.counts["acc_free_running"] = correct_total, sum(len(e[2]) for e in encoded)
    return greedy


@torch.no_grad()
def own_prefix_measures(model, tokenizer, examples, encoded, greedy: list[list[int]],
                        settings: Settings) -> dict[str, float]:
    """For each k of OWN_PREFIX_LENGTHS, over the examples whose gold title is longer than k tokens and whose
    greedy title's first k tokens differ from the gold ones: the per-token NLL of the reference continuation
    (gold tokens k.. and the end token) after the model's own first k tokens, after the gold first k, and
    the gap; plus the share of examples with a differing prefix. Eval mode, teacher-forced."""
    model.eval()
    out = {}
    for k in OWN_PREFIX_LENGTHS:
        rows = [(encode_text(tokenizer, e.abstract, settings.max_source_len), gold[:-1], tokens[:k])
                for e, (_, _, gold), tokens in zip(examples, encoded, greedy) if len(gold) - 1 > k and len(tokens) >= k]
        differing = [(src, title, own) for src, title, own in rows if own != title[:k]]
        sums = {"own": 0.0, "gold": 0.0, "n": 0.0}
        for first in range(0, len(differing), settings.batch_size):
            chunk = differing[first:first + settings.batch_size]
            for name, titles in (("own", [own + title[k:] for _, title, own in chunk]),
                                 ("gold", [title for _, title, _ in chunk])):
                batch = model.collate([model.build_example(src, t) for (src, _, _), t in zip(chunk, titles)])
                target = batch["tgt_out"]
                mask = (target != model.pad_id) & (torch.arange(target.size(1)) >= k)
                sums[name] += float(gold_nll(model(batch), target.clamp_min(0)).double()[mask].sum())
            sums["n"] += float(mask.sum())
        own, gold = (sums[n] / sums["n"] if sums["n"] else float("nan") for n in ("own", "gold"))
        out.update({f"own_prefix_differs_{k}": len(differing) / len(rows) if rows else float("nan"),
                    f"nll_after_own_prefix_{k}": own, f"nll_after_gold_prefix_{k}": gold,
                    f"own_prefix_gap_{k}": own - gold})
    return out


def _curves(totals: _Totals, measures: dict) -> dict:
    n = totals.by_position["n"]
    used = int((n > 0).sum())
    by_position = {name: (totals.by_position[key][:used] / n[:used]).tolist()
                   for name, key in (("teacher_forced", "tf"), ("free_running", "fr"))}
    robustness = [{"r": r, "nll": totals.mean(f"nll_corrupt_{r}"), "rouge_l": measures[f"rouge_l_corrupt_{r}"]}
                  for r in CORRUPTION_RATES]  # r = 0: the plain teacher-forced NLL, recomputed
    return {"accuracy_by_position": by_position, "robustness": robustness}


@torch.no_grad()
def diagnose(model, tokenizer, examples, settings: Settings, dropout: float | None = None) -> dict:
    """All measures for one model on labelled `examples`: {"n", "k", "seed", "dropout", "measures",
    "curves"} (diagnostics.json's per-run fields, less checkpoint/split/seconds).
    dropout: set hidden and attention dropout to it; None keeps the checkpoint's own rates.
    The model is changed in place (dropout rates, fast-dropout modules) and left in eval mode."""
    torch.manual_seed(settings.seed)
    if dropout is not None:
        model.set_dropout(dropout, dropout)
    if settings.fast_dropout and next(model.parameters()).device.type == "cpu":
        use_fast_dropout(model)  # Bernoulli masks as torch's (p within 1/131072), ~15% less time per pass
    hidden, attention = model.dropout_rates()
    encoded = encode_examples(model, tokenizer, examples, settings)
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]), i))  # less padding
    totals = _Totals()
    corrupt_texts = _teacher_forced_pass(model, tokenizer, encoded, order, settings, totals)
    greedy_tokens = _free_running(model, tokenizer, examples, encoded, settings, totals)
    greedy = [decode_ids(tokenizer, t) for t in greedy_tokens]
    ensemble = [decode_ids(tokenizer, t) for t in ensemble_greedy(model, encoded, order, settings)]
    references = [e.title for e in examples]
    measures = {name: totals.mean(name) for name in MEASURE_KEYS if name in totals.counts}
    measures["gap_nll"] = measures["nll_deterministic"] - measures["nll_ensemble"]
    measures["rouge_l_greedy_deterministic"] = score_corpus(references, greedy)["rouge-l"]
    measures["rouge_l_greedy_ensemble"] = score_corpus(references, ensemble)["rouge-l"]
    for r, (predicted, remainders) in corrupt_texts.items():
        measures[f"rouge_l_corrupt_{r}"] = score_corpus(remainders, predicted)["rouge-l"]
    measures.update(own_prefix_measures(model, tokenizer, examples, encoded, greedy_tokens, settings))
    curves = _curves(totals, measures)
    return {"n": len(examples), "k": settings.k, "seed": settings.seed,
            "dropout": {"hidden": float(hidden), "attention": float(attention)},
            "measures": {name: measures[name] for name in MEASURE_KEYS}, "curves": curves}
