import pytest
import torch

from conftest import assert_cached_beam_search_equals_uncached
from seq2seq_rdrop.decoding import _banned_tokens, beam_search, greedy_search


def sources(model):
    return model.collate([model.build_example([5, 6, 7], None),
                          model.build_example([5, 6, 7, 10, 11, 12, 13], None),
                          model.build_example([14, 15], None)])["src_ids"]


@pytest.mark.parametrize("beam_size", [1, 3, 5])
def test_cached_beam_search_equals_uncached(tiny_unilm, beam_size):
    src = sources(tiny_unilm)
    assert_cached_beam_search_equals_uncached(tiny_unilm, src, beam_size, max_len=12)


def test_beam_size_one_equals_greedy(tiny_unilm):
    src = sources(tiny_unilm)
    greedy = greedy_search(tiny_unilm, src, max_len=12)
    beam = beam_search(tiny_unilm, src, beam_size=1, max_len=12)
    assert [h.tokens for h in greedy] == [b[0].tokens for b in beam]
    assert [h.score for h in greedy] == pytest.approx([b[0].score for b in beam], abs=1e-4)


def test_beam_search_scores_are_no_worse_than_greedy(tiny_unilm):
    src = sources(tiny_unilm)
    greedy = greedy_search(tiny_unilm, src, max_len=12)
    beam = beam_search(tiny_unilm, src, beam_size=4, max_len=12)
    for g, b in zip(greedy, beam):
        assert b[0].score >= g.score - 1e-6


def test_hypotheses_are_sorted_and_within_length_limits(tiny_unilm):
    src = sources(tiny_unilm)
    for hyps in beam_search(tiny_unilm, src, beam_size=4, max_len=6, min_len=3, num_return=4):
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert all(3 <= len(h.tokens) <= 6 for h in hyps)
        assert all(tiny_unilm.eos_id not in h.tokens and tiny_unilm.pad_id not in h.tokens for h in hyps)


def test_end_token_stops_a_hypothesis(tiny_unilm, monkeypatch):
    """A model that always prefers [SEP] after two tokens yields two-token titles."""
    model = tiny_unilm
    original = model._step_cached

    def step(state, tokens):
        log_probs = original(state, tokens)
        if state.prefix.size(1) >= 2:
            log_probs = torch.full_like(log_probs, -20.0)
            log_probs[:, model.eos_id] = 0.0
        return log_probs

    monkeypatch.setattr(model, "_step_cached", step)
    for hyps in beam_search(model, sources(model), beam_size=3, max_len=10):
        assert len(hyps[0].tokens) == 2


def test_no_repeat_ngram_blocks_repeats(tiny_unilm):
    assert _banned_tokens([1, 2, 3, 1], 2) == {2}
    assert _banned_tokens([1, 2, 1, 2], 3) == {1}
    assert _banned_tokens([4, 4], 1) == {4}
    for hyps in beam_search(tiny_unilm, sources(tiny_unilm), beam_size=3, max_len=20, no_repeat_ngram=2):
        bigrams = list(zip(hyps[0].tokens, hyps[0].tokens[1:]))
        assert len(bigrams) == len(set(bigrams))


def test_num_return_cannot_exceed_beam_size(tiny_unilm):
    with pytest.raises(ValueError, match="num_return"):
        beam_search(tiny_unilm, sources(tiny_unilm), beam_size=2, num_return=3)
