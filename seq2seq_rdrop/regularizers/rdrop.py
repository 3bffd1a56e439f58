"""R-Drop: each example passes through the model twice with dropout on; the two predicted
distributions are pulled together by a symmetric KL term.

The scaling follows the reference code of the R-Drop article (the loss CE1 + CE2 + alpha/2
[KL(P2||P1) + KL(P1||P2)] divided by 2):  loss = (CE1 + CE2)/2 + alpha/4 [KL(P2||P1) + KL(P1||P2)],
with every term averaged over target tokens (abstract and padding positions masked).

`passes` picks how the two passes run; the loss is the same function of the two dropout masks:
- `doubled` (the default, what the comparison sweep ran): one forward over the batch duplicated (2B rows);
- `twice`: two forwards over the B rows (two graphs, one backward);
- `auto`: `twice` on CPU, `doubled` elsewhere. On CPU the doubled batch's activations (2B rows, the
  attention's [2B, heads, L, L] probabilities above all) fall out of the caches of a small machine, and
  issue 17 found one 2B-row pass dearer than two B-row passes at some shapes; on a GPU one launch of
  kernels twice as large keeps the device busier than two launches (scripts/bench_train.py measures both).
The executions draw their dropout masks in a different order, so a run with `twice` is not
bit-identical to one with `doubled`; with the same masks they give the same loss and gradients
(tests/test_semi_supervised.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..option_schema import choice, number
from .base import Regularizer

PASSES = ("doubled", "twice", "auto")  # regularizer.passes
DEFAULT_PASSES = "doubled"


def symmetric_kl(log_p: torch.Tensor, log_q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked positions of KL(P||Q) + KL(Q||P), each summed over the vocabulary."""
    p, q = log_p.exp(), log_q.exp()
    # impossible tokens have log-prob -inf in both; (p - q) * (log p - log q) is 0 there
    diff = (log_p - log_q).masked_fill(torch.isinf(log_p) & torch.isinf(log_q), 0.0)
    per_token = ((p - q) * diff).sum(-1)  # = KL(P||Q) + KL(Q||P)
    return (per_token * mask).sum() / mask.sum().clamp_min(1)


def two_passes(model, batch: dict, passes: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The log-probabilities of two dropout passes over `batch`, run as `passes` says (module docstring)."""
    if passes == "auto":
        passes = "twice" if batch["src_ids"].device.type == "cpu" else "doubled"
    if passes == "twice":
        return model(batch), model(batch)
    doubled = {k: torch.cat([v, v], dim=0) for k, v in batch.items()}
    log_probs_1, log_probs_2 = model(doubled).chunk(2, dim=0)
    return log_probs_1, log_probs_2


def two_pass_terms(regularizer: Regularizer, model, batch: dict, passes: str) -> tuple[torch.Tensor, torch.Tensor]:
    """R-Drop's two terms over `batch`: the mean cross-entropy of two dropout passes, and their symmetric KL
    (RDrop on labelled pairs, SemiSupervised on pseudo-titled abstracts)."""
    log_probs_1, log_probs_2 = two_passes(model, batch, passes)
    ce = (regularizer.cross_entropy(model, log_probs_1, batch) + regularizer.cross_entropy(model, log_probs_2, batch)) / 2
    kl = symmetric_kl(log_probs_1, log_probs_2, batch["tgt_out"] != model.pad_id)
    return ce, kl


@dataclass(kw_only=True, eq=False)
class RDrop(Regularizer):
    alpha: float = number(4.0, 0.0, note=" (the weight of R-Drop's KL term)")
    passes: str = choice(DEFAULT_PASSES, PASSES)

    def __call__(self, model, batch):
        ce, kl = two_pass_terms(self, model, batch, self.passes)
        loss = ce + self.alpha / 4 * kl
        return loss, {"ce": ce.item(), "kl": kl.item()}
