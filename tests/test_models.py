import inspect

import torch

import pytest
from conftest import assert_cached_beam_search_equals_uncached

from seq2seq_rdrop.models import CopyHead, UniLM, load_model, unilm_mask


def test_unilm_mask_title_position_cannot_see_later_title_positions():
    src_valid = torch.tensor([[True, True, True]])
    tgt_valid = torch.tensor([[True, True, True, True]])
    allowed = unilm_mask(src_valid, tgt_valid)[0]  # [7, 7]
    S = 3
    for j in range(4):
        q = S + j
        assert allowed[q, :S].all(), "a title position sees the whole abstract"
        assert allowed[q, S:S + j + 1].all(), "a title position sees itself and earlier title positions"
        assert not allowed[q, S + j + 1:].any(), "a title position never sees later title positions"


def test_unilm_mask_abstract_position_cannot_see_any_title_position():
    allowed = unilm_mask(torch.ones(1, 4, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool))[0]
    assert allowed[:4, :4].all()
    assert not allowed[:4, 4:].any()


def test_unilm_mask_never_attends_to_padding():
    allowed = unilm_mask(torch.tensor([[True, True, False]]), torch.tensor([[True, False]]))[0]
    assert not allowed[:, 2].any() and not allowed[:, 4].any()


def test_title_outputs_do_not_depend_on_later_title_tokens(tiny_unilm):
    """Changing title token 3 leaves the predictions made from positions before it unchanged."""
    model = tiny_unilm
    a = model.collate([model.build_example([5, 6, 7, 8], [9, 10, 11, 12])])
    b = {k: v.clone() for k, v in a.items()}
    b["tgt_in"][0, 3] = 13
    out_a, out_b = model(a), model(b)
    # output j is predicted from the abstract's [SEP] (j=0) or title token j-1: outputs 0..3 only see tokens < 3
    assert torch.allclose(out_a[0, :4], out_b[0, :4], atol=1e-6)
    assert not torch.allclose(out_a[0, 4], out_b[0, 4])


def test_padding_does_not_change_predictions(tiny_unilm):
    model = tiny_unilm
    alone = model(model.collate([model.build_example([5, 6, 7], [8, 9])]))
    padded = model(model.collate([model.build_example([5, 6, 7], [8, 9]),
                                  model.build_example([5, 6, 7, 10, 11, 12], [8, 9, 10, 11])]))
    assert torch.allclose(alone[0], padded[0, :3], atol=1e-5)


def test_loss_positions_are_title_tokens_plus_end(tiny_unilm):
    model = tiny_unilm
    src, tgt_in, tgt_out = model.build_example([5, 6], [7, 8, 9])
    assert src == [model.bos_id, 5, 6, model.eos_id]
    assert tgt_in == [7, 8, 9] and tgt_out == [7, 8, 9, model.eos_id]
    assert model(model.collate([(src, tgt_in, tgt_out)])).shape[:2] == (1, 4)


def test_cached_steps_equal_the_full_forward(tiny_unilm):
    model = tiny_unilm
    batch = model.collate([model.build_example([5, 6, 7], [8, 9, 10]), model.build_example([5, 6, 7, 11, 12], [8, 9, 13])])
    full = model(batch)
    state, log_probs = model.start(batch["src_ids"])
    assert torch.allclose(log_probs, full[:, 0], atol=1e-5)
    for j in range(3):
        state, log_probs = model.step(state, batch["tgt_in"][:, j])
        assert torch.allclose(log_probs, full[:, j + 1], atol=1e-5)


def test_cache_keyword_is_one_the_installed_transformers_layers_take():
    """Both families pass their cache under CACHE_KEYWORD; a layer given a name it does not know would
    ignore the cache silently (transformers renamed past_key_values to cache within 5.x)."""
    from transformers.models.bart.modeling_bart import BartDecoder
    from transformers.models.bert.modeling_bert import BertLayer

    from seq2seq_rdrop.models.base import CACHE_KEYWORD
    for forward in (BertLayer.forward, BartDecoder.forward):
        assert CACHE_KEYWORD in inspect.signature(forward).parameters


def test_lm_head_is_tied_to_the_input_embeddings(tiny_unilm):
    assert tiny_unilm.bert.cls.predictions.decoder.weight is tiny_unilm.input_embeddings().weight


def test_save_and_load_round_trip(tiny_unilm, tiny_tokenizer, tmp_path):
    tiny_unilm.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    again = load_model(tmp_path, tiny_tokenizer).eval()
    batch = tiny_unilm.collate([tiny_unilm.build_example([5, 6, 7], [8, 9])])
    assert isinstance(again, UniLM)
    assert torch.allclose(again(batch), tiny_unilm(batch))


def test_cache_reorder_across_abstracts_stays_exact(tiny_unilm):
    """Rows that switch abstract get the whole cache moved, not only the title part."""
    import torch

    model = tiny_unilm
    batch = model.collate([model.build_example([5, 6, 7], [8, 9]), model.build_example([10, 11, 12], [13, 9])])
    state, _ = model.start(batch["src_ids"])
    state, _ = model.step(state, batch["tgt_in"][:, 0])
    swap = torch.tensor([1, 0])
    state = state.reorder(swap)
    state, log_probs = model.step(state, batch["tgt_in"][swap, 1])
    full = model({k: v[swap] for k, v in batch.items()})
    assert torch.allclose(log_probs, full[:, 2], atol=1e-5)


