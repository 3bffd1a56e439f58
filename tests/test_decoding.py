import pytest
import torch

from conftest import (assert_beam_size_one_equals_greedy, assert_cached_beam_search_equals_uncached,
                      assert_cached_equals_uncached, sources)
from seq2seq_rdrop.decoding import (_banned_tokens, _draw, _penalise_repeats, _warp, beam_search, greedy_search,
                                    sample)


@pytest.mark.parametrize("beam_size", [1, 3, 5])
def test_cached_beam_search_equals_uncached(tiny_unilm, beam_size):
    src = sources(tiny_unilm)
    assert_cached_beam_search_equals_uncached(tiny_unilm, src, beam_size, max_len=12)


def test_beam_size_one_equals_greedy(tiny_unilm):
    assert_beam_size_one_equals_greedy(tiny_unilm, max_len=12)  # BART: tests/test_bart.py


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


# ------------------------------------------------------- sampling, diverse beam search, repetition penalty


def tiny_model(family: str, tokenizer):
    """A tiny random UniLM or BART; `_copy`: with the copy head and its prefix-dependent bonuses switched on."""
    from seq2seq_rdrop.models import BartSeq2Seq, UniLM

    copy = family.endswith("_copy")
    torch.manual_seed(0)
    if family.startswith("unilm"):
        model = UniLM.from_scratch(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                   max_positions=128, copy=copy, copy_follow=copy, copy_coverage=copy)
    else:
        model = BartSeq2Seq.from_scratch(tokenizer, hidden_size=32, encoder_layers=2, decoder_layers=2, num_heads=2,
                                         ffn_size=64, max_positions=128, copy=copy, copy_follow=copy,
                                         copy_coverage=copy)
    if copy:  # bonuses that depend on the title so far: what the cache must carry exactly
        for bonus in (model.copy_head.follow, model.copy_head.coverage):
            torch.nn.init.normal_(bonus.weight, std=0.5)
    return model.eval()


FAMILIES = ["unilm", "bart", "unilm_copy", "bart_copy"]
SAMPLING = dict(num_return=4, max_len=10, temperature=1.3, top_k=20, top_p=0.9, seed=7, no_repeat_ngram=2)


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_sampling_equals_uncached_with_the_same_seed(tiny_tokenizer, family):
    model = tiny_model(family, tiny_tokenizer)
    assert_cached_equals_uncached(sample, model, sources(model), **SAMPLING, repetition_penalty=1.5)


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_diverse_beam_search_equals_uncached(tiny_tokenizer, family):
    model = tiny_model(family, tiny_tokenizer)
    assert_cached_equals_uncached(beam_search, model, sources(model), beam_size=6, beam_groups=3,
                                  diversity_penalty=1.0, num_return=6, max_len=10, no_repeat_ngram=2)


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_beam_search_with_repetition_penalty_equals_uncached(tiny_tokenizer, family):
    model = tiny_model(family, tiny_tokenizer)
    assert_cached_equals_uncached(beam_search, model, sources(model), beam_size=3, num_return=3, max_len=12,
                                  repetition_penalty=2.0)


def test_repetition_penalty_is_hugging_faces_on_the_titles_tokens():
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 30, generator=generator)  # positive and negative, as logits would be
    title = torch.tensor([[3, 5, 3], [0, 29, 7], [8, 8, 8], [1, 2, 4]])
    want = RepetitionPenaltyLogitsProcessor(1.7)(title, scores.clone())
    assert torch.equal(_penalise_repeats(scores, title, 1.7), want)
    assert torch.equal(_penalise_repeats(scores, title[:, :0], 1.7), scores)  # nothing generated yet
    assert torch.equal(_penalise_repeats(scores, title, 1.0), scores)


def test_sampling_warpers_are_hugging_faces():
    from transformers.generation.logits_process import (LogitsProcessorList, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)

    generator = torch.Generator().manual_seed(0)
    log_probs = torch.randn(6, 50, generator=generator).log_softmax(-1)
    for temperature, top_k, top_p in [(1.0, 0, 1.0), (0.7, 10, 1.0), (1.5, 0, 0.8), (1.2, 12, 0.5), (1.0, 1, 0.9)]:
        hf = LogitsProcessorList([TemperatureLogitsWarper(temperature)]
                                 + ([TopKLogitsWarper(top_k)] if top_k else [])
                                 + ([TopPLogitsWarper(top_p)] if top_p < 1 else []))
        assert torch.equal(_warp(log_probs, temperature, top_k, top_p), hf(None, log_probs.clone()))


