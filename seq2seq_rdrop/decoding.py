"""Beam search (plain or diverse), greedy search and sampling over any model with the `start`/`step`/`reorder`
interface.

Batched over examples x beams (or samples). With the model's key/value cache the abstract is encoded once
and each step feeds one token per row. Finished hypotheses are ranked by
sum(log p) / length**length_penalty; an example stops once it holds `beam_size` finished
hypotheses (fairseq-style early stopping), which makes beam size 1 exactly greedy search.

What a search sees at each step are the model's log-probabilities of the next token (with the copy head,
of the mixed vocabulary + copy distribution: no logits exist there), processed in Hugging Face's order:
  1. beam_groups > 1: HF's HammingDiversityLogitsProcessor (diverse beam search, `beam_search`);
  2. repetition_penalty: HF's RepetitionPenaltyLogitsProcessor (`_penalise_repeats`);
  3. the constraints: special tokens, the end token before min_len and repeated n-grams are ruled out.
HF's beam search applies its processors to log-softmaxed scores too, so beam search matches it exactly.
A hypothesis' score sums these processed log-probs (as HF's sequences_scores): with a penalty it is no
longer the model's plain log-probability. Sampling (`sample`) then draws from the processed
log-probs with HF's warpers (temperature, top-k, top-p); those are unchanged by log_softmax's per-row
shift, so they act as HF's do on logits. Only the repetition penalty differs from HF's sampling, which
applies it to raw logits: here it applies to log-probabilities, the one scale both model heads give.
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .decode_options import DEFAULT_DECODE
from .rerank import NO_RERANK, parse_weights, rerank_order

NEG_INF = float("-inf")
log = logging.getLogger(__name__)
# seconds per phase of generate() (tokenize, search, rerank), added up within timing_phases' block
_PHASE_TOTALS: ContextVar[dict | None] = ContextVar("phase_totals", default=None)


@contextmanager
def timing_phases(totals: dict):
    """Within the block (this thread only), generate() adds the seconds each of its phases takes to
    totals[phase]: where a decode's time goes (serve.py's /healthz, scripts/bench_serve.py)."""
    token = _PHASE_TOTALS.set(totals)
    try:
        yield totals
    finally:
        _PHASE_TOTALS.reset(token)


@contextmanager
def phase(name: str):
    """The block's seconds added to timing_phases' totals[name], when within one."""
    totals = _PHASE_TOTALS.get()
    if totals is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        totals[name] = totals.get(name, 0.0) + time.perf_counter() - start


@dataclass
class Hypothesis:
    tokens: list[int]  # generated ids, end token excluded
    score: float  # length-normalised sum of processed log-probabilities (what beams are ranked by)
    log_prob: float  # plain sum of the processed log-probabilities (the model's own without penalties)


def _banned_tokens(prefix: list[int], n: int) -> set[int]:
    """Tokens that would repeat an n-gram already present in `prefix`."""
    if n <= 0 or len(prefix) < n - 1:
        return set()
    context = tuple(prefix[len(prefix) - n + 1:]) if n > 1 else ()
    return {prefix[i + n - 1] for i in range(len(prefix) - n + 1) if tuple(prefix[i:i + n - 1]) == context}


def _constrain(log_probs, step, model, min_len, prefixes, no_repeat_ngram):
    """Rule out tokens that may not come next: specials, the end token before min_len, repeats."""
    log_probs = log_probs.clone()
    never = [i for i in model.special_ids() if i != model.eos_id]
    log_probs[:, never] = NEG_INF
    if step < min_len:
        log_probs[:, model.eos_id] = NEG_INF
    if no_repeat_ngram > 0:
        for row, prefix in enumerate(prefixes):
            banned = _banned_tokens(prefix, no_repeat_ngram)
            if banned:
                log_probs[row, list(banned)] = NEG_INF
    return log_probs


def _penalise_repeats(log_probs: torch.Tensor, prefix: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty, as HF's RepetitionPenaltyLogitsProcessor: the score s of every token already in
    the row's title becomes s * penalty if s < 0, else s / penalty (penalty > 1 discourages repeats).

    `prefix` [..., t] holds the generated title tokens only: not the abstract, not the decoder's start token
    (HF's decoder-only models would also penalise the prompt's tokens, which here would penalise copying
    from the abstract). Scores are log-probabilities (<= 0), so a repeated token's log-prob is multiplied by
    the penalty; rows are not renormalised, as in HF's beam search."""
    if penalty == 1.0 or prefix.size(-1) == 0:
        return log_probs
    seen = log_probs.gather(-1, prefix)
    return log_probs.scatter(-1, prefix, torch.where(seen < 0, seen * penalty, seen / penalty))


