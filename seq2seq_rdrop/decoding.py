"""Beam search (and greedy search) over any model with the `start`/`step`/`reorder` interface.

Batched over examples x beams. With the model's key/value cache the abstract is encoded once
and each step feeds one token per beam. Finished hypotheses are ranked by
sum(log p) / length**length_penalty; an example stops once it holds `beam_size` finished
hypotheses (fairseq-style early stopping), which makes beam size 1 exactly greedy search.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .generation import DEFAULT_DECODE

NEG_INF = float("-inf")


@dataclass
class Hypothesis:
    tokens: list[int]  # generated ids, end token excluded
    score: float  # length-normalised log-probability (what beams are ranked by)
    log_prob: float  # plain sum of log-probabilities


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


def _normalise(log_prob: float, length: int, length_penalty: float) -> float:
    return log_prob / (max(length, 1) ** length_penalty)


@torch.no_grad()
def greedy_search(model, src_ids, max_len=32, min_len=1, no_repeat_ngram=0, length_penalty=1.0,
                  use_cache=True) -> list[Hypothesis]:
    """The most likely token at every step, until the end token or max_len."""
    B = src_ids.size(0)
    state, log_probs = model.start(src_ids, use_cache=use_cache)
    tokens: list[list[int]] = [[] for _ in range(B)]
    totals = [0.0] * B
    ended = [False] * B
    for step in range(max_len):
        log_probs = _constrain(log_probs, step, model, min_len, tokens, no_repeat_ngram)
        best_lp, best = log_probs.max(dim=-1)
        for b in range(B):
            if ended[b]:
                continue
            totals[b] += float(best_lp[b])
            if int(best[b]) == model.eos_id:
                ended[b] = True
            else:
                tokens[b].append(int(best[b]))
        if all(ended):
            break
        state, log_probs = model.step(state, best)
    return [Hypothesis(t, _normalise(s, len(t) + int(e), length_penalty), s) for t, s, e in zip(tokens, totals, ended)]


@torch.no_grad()
def beam_search(model, src_ids, beam_size=3, max_len=32, min_len=1, length_penalty=1.0, no_repeat_ngram=0,
                num_return=1, use_cache=True) -> list[list[Hypothesis]]:
    """For each abstract in `src_ids` [B, S], its `num_return` best titles, best first."""
    if num_return > beam_size:
        raise ValueError(f"decode.num_return={num_return} cannot exceed decode.beam_size={beam_size}")
    B, K = src_ids.size(0), beam_size
    device = src_ids.device
    state, log_probs = model.start(src_ids, use_cache=use_cache)
    expand = torch.arange(B, device=device).repeat_interleave(K)
    state, log_probs = state.reorder(expand), log_probs.index_select(0, expand)
    # Only the first beam of each example is live at the start; the copies would repeat it.
    beam_scores = torch.full((B, K), NEG_INF, device=device)
    beam_scores[:, 0] = 0.0
    prefixes: list[list[int]] = [[] for _ in range(B * K)]  # row b * K + k: beam k of example b
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = [False] * B
    V = log_probs.size(-1)

    for step in range(max_len):
        log_probs = _constrain(log_probs, step, model, min_len, prefixes, no_repeat_ngram)
        candidates = (beam_scores.view(-1, 1) + log_probs.float()).view(B, K * V)
        top_scores, top_index = candidates.topk(2 * K, dim=1)
        top_scores, top_index = top_scores.tolist(), top_index.tolist()

        next_beams = []  # (row followed, token, score), K per example
        for b in range(B):
            alive = []
            if not done[b]:
                alive = _next_beams(b, K, V, top_scores[b], top_index[b], prefixes, finished[b], model.eos_id,
                                    length_penalty)
                done[b] = len(finished[b]) >= K or not alive
            if done[b]:  # keep the tensor shapes: park dead rows on a harmless token
                alive = [(b * K, model.eos_id, NEG_INF)] * K
            alive += [alive[-1][:2] + (NEG_INF,)] * (K - len(alive))
            next_beams += alive
        if all(done):
            break
        rows, tokens, scores = zip(*next_beams)
        beam_scores = torch.tensor(scores, device=device).view(B, K)
        prefixes = [prefixes[row] + [token] for row, token, _ in next_beams]
        state = state.reorder(torch.tensor(rows, device=device))
        state, log_probs = model.step(state, torch.tensor(tokens, device=device))
    else:
        _finish_live_beams(beam_scores, prefixes, finished, done, length_penalty)
    return [sorted(hyps, key=lambda h: h.score, reverse=True)[:num_return] or [Hypothesis([], NEG_INF, NEG_INF)]
            for hyps in finished]


def _next_beams(b, K, V, top_scores, top_index, prefixes, finished, eos_id, length_penalty) -> list[tuple]:
    """Example b's next live beams (row followed, token, score), at most K, from its 2K best candidates
    (flat indices beam * V + token). An end token among the K best finishes a hypothesis (into `finished`)."""
    alive = []
    for rank, (score, flat) in enumerate(zip(top_scores, top_index)):
        if score == NEG_INF:
            break
        beam, token = divmod(flat, V)
        row = b * K + beam
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
    """max_len reached: the live beams of the examples not done count as finished, without an end token."""
    B, K = beam_scores.shape
    for b in range(B):
        if done[b]:
            continue
        for k in range(K):
            score = float(beam_scores[b, k])
            if score != NEG_INF:
                prefix = prefixes[b * K + k]
                finished[b].append(Hypothesis(list(prefix), _normalise(score, len(prefix), length_penalty), score))


@torch.no_grad()
def generate(model, tokenizer, abstracts: list[str], decode_cfg: dict, batch_size: int = 32,
             max_source_len: int = 256, device="cpu", progress: bool = True) -> list[list[Hypothesis]]:
    """Titles for raw abstracts. Batches are formed from abstracts of similar length (less padding);
    results come back in input order."""
    from .tokenizer import encode_text

    was_training = model.training
    model.eval()
    encoded = [model.build_example(encode_text(tokenizer, a, max_source_len), None)[0] for a in abstracts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    results: list = [None] * len(encoded)
    options = {k: decode_cfg[k] for k in DEFAULT_DECODE if k in decode_cfg}  # not e.g. training's batch_size
    bar = tqdm(total=len(order), desc="decode", disable=not progress, leave=False)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = model.collate([(encoded[i], None, None) for i in chunk])
        for i, hyps in zip(chunk, beam_search(model, batch["src_ids"].to(device), **options)):
            results[i] = hyps
        bar.update(len(chunk))
    bar.close()
    model.train(was_training)
    return results
