"""Properties of the regularizers (seq2seq_rdrop/regularizers) on a tiny UniLM.

Every test builds its own tiny model (hidden 32, 2 layers) over a character vocabulary made
from a few synthetic Chinese texts, so the whole file runs in seconds on a small CPU.
The interface under test: `regularizer(model, batch) -> (loss tensor, parts dict of floats)`.
"""
from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`) on an uninstalled checkout
    sys.path.insert(0, str(REPO_ROOT))

from seq2seq_rdrop.fast_dropout import use_fast_dropout  # noqa: E402
from seq2seq_rdrop.models import UniLM  # noqa: E402
from seq2seq_rdrop.regularizers import Baseline, GradPenalty, RandomReplace, RDrop  # noqa: E402
from seq2seq_rdrop.regularizers.random_replace import replace_title_inputs  # noqa: E402
from seq2seq_rdrop.regularizers.rdrop import symmetric_kl  # noqa: E402
from seq2seq_rdrop.tokenizer import build_tokenizer, encode_text  # noqa: E402

from conftest import compose_train  # noqa: E402

CONF_DIR = REPO_ROOT / "conf"
REGULARIZER_YAMLS = sorted(p.stem for p in (CONF_DIR / "regularizer").glob("*.yaml"))

CHARS = "深度学习方法中文标题生成正则化对比随机替换实验梯度惩罚研究一致性训练模型网络数据分析系统"


pytestmark = pytest.mark.usefixtures("one_thread")


def _synthetic_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(abstract, title) pairs of varying length, so batches carry padding in both parts."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        abstract = "".join(rng.choice(CHARS) for _ in range(6 + (3 * i) % 11))
        title = "".join(rng.choice(CHARS) for _ in range(3 + (2 * i) % 6))
        pairs.append((abstract, title))
    return pairs


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    texts = [t for pair in _synthetic_pairs(40) for t in pair] + [CHARS]
    return build_tokenizer(texts, tmp_path_factory.mktemp("tok"))


def tiny_model(tok, dropout: float = 0.0, seed: int = 0) -> UniLM:
    torch.manual_seed(seed)
    return UniLM.from_scratch(tok, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                              dropout=dropout, max_positions=64)


def make_batch(model, tok, n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    examples = [model.build_example(encode_text(tok, a), encode_text(tok, t)) for a, t in _synthetic_pairs(n, seed)]
    batch = model.collate(examples)
    # the fixtures must really exercise padding
    assert (batch["tgt_out"] == model.pad_id).any() and (batch["src_ids"] == model.pad_id).any()
    return batch


def wrap_forward(model) -> list[dict]:
    """Record every call of model.forward (its batch and output) without changing what it returns."""
    calls: list[dict] = []
    original = model.forward

    def recording(batch):
        out = original(batch)
        calls.append({"batch": {k: v.clone() for k, v in batch.items()}, "out": out})
        return out

    model.forward = recording  # nn.Module.__call__ looks forward up on the instance
    return calls


def kl_by_hand(log_p: torch.Tensor, log_q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over positions of KL(P||Q), summed over the vocabulary, via F.kl_div."""
    per_token = F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1)
    return (per_token * mask).sum() / mask.sum()


def ce_by_hand(log_probs: torch.Tensor, target: torch.Tensor, pad_id: int) -> torch.Tensor:
    mask = target != pad_id
    picked = log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return -(picked[mask]).mean()


# --------------------------------------------------------------------------- R-Drop


def test_rdrop_kl_is_zero_and_loss_equals_baseline_ce_without_dropout(tok):
    model = tiny_model(tok, dropout=0.1)
    model.set_dropout(0.0)
    model.train()
    batch = make_batch(model, tok)
    loss, parts = RDrop(alpha=4.0)(model, batch)
    assert parts["kl"] == pytest.approx(0.0, abs=1e-7)  # the two copies are the same computation
    base_loss, base_parts = Baseline()(model, batch)
    assert torch.allclose(loss, base_loss, atol=1e-6)
    assert parts["ce"] == pytest.approx(base_parts["ce"], abs=1e-6)


def test_rdrop_loss_is_mean_ce_plus_alpha_quarter_symmetric_kl_with_dropout(tok):
    """With dropout on: KL > 0 and loss = (CE1+CE2)/2 + alpha/4 (KL(P2||P1) + KL(P1||P2)),
    recomputed from the model's own two outputs with F.kl_div."""
    model = tiny_model(tok, dropout=0.3)
    model.train()
    batch = make_batch(model, tok)
    calls = wrap_forward(model)
    alpha = 4.0
    loss, parts = RDrop(alpha=alpha)(model, batch)
    lp1, lp2 = calls[0]["out"].detach().chunk(2, dim=0)
    mask = batch["tgt_out"] != model.pad_id
    ce = (ce_by_hand(lp1, batch["tgt_out"], model.pad_id) + ce_by_hand(lp2, batch["tgt_out"], model.pad_id)) / 2
    kl = kl_by_hand(lp2, lp1, mask) + kl_by_hand(lp1, lp2, mask)
    assert kl > 0 and parts["kl"] > 0
    assert parts["kl"] == pytest.approx(kl.item(), rel=1e-4)
    assert parts["ce"] == pytest.approx(ce.item(), rel=1e-5)
    assert torch.allclose(loss.detach(), ce + alpha / 4 * kl, rtol=1e-5)


def test_rdrop_runs_one_forward_over_the_doubled_batch(tok):
    model = tiny_model(tok, dropout=0.3)
    model.train()
    batch = make_batch(model, tok, n=3)
    calls = wrap_forward(model)
    RDrop()(model, batch)
    assert len(calls) == 1
    seen = calls[0]["batch"]
    B = batch["src_ids"].size(0)
    for key, value in batch.items():
        assert seen[key].size(0) == 2 * B
        assert torch.equal(seen[key][:B], value) and torch.equal(seen[key][B:], value)


def _random_log_probs(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return F.log_softmax(torch.randn(*shape, generator=g) * 2, dim=-1)


def test_symmetric_kl_is_symmetric_and_equals_kl_pq_plus_kl_qp():
    a, b = _random_log_probs((3, 5, 11), 1), _random_log_probs((3, 5, 11), 2)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[0, 3:] = False
    mask[2, 1:] = False
    ab, ba = symmetric_kl(a, b, mask), symmetric_kl(b, a, mask)
    assert ab > 0
    assert torch.allclose(ab, ba, rtol=1e-6)
    expected = kl_by_hand(a, b, mask) + kl_by_hand(b, a, mask)
    # and once more fully by hand: sum p log(p/q) + q log(q/p)
    p, q = a.exp(), b.exp()
    by_hand = ((p * (a - b)).sum(-1) + (q * (b - a)).sum(-1))[mask].mean()
    assert torch.allclose(ab, expected, rtol=1e-5)
    assert torch.allclose(ab, by_hand, rtol=1e-5)
    assert symmetric_kl(a, a, mask).item() == 0.0


def test_symmetric_kl_ignores_padding_positions():
    a, b = _random_log_probs((3, 5, 11), 3), _random_log_probs((3, 5, 11), 4)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 2:] = False
    before = symmetric_kl(a, b, mask)
    a2, b2 = a.clone(), b.clone()
    a2[~mask] = _random_log_probs((3, 5, 11), 5)[~mask]
    b2[~mask] = _random_log_probs((3, 5, 11), 6)[~mask]
    assert torch.equal(symmetric_kl(a2, b2, mask), before)


def test_symmetric_kl_is_finite_when_both_sides_give_a_token_minus_inf():
    """Impossible tokens (-inf in both distributions) contribute nothing, not NaN."""
    logits_a, logits_b = torch.randn(2, 4, 9), torch.randn(2, 4, 9)
    logits_a[..., 4] = logits_b[..., 4] = -math.inf
    a, b = F.log_softmax(logits_a, -1), F.log_softmax(logits_b, -1)
    mask = torch.ones(2, 4, dtype=torch.bool)
    keep = [i for i in range(9) if i != 4]
    value = symmetric_kl(a, b, mask)
    assert torch.isfinite(value)
    assert torch.allclose(value, symmetric_kl(a[..., keep], b[..., keep], mask), rtol=1e-6)


# --------------------------------------------------------------------------- random replacement


def _title_inputs(rows, cols, vocab_size, special, pad_id, seed=0):
    """Random title inputs: non-special tokens, a few special tokens, and ragged right padding."""
    g = torch.Generator().manual_seed(seed)
    pool = torch.tensor([i for i in range(vocab_size) if i not in special])
    tgt = pool[torch.randint(len(pool), (rows, cols), generator=g)]
    sprinkled = torch.rand(rows, cols, generator=g) < 0.05
    tgt = torch.where(sprinkled, torch.tensor(special)[torch.randint(len(special), (rows, cols), generator=g)], tgt)
    lengths = torch.randint(cols // 2, cols + 1, (rows,), generator=g)
    tgt[torch.arange(cols)[None, :] >= lengths[:, None]] = pad_id
    return tgt


def test_replace_title_inputs_touches_only_non_special_tokens_at_the_configured_rate():
    vocab_size, special, pad_id, prob = 200, [0, 2, 3], 0, 0.3
    tgt = _title_inputs(400, 60, vocab_size, special, pad_id)
    eligible = ~torch.isin(tgt, torch.tensor(special))
    assert eligible.sum() > 20_000 * 0.5  # enough tokens for a tight rate
    out = replace_title_inputs(tgt, prob, 1.0, vocab_size, special, generator=torch.Generator().manual_seed(1))
    changed = out != tgt
    assert out.shape == tgt.shape and out.dtype == tgt.dtype
    assert not changed[~eligible].any()  # padding and special tokens stay
    assert not torch.isin(out[changed], torch.tensor(special)).any()  # replacements are never special
    assert ((out >= 0) & (out < vocab_size)).all()
    # a replacement may draw the token it replaces: P(change) = prob * (P-1)/P for a pool of P tokens
    n_pool = vocab_size - len(special)
    rate = changed[eligible].float().mean().item()
    assert rate == pytest.approx(prob * (n_pool - 1) / n_pool, abs=0.02)
    assert torch.equal(tgt, _title_inputs(400, 60, vocab_size, special, pad_id))  # input not modified in place


def test_replace_title_inputs_draws_uniformly_from_the_non_special_vocabulary():
    vocab_size, special = 10, [0, 2, 3, 7]
    tgt = torch.full((300, 40), 5)
    out = replace_title_inputs(tgt, 1.0, 1.0, vocab_size, special, generator=torch.Generator().manual_seed(2))
    counts = torch.bincount(out.flatten(), minlength=vocab_size).float()
    assert counts[special].sum() == 0
    pool = [i for i in range(vocab_size) if i not in special]
    share = counts[pool] / counts.sum()
    assert torch.allclose(share, torch.full_like(share, 1 / len(pool)), atol=0.02)


def test_replace_title_inputs_example_prob_half_perturbs_about_half_the_examples():
    vocab_size, special = 200, [0, 2, 3]
    tgt = _title_inputs(800, 30, vocab_size, special, 0, seed=3)
    out = replace_title_inputs(tgt, 0.5, 0.5, vocab_size, special, generator=torch.Generator().manual_seed(4))
    rows_changed = (out != tgt).any(dim=1).float().mean().item()
    # a chosen row of >= 15 eligible tokens stays unchanged with probability < 0.5**15: negligible
    assert rows_changed == pytest.approx(0.5, abs=0.06)
    # and within perturbed rows the token rate is still prob
    eligible = ~torch.isin(tgt, torch.tensor(special))
    chosen = (out != tgt).any(dim=1, keepdim=True)
    rate = (out != tgt)[eligible & chosen].float().mean().item()
    assert rate == pytest.approx(0.5 * 196 / 197, abs=0.03)


def test_replace_title_inputs_with_prob_zero_is_identity():
    tgt = _title_inputs(20, 10, 50, [0, 2, 3], 0)
    assert torch.equal(replace_title_inputs(tgt, 0.0, 1.0, 50, [0, 2, 3]), tgt)


def test_random_replace_feeds_changed_tgt_in_but_scores_original_tgt_out(tok):
    model = tiny_model(tok, dropout=0.1)
    model.set_dropout(0.0)  # deterministic forward, so the loss can be recomputed
    model.train()
    batch = make_batch(model, tok, n=6)
    original = {k: v.clone() for k, v in batch.items()}
    calls = wrap_forward(model)
    torch.manual_seed(0)
    loss, parts = RandomReplace(prob=0.5)(model, batch)
    assert len(calls) == 1
    seen = calls[0]["batch"]
    for key in batch:
        assert torch.equal(batch[key], original[key])  # the caller's batch is not modified
    assert torch.equal(seen["src_ids"], original["src_ids"])
    assert torch.equal(seen["tgt_out"], original["tgt_out"])
    changed = seen["tgt_in"] != original["tgt_in"]
    assert changed.any()
    special = torch.tensor(model.special_ids())
    assert not changed[torch.isin(original["tgt_in"], special)].any()  # padding untouched
    assert not torch.isin(seen["tgt_in"][changed], special).any()  # replacements are never special
    # the loss is the CE of the model's output on the noisy inputs against the ORIGINAL labels
    expected = ce_by_hand(calls[0]["out"].detach(), original["tgt_out"], model.pad_id)
    assert torch.allclose(loss.detach(), expected, atol=1e-6)
    assert parts["ce"] == pytest.approx(expected.item(), abs=1e-6)


def test_random_replace_does_nothing_in_eval_mode(tok):
    model = tiny_model(tok)
    model.eval()
    batch = make_batch(model, tok)
    calls = wrap_forward(model)
    RandomReplace(prob=1.0)(model, batch)
    assert torch.equal(calls[0]["batch"]["tgt_in"], batch["tgt_in"])


def _own_token_batch(rows: int = 300):
    """src rows of 40 distinct tokens (10..49 shifted per row), titles of 10 copies of token 5, with
    specials (0 pad, 2 [CLS], 3 [SEP]) around the abstract, as models build them."""
    src = torch.stack([torch.cat([torch.tensor([2]), 10 + (torch.arange(40) + r) % 90, torch.tensor([3])])
                       for r in range(rows)])
    tgt = torch.full((rows, 10), 5)
    return src, tgt


def test_sequence_draws_come_only_from_the_examples_own_non_special_tokens():
    special = [0, 2, 3]
    src, tgt = _own_token_batch()
    out = replace_title_inputs(tgt, 1.0, 1.0, 200, special, generator=torch.Generator().manual_seed(0),
                               source="sequence", src_ids=src)
    for row in range(src.size(0)):
        own = set(src[row].tolist()) | set(tgt[row].tolist())
        assert set(out[row].tolist()) <= own - set(special), row


def test_sequence_draws_are_uniform_over_the_examples_positions():
    """Token 7 fills 30 of the 40 abstract positions, token 8 the other 10; the title is 10 x token 5:
    a draw is 7 with probability 30/50, 8 with 10/50 and 5 (the title's own) with 10/50."""
    src = torch.cat([torch.tensor([2]), torch.tensor([7] * 30 + [8] * 10), torch.tensor([3])]).expand(400, -1)
    tgt = torch.full((400, 10), 5)
    out = replace_title_inputs(tgt, 1.0, 1.0, 20, [0, 2, 3], generator=torch.Generator().manual_seed(1),
                               source="sequence", src_ids=src)
    share = torch.bincount(out.flatten(), minlength=20).float() / out.numel()
    assert share[7] == pytest.approx(0.6, abs=0.02) and share[8] == pytest.approx(0.2, abs=0.02)
    assert share[5] == pytest.approx(0.2, abs=0.02) and share.sum() == pytest.approx(1.0)


def test_reference_recipe_rates_hold_over_many_draws():
    """Half of the examples, 30% of their title inputs: a token changes with probability
    0.5 * 0.3 * (1 - 10/50) (a draw may hit one of the title's own 10 positions of token 5)."""
    src, tgt = _own_token_batch(rows=4000)
    out = replace_title_inputs(tgt, 0.3, 0.5, 200, [0, 2, 3], generator=torch.Generator().manual_seed(2),
                               source="sequence", src_ids=src)
    changed = out != tgt
    assert changed.float().mean().item() == pytest.approx(0.5 * 0.3 * 0.8, abs=0.01)
    rows_changed = changed.any(dim=1).float().mean().item()
    assert rows_changed == pytest.approx(0.5 * (1 - (1 - 0.3 * 0.8) ** 10), abs=0.03)


def test_unknown_replacement_source_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"regularizer.source='corpus': allowed values are sequence, vocab"):
        RandomReplace(source="corpus")
    with pytest.raises(ValueError, match=r"regularizer.prob=1.5"):
        RandomReplace(prob=1.5)


def test_reference_random_replace_keeps_labels_and_abstract(tok):
    model = tiny_model(tok, dropout=0.0)
    model.train()
    batch = make_batch(model, tok, n=6)
    calls = wrap_forward(model)
    torch.manual_seed(3)
    RandomReplace(prob=1.0, example_prob=1.0, source="sequence")(model, batch)
    seen = calls[0]["batch"]
    assert torch.equal(seen["src_ids"], batch["src_ids"]) and torch.equal(seen["tgt_out"], batch["tgt_out"])
    changed = seen["tgt_in"] != batch["tgt_in"]
    assert changed.any()
    for row in range(batch["src_ids"].size(0)):
        own = set(batch["src_ids"][row].tolist()) | set(batch["tgt_in"][row].tolist())
        assert set(seen["tgt_in"][row][changed[row]].tolist()) <= own - set(model.special_ids())


# --------------------------------------------------------------------------- gradient penalty


def test_grad_penalty_equals_ce_plus_half_eps_squared_embedding_gradient_norm(tok):
    """Reference computed independently: the embedding output E is swapped for a leaf tensor by a
    hook, CE is computed by hand, g = dCE/dE, reference = CE + eps/2 * sum(g**2)."""
    eps = 0.7
    model = tiny_model(tok, dropout=0.1)
    model.set_dropout(0.0)
    model.train()
    batch = make_batch(model, tok)

    leaves: list[torch.Tensor] = []

    def swap(module, inputs, out):
        leaf = out.detach().clone().requires_grad_(True)
        leaves.append(leaf)
        return leaf

    handle = model.input_embeddings().register_forward_hook(swap)
    try:
        ce = ce_by_hand(model(batch), batch["tgt_out"], model.pad_id)
    finally:
        handle.remove()
    assert len(leaves) == 1  # UniLM embeds [abstract ; title] once
    (g,) = torch.autograd.grad(ce, leaves[0], create_graph=True)
    reference = ce + eps / 2 * (g ** 2).sum()

    loss, parts = GradPenalty(epsilon=eps)(model, batch)
    assert (g ** 2).sum() > 0
    assert torch.allclose(loss.detach(), reference.detach(), rtol=1e-5, atol=1e-7)
    assert parts["penalty"] == pytest.approx((g ** 2).sum().item(), rel=1e-4)
    assert parts["ce"] == pytest.approx(ce.item(), rel=1e-6)


def test_grad_penalty_loss_is_differentiable_and_the_penalty_changes_the_gradient(tok):
    """backward() through the penalty works and gives finite parameter gradients. With dropout 0
    PyTorch picks the flash SDPA kernel on CPU, which has no double backward: GradPenalty must
    force the math backend (this test failed before it did)."""
    model = tiny_model(tok, dropout=0.1)
    model.set_dropout(0.0)
    model.train()
    batch = make_batch(model, tok)

    def grads(regularizer):
        model.zero_grad(set_to_none=True)
        loss, _ = regularizer(model, batch)
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    with_penalty = grads(GradPenalty(epsilon=10.0))
    plain = grads(Baseline())
    assert with_penalty.keys() == plain.keys() and len(plain) > 0
    assert all(torch.isfinite(g).all() for g in with_penalty.values())
    # the penalty's own gradient flows (double backward): the two gradients differ
    diff = sum((with_penalty[n] - plain[n]).abs().sum() for n in plain)
    assert diff > 1e-6


def test_grad_penalty_without_grad_mode_returns_plain_ce(tok):
    model = tiny_model(tok)
    model.eval()
    batch = make_batch(model, tok)
    with torch.no_grad():
        loss, parts = GradPenalty(epsilon=1.0)(model, batch)
        base, _ = Baseline()(model, batch)
    assert "penalty" not in parts
    assert torch.allclose(loss, base)


# --------------------------------------------------------------------------- configs


def test_default_yamls_are_the_reference_recipes():
    rr = instantiate(compose_train(["regularizer=random_replace"]).regularizer)
    assert (rr.prob, rr.example_prob, rr.source) == (0.3, 0.5, "sequence")
    vocab = instantiate(compose_train(["regularizer=random_replace_vocab"]).regularizer)
    assert (vocab.prob, vocab.example_prob, vocab.source) == (0.1, 1.0, "vocab")
    gp = instantiate(compose_train(["regularizer=grad_penalty"]).regularizer)
    assert gp.epsilon == 1.0  # loss + 0.5 x the squared gradient at the token-embedding lookups
    rdrop = instantiate(compose_train(["regularizer=rdrop"]).regularizer)
    assert (rdrop.alpha, rdrop.model_dropout, rdrop.model_attention_dropout) == (4.0, 0.3, None)
    quality = compose_train(["+experiment=quality"])
    assert quality.regularizer.name == "random_replace"  # the reference recipe, which the comparison sweep put first


def test_rdrop_raises_hidden_dropout_and_leaves_attention_dropout_at_the_models_own(tok):
    model = tiny_model(tok, dropout=0.1)
    rdrop = instantiate(compose_train(["regularizer=rdrop"]).regularizer)
    assert rdrop.apply_dropout(model) == (0.3, 0.1) and model.dropout_rates() == (0.3, 0.1)
    rates = {name: m.p for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout)}
    attention = {name for name in rates if name.endswith("attention.self.dropout")}
    assert attention and all(rates[name] == 0.1 for name in attention)
    assert all(p == 0.3 for name, p in rates.items() if name not in attention)
    both = RDrop(model_dropout=0.2, model_attention_dropout=0.05)
    assert both.apply_dropout(model) == (0.2, 0.05) and Baseline().apply_dropout(model) == (0.2, 0.05)


def test_combination_yaml_instantiates_random_replace_around_rdrop(tok):
    cfg = compose_train(["regularizer=rdrop_random_replace"])
    reg = instantiate(cfg.regularizer)
    assert isinstance(reg, RandomReplace) and isinstance(reg.inner, RDrop)
    assert reg.name == "rdrop_random_replace"
    assert reg.prob == pytest.approx(0.3) and reg.example_prob == pytest.approx(0.5) and reg.source == "sequence"
    assert reg.inner.alpha == pytest.approx(4.0)
    assert reg.model_dropout == pytest.approx(0.3)
    model = tiny_model(tok, dropout=0.1)
    model.set_dropout(reg.model_dropout)
    model.train()
    calls = wrap_forward(model)
    batch = make_batch(model, tok)
    loss, parts = reg(model, batch)
    assert {"ce", "kl"} <= parts.keys() and parts["kl"] > 0
    assert torch.isfinite(loss)
    assert len(calls) == 1 and calls[0]["batch"]["tgt_in"].size(0) == 2 * batch["tgt_in"].size(0)
    # both R-Drop copies see the same perturbed inputs
    B = batch["tgt_in"].size(0)
    assert torch.equal(calls[0]["batch"]["tgt_in"][:B], calls[0]["batch"]["tgt_in"][B:])


def _own_parts(reg) -> set[str]:
    """The parts a regularizer (and the ones it wraps) must log besides ce."""
    own = set()
    while reg is not None:
        if isinstance(reg, RDrop):
            own.add("kl")
        if isinstance(reg, GradPenalty):
            own.add("penalty")
        reg = reg.inner
    return own


def test_all_regularizer_yamls_are_tested():
    assert {"baseline", "random_replace", "random_replace_vocab", "grad_penalty", "rdrop",
            "rdrop_random_replace"} <= set(REGULARIZER_YAMLS)


@pytest.mark.parametrize("fast_dropout", [False, True], ids=["torch_dropout", "fast_dropout"])
@pytest.mark.parametrize("name", REGULARIZER_YAMLS)
def test_every_regularizer_yaml_trains_a_tiny_model(tok, name, fast_dropout):
    """...with torch's dropout and with trainer.fast_dropout (gradient penalty: its double backward too)."""
    cfg = compose_train([f"regularizer={name}"])
    reg = instantiate(cfg.regularizer)
    assert reg.name == name
    model = use_fast_dropout(tiny_model(tok, dropout=0.1, seed=1), fast_dropout)
    if reg.model_dropout is not None:
        model.set_dropout(reg.model_dropout)
    model.train()
    batch = make_batch(model, tok, n=4, seed=5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    losses, logged = [], []
    for _ in range(15):
        loss, parts = reg(model, batch)
        assert torch.isfinite(loss), f"{name}: loss {loss}"
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        logged.append(parts)
    assert losses[-1] < losses[0], f"{name}: {losses}"
    for parts in logged:
        assert {"ce", *_own_parts(reg)} <= parts.keys(), parts
        assert all(isinstance(v, float) and math.isfinite(v) for v in parts.values()), parts