def _normalise(log_prob: float, length: int, length_penalty: float) -> float:
    return log_prob / (max(length, 1) ** length_penalty)


# ------------------------------------------------------------------------------ one token per row


def _row_by_row(model, src_ids, rows_per_abstract, pick, max_len, min_len, no_repeat_ngram, length_penalty,
                repetition_penalty, use_cache) -> list[Hypothesis]:
    """Each of `rows_per_abstract` rows per abstract extends its own title by the token
    `pick(log_probs, step, batch)` chooses (ids [len(batch)] from the processed log-probs [len(batch), V];
    `batch`: the titles its rows write) until the end token or max_len. Row b * rows_per_abstract + n is title n of
    abstract b.

    Rows that have emitted the end token leave the batch (`DecodeState.reorder` to the rows still
    decoding) once they are a quarter of it, so a step costs about what the titles still being written need,
    not the longest title of the batch (Hugging Face `generate` keeps finished rows in the batch until the
    last one ends); leaving in groups bounds the cost of moving the caches."""
    state, log_probs = model.start(src_ids, use_cache=use_cache)
    if rows_per_abstract > 1:
        expand = torch.arange(src_ids.size(0), device=src_ids.device).repeat_interleave(rows_per_abstract)
        state, log_probs = state.reorder(expand), log_probs.index_select(0, expand)
    rows = log_probs.size(0)
    tokens: list[list[int]] = [[] for _ in range(rows)]
    totals = [0.0] * rows
    ended = [False] * rows
    batch = list(range(rows))  # the title each row of `state` and `log_probs` writes
    for step in range(max_len):
        log_probs = _constrain(log_probs, step, model, min_len, [tokens[r] for r in batch], no_repeat_ngram)
        log_probs = _penalise_repeats(log_probs, state.prefix, repetition_penalty)
        chosen = pick(log_probs, step, batch)
        chosen_lp = log_probs.gather(1, chosen[:, None])[:, 0].tolist()
        for r, token, lp in zip(batch, chosen.tolist(), chosen_lp):
            if ended[r]:
                continue  # a finished row still in the batch: its token is unused
            totals[r] += lp
            if token == model.eos_id:
                ended[r] = True
            else:
                tokens[r].append(token)
        decoding = [i for i, r in enumerate(batch) if not ended[r]]
        if not decoding or step + 1 == max_len:
            break
        if len(decoding) <= 0.75 * len(batch):
            keep = torch.tensor(decoding, device=chosen.device)
            state, chosen, batch = state.reorder(keep), chosen.index_select(0, keep), [batch[i] for i in decoding]
        state, log_probs = model.step(state, chosen)
    return [Hypothesis(t, _normalise(s, len(t) + int(e), length_penalty), s) for t, s, e in zip(tokens, totals, ended)]


@torch.no_grad()
def greedy_search(model, src_ids, max_len=32, min_len=1, no_repeat_ngram=0, length_penalty=1.0,
                  repetition_penalty=1.0, use_cache=True) -> list[Hypothesis]:
    """The most likely token at every step, until the end token or max_len."""
    return _row_by_row(model, src_ids, 1, lambda log_probs, step, batch: log_probs.argmax(dim=-1), max_len,
                       min_len, no_repeat_ngram, length_penalty, repetition_penalty, use_cache)


