"""Properties of seq2seq_rdrop/fast_dropout.py: the cheap CPU dropout is dropout (rate, scale,
gradient), its attention equals HF's SDPA attention when nothing is dropped, and switching it on
leaves an evaluating model's outputs unchanged."""
import pytest
import torch
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from seq2seq_rdrop.fast_dropout import ATTENTION_NAME, FastDropout, fast_dropout, fast_dropout_sdpa, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_drops_each_element_with_probability_p_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = fast_dropout(x, p)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(p, abs=0.003)  # 400k Bernoulli draws: sd < 0.001
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)), rtol=1e-4)  # one scale for every kept element


def test_masks_are_independent_across_positions_and_calls():
    torch.manual_seed(0)
    a, b = fast_dropout(torch.ones(200_000), 0.5) != 0, fast_dropout(torch.ones(200_000), 0.5) != 0
    assert (a == b).float().mean().item() == pytest.approx(0.5, abs=0.01)  # two calls: unrelated masks
    assert (a[:-1] == a[1:]).float().mean().item() == pytest.approx(0.5, abs=0.01)  # neighbours: unrelated


def test_same_seed_same_mask_and_identity_when_not_training():
    x = torch.randn(3, 50)
    torch.manual_seed(7)
    first = fast_dropout(x, 0.3)
    torch.manual_seed(7)
    assert torch.equal(first, fast_dropout(x, 0.3))
    assert torch.equal(fast_dropout(x, 0.3, training=False), x) and torch.equal(fast_dropout(x, 0.0), x)


def test_gradient_flows_through_kept_elements_only():
    x = torch.randn(1000, requires_grad=True)
    y = fast_dropout(x, 0.3)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.7), rtol=1e-4)
    assert (x.grad[~kept] == 0).all()


@pytest.mark.parametrize("boolean_mask", [False, True])
def test_attention_equals_hf_sdpa_when_nothing_is_dropped(boolean_mask):
    """A rate below 1/131072 keeps every element, so the CPU dropout branch must give SDPA's output."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 7, 8) for _ in range(3))
    allowed = torch.rand(2, 1, 7, 7) > 0.3
    allowed[..., 0] = True  # every query sees something
    mask = allowed if boolean_mask else torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    module = nn.Module()
    module.is_causal = False
    ours, _ = fast_dropout_sdpa(module, q, k, v, mask, dropout=1e-7, scaling=0.3)
    reference, _ = sdpa_attention_forward(module, q, k, v, mask, dropout=0.0, scaling=0.3)
    assert torch.allclose(ours, reference, atol=1e-5)


def test_switching_on_keeps_an_evaluating_unilms_outputs_and_switching_off_restores_torch(tiny_unilm):
    model = tiny_unilm
    batch = model.collate([model.build_example([5, 6, 7, 8], [9, 10, 11])])
    before = model(batch)
    use_fast_dropout(model)
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert model.bert.config._attn_implementation == ATTENTION_NAME
    assert torch.allclose(model(batch), before, atol=1e-6)
    model.set_dropout(0.3)  # set_dropout still reaches every dropout
    assert all(m.p == 0.3 for m in model.modules() if isinstance(m, FastDropout))
    model.train()
    torch.manual_seed(0)
    assert not torch.allclose(model(batch), model(batch))  # two passes draw different masks (R-Drop's premise)
    use_fast_dropout(model, enabled=False)
    assert not any(isinstance(m, FastDropout) for m in model.modules())
    assert model.bert.config._attn_implementation == "sdpa"


def test_rdrop_trains_a_tiny_unilm_with_fast_dropout(tiny_unilm):
    from seq2seq_rdrop.regularizers import RDrop

    model = use_fast_dropout(tiny_unilm)
    model.set_dropout(0.3)
    model.train()
    batch = model.collate([model.build_example([5, 6, 7, 8, 9], [10, 11, 12]),
                           model.build_example([6, 7, 8], [9, 10])])
    reg = RDrop(alpha=4.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    losses = []
    for _ in range(12):
        loss, parts = reg(model, batch)
        assert parts["kl"] > 0  # the two passes differ
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