def test_reorder_among_one_abstracts_beams_leaves_encoder_states_in_place(tiny_unilm):
    """Beam search only swaps rows among the beams of one abstract after the first expansion; then the
    per-abstract tensors (encoder states, masks) are kept as they are, and the next step stays exact."""
    import torch

    model = tiny_unilm
    batch = model.collate([model.build_example([5, 6, 7], [8, 9]), model.build_example([10, 11, 12], [13, 9])])
    expand = torch.tensor([0, 0, 1, 1])  # two beams per abstract
    state, _ = model.start(batch["src_ids"])
    state = state.reorder(expand)
    tokens = torch.tensor([8, 13, 13, 8])
    state, _ = model.step(state, tokens)
    within = torch.tensor([1, 1, 3, 2])  # beam 0 of abstract 0 copies beam 1; abstract 1 swaps its beams
    before = state.extras["src_hidden"]
    state = state.reorder(within)
    assert state.extras["src_hidden"] is before
    state, log_probs = model.step(state, torch.tensor([9, 9, 9, 9]))
    rows = expand[within]
    full = model({"src_ids": batch["src_ids"][rows],
                  "tgt_in": torch.stack([tokens[within], torch.full((4,), 9)], dim=1)})
    assert torch.allclose(log_probs, full[:, 2], atol=1e-5)


# --------------------------------------------------------------------------- copy head


@pytest.fixture
def copy_follow_unilm(tiny_tokenizer):
    torch.manual_seed(0)
    model = UniLM.from_scratch(tiny_tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                               max_positions=128, copy=True, copy_follow=True, copy_coverage=True).eval()
    for bonus in (model.copy_head.follow, model.copy_head.coverage):  # bonuses that depend on the state
        torch.nn.init.normal_(bonus.weight, std=0.5)
        torch.nn.init.normal_(bonus.bias)
    return model


def test_follow_bonus_moves_copy_attention_to_the_successor_of_the_fed_token():
    """With content attention switched off (uniform), the only preference left is the follow bonus:
    after feeding token 7, the copy mass goes to whatever follows 7 in the abstract (token 9)."""
    torch.manual_seed(0)
    head = CopyHead(8, follow=True)
    torch.nn.init.zeros_(head.query.weight)
    torch.nn.init.zeros_(head.query.bias)
    torch.nn.init.constant_(head.gate.bias, -20.0)  # copy only
    src = torch.tensor([[5, 6, 7, 9, 10]])
    vocab = torch.zeros(1, 2, 12).log_softmax(-1)
    hidden, src_hidden = torch.randn(1, 2, 8), torch.randn(1, 5, 8)
    fed = torch.tensor([[7, 11]])  # 7 occurs in the abstract, 11 does not
    with torch.no_grad():
        probs = head(vocab, hidden, src_hidden, src, torch.ones_like(src, dtype=torch.bool), fed).exp()
    assert probs[0, 0].argmax() == 9 and probs[0, 0, 9] > 0.5
    assert torch.allclose(probs[0, 1, [5, 6, 7, 9, 10]], torch.full((5,), 0.2), atol=1e-4), "no match: uniform"


def test_coverage_bonus_acts_on_positions_whose_token_the_title_already_holds():
    """Uniform content attention, coverage bonus -20: once token 6 has been fed, copying 6 is
    (almost) ruled out; before that it was as likely as any other abstract token."""
    head = CopyHead(8, coverage=True)
    for layer in (head.query, head.coverage):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    torch.nn.init.constant_(head.coverage.bias, -20.0)
    torch.nn.init.constant_(head.gate.bias, -20.0)  # copy only
    src = torch.tensor([[5, 6, 7, 9]])
    fed = torch.tensor([[5, 6, 11]])  # position t has been fed fed[:, :t+1]
    with torch.no_grad():
        probs = head(torch.zeros(1, 3, 12).log_softmax(-1), torch.randn(1, 3, 8), torch.randn(1, 4, 8), src,
                     torch.ones_like(src, dtype=torch.bool), fed).exp()
    assert float(probs[0, 0, 6]) == pytest.approx(1 / 3, abs=1e-4), "after [5]: 6, 7, 9 share the mass"
    assert probs[0, 1, 6] < 1e-6 and probs[0, 2, 6] < 1e-6, "after [5, 6] (and later): 6 is covered"
    assert float(probs[0, 2, [7, 9]].sum()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_cached_beam_search_with_copy_bonuses_equals_uncached(copy_follow_unilm, beam_size):
    model = copy_follow_unilm
    src = model.collate([model.build_example([5, 6, 7, 5, 6, 8], None),
                         model.build_example([9, 10, 11, 12], None)])["src_ids"]
    assert_cached_beam_search_equals_uncached(model, src, beam_size)


def test_copy_bonuses_survive_save_and_load(copy_follow_unilm, tiny_tokenizer, tmp_path):
    copy_follow_unilm.save_pretrained(tmp_path)
    again = load_model(tmp_path, tiny_tokenizer).eval()
    assert again.copy_head.follow is not None and again.copy_head.coverage is not None
    batch = again.collate([again.build_example([5, 6, 7], [6, 7])])
    assert torch.allclose(again(batch), copy_follow_unilm(batch), atol=1e-6)


def test_copy_bonuses_can_be_switched_on_for_a_checkpoint_saved_without_them(tiny_tokenizer, tmp_path):
    """Fine-tuning an older copy-head checkpoint with the bonuses on: the saved weights load, the
    bonuses start at their initial values (follow bias 2, coverage 0)."""
    torch.manual_seed(0)
    plain = UniLM.from_scratch(tiny_tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                               max_positions=128, copy=True).eval()
    torch.nn.init.normal_(plain.copy_head.gate.weight)
    plain.save_pretrained(tmp_path)
    again = UniLM.from_pretrained(tmp_path, tiny_tokenizer, copy_follow=True, copy_coverage=True)
    assert torch.equal(again.copy_head.gate.weight, plain.copy_head.gate.weight)
    assert again.copy_head.follow.bias.item() == 2.0 and again.copy_head.coverage.bias.item() == 0.0