@torch.no_grad()
def sample(model, src_ids, num_return=1, max_len=32, min_len=1, length_penalty=1.0, no_repeat_ngram=0,
           temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=0, use_cache=True
           ) -> list[list[Hypothesis]]:
    """For each abstract in `src_ids` [B, S], `num_return` titles drawn token by token from the processed
    distribution, reshaped as HF's warpers do in their order: divided by `temperature`, cut to the `top_k` most
    likely tokens (0 = all), then to the smallest most-likely set holding `top_p` of the probability (1 = all).
    Sorted best score first (the score beam search would give them).

    Reproducible: sample n of an abstract is driven by uniform numbers drawn from a generator seeded by
    (`seed`, the abstract's tokens, n) alone, and the token is found by inverse transform sampling. So the same
    seed gives the same titles for an abstract whatever else shares its batch, however it is padded, wherever
    it stands in the input, and with the cache or without (up to float rounding at an interval's edge)."""
    uniforms = _uniforms(src_ids, model.pad_id, num_return, max_len, seed).to(src_ids.device)

    def draw(log_probs, step, batch):
        return _draw(log_probs, uniforms[batch, step], temperature, top_k, top_p, model.eos_id)

    hyps = _row_by_row(model, src_ids, num_return, draw, max_len, min_len, no_repeat_ngram, length_penalty,
                       repetition_penalty, use_cache)
    return [sorted(hyps[b * num_return:(b + 1) * num_return], key=lambda h: h.score, reverse=True)
            for b in range(src_ids.size(0))]


def _uniforms(src_ids, pad_id: int, per_abstract: int, steps: int, seed: int) -> torch.Tensor:
    """[B * per_abstract, steps] uniform numbers in [0, 1) (float64); row b * per_abstract + n drives sample n of
    abstract b. Its generator's seed hashes (seed, the abstract's non-padding tokens, n): a stable hash, not
    Python's per-process one, and no shared stream whose order would depend on the batch."""
    rows = []
    for ids in src_ids.tolist():
        abstract = ",".join(str(t) for t in ids if t != pad_id)
        for n in range(per_abstract):
            digest = hashlib.blake2b(f"{seed}|{abstract}|{n}".encode(), digest_size=8).digest()
            generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
            rows.append(torch.rand(steps, generator=generator, dtype=torch.float64))
    return torch.stack(rows)


def _draw(log_probs, uniforms, temperature: float, top_k: int, top_p: float, eos_id: int) -> torch.Tensor:
    """One token per row: the token whose cumulative-probability interval holds the row's uniform number, under
    the distribution _warp gives. A row with no token left (every one ruled out) takes the end token, at
    score -inf."""
    scores = _warp(log_probs, temperature, top_k, top_p)
    cdf = scores.double().softmax(dim=-1).nan_to_num(0.0).cumsum(dim=-1)
    drawn = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None], right=True)[:, 0]
    drawn = drawn.clamp_max(scores.size(-1) - 1)  # a uniform rounding onto the last edge
    return torch.where(torch.isfinite(scores.max(dim=-1).values), drawn, torch.full_like(drawn, eos_id))