def test_inverse_transform_draws_each_token_in_proportion_to_its_probability():
    probs = torch.tensor([[0.5, 0.0, 0.25, 0.125, 0.125]])
    grid = (torch.arange(64, dtype=torch.float64) + 0.5) / 64  # 64 evenly spread uniform numbers
    drawn = torch.stack([_draw(probs.log(), u.view(1), 1.0, 0, 1.0, eos_id=0) for u in grid])
    assert torch.bincount(drawn.view(-1), minlength=5).tolist() == [32, 0, 16, 8, 8]
    nothing_left = torch.full((1, 5), float("-inf"))
    assert _draw(nothing_left, grid[:1], 1.0, 0, 1.0, eos_id=3).tolist() == [3]


def ending_at_different_steps(model, monkeypatch) -> list[int]:
    """The model with its end token's log-prob raised by 3 (before, as after, a row's title ends), so rows end
    at different steps; returns the list that receives the number of rows of every step."""
    rows_per_step = []
    start, step = model.start, model.step

    def bonus(log_probs):
        return log_probs.index_add(1, torch.tensor([model.eos_id]), torch.full((log_probs.size(0), 1), 3.0))

    def started(src_ids, use_cache=True):
        state, log_probs = start(src_ids, use_cache=use_cache)
        return state, bonus(log_probs)

    def stepped(state, tokens):
        rows_per_step.append(tokens.size(0))
        state, log_probs = step(state, tokens)
        return state, bonus(log_probs)

    monkeypatch.setattr(model, "start", started)
    monkeypatch.setattr(model, "step", stepped)
    return rows_per_step


@pytest.mark.parametrize("family", FAMILIES)
def test_finished_rows_leave_the_batch_and_the_others_decode_as_if_alone(tiny_tokenizer, family, monkeypatch):
    model = tiny_model(family, tiny_tokenizer)
    rows_per_step = ending_at_different_steps(model, monkeypatch)
    src = sources(model)
    options = dict(max_len=12, no_repeat_ngram=2, repetition_penalty=1.5)
    greedy = greedy_search(model, src, **options)
    rows_per_step.clear()
    sampled = sample(model, src, **SAMPLING | options)
    assert rows_per_step == sorted(rows_per_step, reverse=True) and rows_per_step[-1] < rows_per_step[0]
    lengths = {len(h.tokens) for samples in sampled for h in samples}
    assert len(lengths) > 2 and max(lengths) < 12  # rows ended, at different steps
    for i in range(src.size(0)):
        alone = src[i:i + 1, : int((src[i] != model.pad_id).sum())]
        assert greedy_search(model, alone, **options)[0].tokens == greedy[i].tokens
        assert [h.tokens for h in sample(model, alone, **SAMPLING | options)[0]] == [h.tokens for h in sampled[i]]
    assert_cached_equals_uncached(sample, model, src, **SAMPLING | options)


def test_sampling_with_top_k_one_is_greedy_search(tiny_unilm):
    src = sources(tiny_unilm)
    greedy = greedy_search(tiny_unilm, src, max_len=12, no_repeat_ngram=2)
    sampled = sample(tiny_unilm, src, num_return=2, top_k=1, max_len=12, no_repeat_ngram=2)
    for g, samples in zip(greedy, sampled):
        assert [h.tokens for h in samples] == [g.tokens, g.tokens]
        assert [h.score for h in samples] == pytest.approx([g.score, g.score], abs=1e-5)