def _warp(log_probs, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Sampling scores [rows, V], as HF's TemperatureLogitsWarper, TopKLogitsWarper (top_k 0: off) and
    TopPLogitsWarper (top_p 1: off) give them in this order: tokens cut are -inf."""
    scores = log_probs.float() / temperature
    if top_k > 0:
        kth_best = scores.topk(min(top_k, scores.size(-1)), dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth_best, NEG_INF)
    if top_p < 1.0:
        scores = _nucleus(scores, top_p)
    return scores


def _nucleus(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """HF's TopPLogitsWarper: drop the least likely tokens whose probabilities sum to at most 1 - top_p
    (the most likely token always stays)."""
    ascending, order = scores.sort(dim=-1, descending=False)
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[:, -1] = False
    return scores.masked_fill(remove.scatter(1, order, remove), NEG_INF)


# ------------------------------------------------------------------------------ beam search


@torch.no_grad()
def beam_search(model, src_ids, beam_size=3, max_len=32, min_len=1, length_penalty=1.0, no_repeat_ngram=0,
                num_return=1, use_cache=True, beam_groups=1, diversity_penalty=0.0, repetition_penalty=1.0
                ) -> list[list[Hypothesis]]:
    """For each abstract in `src_ids` [B, S], its `num_return` best titles, best first.

    beam_groups > 1 is diverse beam search, as HF's num_beam_groups / diversity_penalty: the beams form groups
    of beam_size / beam_groups, each a beam search of its own, all starting from the empty title. At each step
    the groups choose in turn, and group g's scores are lowered by diversity_penalty x the number of times each
    token was chosen by groups < g at this step for the same abstract (HF's HammingDiversityLogitsProcessor).
    Each group keeps its beam_size / beam_groups best finished titles; the n-best pools them, best first."""
    if num_return > beam_size:
        raise ValueError(f"decode.num_return={num_return} cannot exceed decode.beam_size={beam_size}")
    if beam_size % beam_groups:
        raise ValueError(f"decode.beam_groups={beam_groups} must divide decode.beam_size={beam_size}")
    B, K, G = src_ids.size(0), beam_size, beam_groups
    device = src_ids.device
    state, log_probs = model.start(src_ids, use_cache=use_cache)
    expand = torch.arange(B, device=device).repeat_interleave(K)
    state, log_probs = state.reorder(expand), log_probs.index_select(0, expand)
    # Only the first beam of each group is live at the start; the copies would repeat it.
    beam_scores = torch.full((B, G, K // G), NEG_INF, device=device)
    beam_scores[:, :, 0] = 0.0
    prefixes: list[list[int]] = [[] for _ in range(B * K)]  # row b * K + k: beam k of example b (groups in order)
    search = _Groups(finished=[[] for _ in range(B * G)], done=[False] * (B * G), eos_id=model.eos_id,
                     length_penalty=length_penalty, diversity_penalty=diversity_penalty,
                     repetition_penalty=repetition_penalty)

    for step in range(max_len):
        log_probs = _constrain(log_probs, step, model, min_len, prefixes, no_repeat_ngram)
        next_beams = search.next_beams(log_probs, beam_scores, state.prefix, prefixes)
        if all(search.done):
            break
        rows, tokens, scores = zip(*next_beams)
        beam_scores = torch.tensor(scores, device=device).view(beam_scores.shape)
        prefixes = [prefixes[row] + [token] for row, token, _ in next_beams]
        state = state.reorder(torch.tensor(rows, device=device))
        state, log_probs = model.step(state, torch.tensor(tokens, device=device))
    else:
        _finish_live_beams(beam_scores.view(B * G, -1), prefixes, search.finished, search.done, length_penalty)
    return [_pool(search.finished[b * G:(b + 1) * G], K // G, num_return) for b in range(B)]


@dataclass
class _Groups:
    """The bookkeeping of beam search over groups of beams: `finished` hypotheses and `done` per group of each
    example (index b * G + g; rows (b * G + g) * per_group + j are beam j of that group), and the penalties."""

    finished: list[list[Hypothesis]]
    done: list[bool]
    eos_id: int
    length_penalty: float
    diversity_penalty: float
    repetition_penalty: float

    def next_beams(self, log_probs, beam_scores, prefix_ids, prefixes) -> list[tuple]:
        """One step: every group's next live beams (row followed, token, score), in row order. The groups choose
        in turn, each penalised for what the groups before it chose at this step."""
        B, G, k = beam_scores.shape
        V = log_probs.size(-1)
        grouped = log_probs.view(B, G, k, V)
        prefix_ids = prefix_ids.view(B, G, k, prefix_ids.size(-1))  # (-1 fails on the empty first prefix)
        chosen = torch.zeros(B, V, device=log_probs.device)  # times each token was chosen at this step, per example
        beams: list[list[tuple]] = [[] for _ in range(B * G)]
        for g in range(G):
            scores = grouped[:, g]
            if g > 0 and self.diversity_penalty:
                scores = scores - self.diversity_penalty * chosen[:, None, :]
            scores = _penalise_repeats(scores, prefix_ids[:, g], self.repetition_penalty)
            candidates = (beam_scores[:, g, :, None] + scores.float()).view(B, k * V)
            top_scores, top_index = candidates.topk(2 * k, dim=1)
            top_scores, top_index = top_scores.tolist(), top_index.tolist()
            for b in range(B):
                beams[b * G + g] = self._group_beams(b * G + g, k, V, top_scores[b], top_index[b], prefixes)
            if self.diversity_penalty and g < G - 1:
                live = [(b, token) for b in range(B) for _, token, score in beams[b * G + g] if score != NEG_INF]
                if live:
                    examples, tokens = zip(*live)
                    index = (torch.tensor(examples, device=chosen.device), torch.tensor(tokens, device=chosen.device))
                    chosen.index_put_(index, torch.ones(len(live), device=chosen.device), accumulate=True)
        return [beam for group in beams for beam in group]

    def _group_beams(self, e, k, V, top_scores, top_index, prefixes) -> list[tuple]:
        """Group e's k next beams; a done group parks its rows on a harmless token (the tensor shapes stay)."""
        alive = []
        if not self.done[e]:
            alive = _next_beams(e * k, k, V, top_scores, top_index, prefixes, self.finished[e], self.eos_id,
                                self.length_penalty)
            self.done[e] = len(self.finished[e]) >= k or not alive
        if self.done[e]:
            alive = [(e * k, self.eos_id, NEG_INF)] * k
        return alive + [alive[-1][:2] + (NEG_INF,)] * (k - len(alive))


def _next_beams(first_row, K, V, top_scores, top_index, prefixes, finished, eos_id, length_penalty) -> list[tuple]:
    """The next live beams (row followed, token, score) of the K beams at rows first_row.., at most K, from their
    2K best candidates (flat indices beam * V + token). An end token among the K best finishes a hypothesis
    (into `finished`)."""
    alive = []
    for rank, (score, flat) in enumerate(zip(top_scores, top_index)):
        if score == NEG_INF:
            break
        beam, token = divmod(flat, V)
        row = first_row + beam
        if token == eos_id:
            if rank < K:  # an end token only counts if it ranks among the live beams
                prefix = prefixes[row]
                finished.append(Hypothesis(list(prefix), _normalise(score, len(prefix) + 1, length_penalty), score))
        else:
            alive.append((row, token, score))
        if len(alive) == K:
            break
    return alive


def _finish_live_beams(beam_scores, prefixes, finished, done, length_penalty) -> None:
    """max_len reached: the live beams of the groups not done count as finished, without an end token.
    beam_scores [groups, K]: the K beams of group e are rows e * K + k."""
    B, K = beam_scores.shape
    for b in range(B):
        if done[b]:
            continue
        for k in range(K):
            score = float(beam_scores[b, k])
            if score != NEG_INF:
                prefix = prefixes[b * K + k]
                finished[b].append(Hypothesis(list(prefix), _normalise(score, len(prefix), length_penalty), score))


def _pool(groups: list[list[Hypothesis]], per_group: int, num_return: int) -> list[Hypothesis]:
    """One example's n-best: each group's `per_group` best finished titles (what HF's beam scorer keeps), pooled,
    best first."""
    def best(hyps):
        return sorted(hyps, key=lambda h: h.score, reverse=True)

    pooled = [h for hyps in groups for h in best(hyps)[:per_group]]
    return best(pooled)[:num_return] or [Hypothesis([], NEG_INF, NEG_INF)]


# ------------------------------------------------------------------------------ raw abstracts

SEARCHES = {"beam": beam_search, "sample": sample}  # decode.strategy -> the search that runs it


def pick_search(decode_cfg: dict):
    """(search, keyword options): the search decode_cfg's `strategy` names (default beam) and those of its
    decoding options that search takes (not the other search's, nor e.g. training's batch_size)."""
    search = SEARCHES[decode_cfg.get("strategy", "beam")]
    takes = inspect.signature(search).parameters
    return search, {k: decode_cfg[k] for k in DEFAULT_DECODE if k in decode_cfg and k in takes}


@torch.no_grad()
def generate(model, tokenizer, abstracts: list[str], decode_cfg: dict, batch_size: int = 32,
             max_source_len: int = 256, device="cpu", progress: bool = True) -> list[list[Hypothesis]]:
    """Titles for raw abstracts. Batches are formed from abstracts of similar length (less padding);
    results come back in input order. decode_cfg's `strategy` picks the search (pick_search)."""
    from .tokenizer import encode_text

    was_training = model.training
    model.eval()
    with phase("tokenize"):
        encoded = [model.build_example(encode_text(tokenizer, a, max_source_len), None)[0] for a in abstracts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    results: list = [None] * len(encoded)
    search, options = pick_search(decode_cfg)
    weights = parse_weights(decode_cfg.get("rerank", NO_RERANK))
    if weights and options.get("beam_size", 1) > 1:  # re-rank the whole n-best, then keep num_return of it
        options["num_return"] = options["beam_size"]
    extra = decode_cfg.get("span_candidates", 0) if weights else 0
    selector = getattr(model, "content_selector", None) if weights.get("sel") or extra else None  # selector.attach
    if (weights.get("sel") or extra) and selector is None:
        log.warning("decode.rerank weighs sel or decode.span_candidates is set, but the model has no content "
                    "selector (train.py selector=FILE): no selector spans are used")
    bar = tqdm(total=len(order), desc="decode", disable=not progress, leave=False)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = model.collate([(encoded[i], None, None) for i in chunk])
        with phase("select"):
            selected = selector.spans([abstracts[i] for i in chunk]) if selector else [()] * len(chunk)
        with phase("search"):
            searched = search(model, batch["src_ids"].to(device), **options)
            if selector and extra:
                sources = [encode_text(tokenizer, abstracts[i], max_source_len) for i in chunk]
                searched = with_span_candidates(model, tokenizer, sources, searched, selected, extra, options, device)
        with phase("rerank"):
            for i, hyps, spans in zip(chunk, searched, selected):
                results[i] = reranked(hyps, weights, tokenizer, abstracts[i], spans)[:decode_cfg.get("num_return", 1)]
        bar.update(len(chunk))
    bar.close()
    model.train(was_training)
    return results


@torch.no_grad()
def with_span_candidates(model, tokenizer, sources, n_bests, selected, count: int, options: dict,
                         device) -> list[list[Hypothesis]]:
    """Each n-best with the `count` most likely spans of its abstract's `selected` (the content selector's, text
    and probability) appended as hypotheses, scored by the model (teacher-forced sum log p, end token included, as
    beam search scores a finished title). sources: the abstracts' token ids (encode_text). A span the n-best
    holds already, longer than options' max_len, or with a character the tokenizer does not know, is left out."""
    from .tokenizer import decode_ids, encode_text

    jobs = []  # (row, token ids)
    for row, (hyps, spans) in enumerate(zip(n_bests, selected)):
        known = {decode_ids(tokenizer, h.tokens) for h in hyps}
        for text, _ in spans[:count]:
            ids = encode_text(tokenizer, text.lower())
            if (0 < len(ids) <= options.get("max_len", DEFAULT_DECODE["max_len"]) and tokenizer.unk_token_id not in ids
                    and decode_ids(tokenizer, ids) not in known):
                jobs.append((row, ids))
    out = [list(hyps) for hyps in n_bests]
    if not jobs:
        return out
    built = [model.build_example(sources[row], ids) for row, ids in jobs]
    batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in model.collate(built).items()}
    log_probs = model(batch)
    target = batch["tgt_out"]
    picked = (log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1) * (target != model.pad_id)).sum(1).tolist()
    for (row, ids), total in zip(jobs, picked):
        out[row].append(Hypothesis(list(ids), _normalise(total, len(ids) + 1, options.get("length_penalty", 1.0)), total))
    return out


def reranked(hyps: list[Hypothesis], weights: dict[str, float], tokenizer, abstract: str,
             selected=()) -> list[Hypothesis]:
    """`hyps` re-ordered by decode.rerank's weighted features (rerank.py); as they are without weights.
    selected: the content selector's (span, probability) pairs of the abstract, for the sel feature."""
    finished = [h for h in hyps if h.log_prob > NEG_INF]  # an unfinished search's placeholder stays last
    if not weights or len(finished) < 2:
        return hyps
    from .tokenizer import decode_ids

    titles = [decode_ids(tokenizer, h.tokens) for h in finished]
    order = rerank_order(weights, titles, [h.score for h in finished], [h.log_prob for h in finished], abstract,
                         selected)
    return [finished[i] for i in order] + [h for h in hyps if h.log_prob == NEG_INF]