def test_a_seed_gives_an_abstract_the_same_samples_whatever_its_batch(tiny_unilm):
    src = sources(tiny_unilm)
    together = sample(tiny_unilm, src, **SAMPLING)
    for i in range(src.size(0)):
        alone = tiny_unilm.collate([tiny_unilm.build_example(
            [t for t in src[i].tolist()[1:] if t != tiny_unilm.pad_id][:-1], None)])["src_ids"]  # no padding now
        assert [h.tokens for h in sample(tiny_unilm, alone, **SAMPLING)[0]] == [h.tokens for h in together[i]]
    reversed_batch = sample(tiny_unilm, src.flip(0), **SAMPLING)[::-1]
    assert [[h.tokens for h in r] for r in reversed_batch] == [[h.tokens for h in r] for r in together]
    other_seed = sample(tiny_unilm, src, **{**SAMPLING, "seed": 8})
    assert [[h.tokens for h in r] for r in other_seed] != [[h.tokens for h in r] for r in together]
    for samples in together:
        assert [h.score for h in samples] == sorted((h.score for h in samples), reverse=True)


def test_diverse_groups_without_penalty_are_copies_of_one_smaller_beam_search(tiny_unilm):
    """diversity_penalty 0: each of the G groups is the same beam search of beam_size / G beams, so the pooled
    n-best holds each of that search's titles G times."""
    src = sources(tiny_unilm)
    small = beam_search(tiny_unilm, src, beam_size=2, num_return=2, max_len=10)
    grouped = beam_search(tiny_unilm, src, beam_size=6, beam_groups=3, diversity_penalty=0.0, num_return=6, max_len=10)
    for one, three in zip(small, grouped):
        assert sorted(h.tokens for h in three) == sorted(h.tokens for h in one for _ in range(3))


@pytest.mark.parametrize("family", ["unilm", "bart"])
def test_diverse_beam_search_returns_titles_that_start_differently(tiny_tokenizer, family):
    """A large diversity penalty makes each group avoid the first tokens the groups before it chose: five
    groups of one beam give five titles with five different first tokens (plain beam search's n-best here
    shares its first token)."""
    model = tiny_model(family, tiny_tokenizer)
    src = sources(model)
    plain = beam_search(model, src, beam_size=5, num_return=5, max_len=8)
    diverse = beam_search(model, src, beam_size=5, beam_groups=5, diversity_penalty=100.0, num_return=5, max_len=8)
    assert any(len({tuple(h.tokens[:1]) for h in hyps}) < 5 for hyps in plain)
    for hyps in diverse:
        assert len(hyps) == 5 and len({h.tokens[0] for h in hyps}) == 5


def test_beam_groups_must_divide_the_beams(tiny_unilm):
    with pytest.raises(ValueError, match="beam_groups=4 must divide decode.beam_size=6"):
        beam_search(tiny_unilm, sources(tiny_unilm), beam_size=6, beam_groups=4)


def test_generate_runs_the_search_decode_strategy_names(tiny_unilm, tiny_tokenizer):
    from seq2seq_rdrop.decoding import generate
    from seq2seq_rdrop.generation import DEFAULT_DECODE

    abstracts = ["深度学习图像分割", "基于网络的研究方法"]
    options = {**DEFAULT_DECODE, "strategy": "sample", "num_return": 3, "max_len": 6, "seed": 3}
    sampled = generate(tiny_unilm, tiny_tokenizer, abstracts, options, progress=False)
    assert [len(hyps) for hyps in sampled] == [3, 3]
    one_by_one = [generate(tiny_unilm, tiny_tokenizer, [a], options, batch_size=1, progress=False)[0]
                  for a in abstracts]
    assert [[h.tokens for h in r] for r in one_by_one] == [[h.tokens for h in r] for r in sampled]


def test_bart_beam_search_with_repetition_penalty_gives_hugging_faces_titles(tiny_tokenizer):
    """HF's beam search also applies its processors to log-softmaxed scores: same weights, same titles."""
    from conftest import load_script
    from seq2seq_rdrop.generation import DEFAULT_DECODE

    bench = load_script("bench_decode", "scripts/bench_decode.py")
    model = tiny_model("bart", tiny_tokenizer)
    src = model.collate([model.build_example(list(range(5, 5 + n)), None) for n in (3, 7, 2, 12, 9, 20)])["src_ids"]
    titles = {}
    for penalty in (1.0, 3.0):
        options = {**DEFAULT_DECODE, "beam_size": 3, "max_len": 10, "no_repeat_ngram": 0, "repetition_penalty": penalty}
        titles[penalty] = bench.ours(model, src, options)
        assert bench.hf_generate(model, src, bench.hf_generation_config(model, options)) == titles[penalty]
    assert titles[1.0] != titles[3.0]
