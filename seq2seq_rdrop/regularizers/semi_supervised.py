"""Semi-supervised terms on unlabelled abstracts, around any labelled-pair regularizer (`inner`).

For each batch the training loop adds `batch["unlabeled"]`: the `src_ids` of
round(`unlabeled_ratio` x labelled batch size) abstracts without titles (data.unlabeled_file). For them
the model proposes its own titles: greedy decoding, no gradient, dropout off (eval mode), with the
weights of the current step. The pseudo-titles are thus refreshed at every step for the rows of that
step (each abstract gets a fresh one each time it is drawn) and nothing is cached: what a step computes
depends only on the weights and the step number, so a resumed run repeats it exactly.

    loss = inner(labelled batch)
           + unlabeled_alpha/4 * [KL(P1||P2) + KL(P2||P1)]   (two dropout passes over abstract -> pseudo-title)
           + self_train * CE(pseudo-title)                    (self-training)

Both terms are averaged over the pseudo-title's tokens (its characters and the end token; padding
masked). `unlabeled_alpha` is scaled as R-Drop's `alpha`, so equal values weigh an unlabelled token's KL
as a labelled one's. With both weights 0 nothing is decoded and the loss is exactly `inner`'s. Parts
logged: `kl_unlabeled` (with the KL term) and `ce_unlabeled` (the pseudo-titles' CE, the mean of both
passes with the KL term), besides the inner regularizer's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..decoding import greedy_search
from ..option_schema import choice, integer, nested, number
from .base import Regularizer
from .rdrop import DEFAULT_PASSES, PASSES, two_pass_terms

UNLABELED = "unlabeled"  # the batch key of the unlabelled sub-batch
UNLABELED_PARTS = ("ce_unlabeled", "kl_unlabeled")  # train_log.csv columns of a semi-supervised run


@torch.no_grad()
def pseudo_titled_batch(model, src_ids: torch.Tensor, max_len: int) -> dict[str, torch.Tensor]:
    """`src_ids` with the model's greedy titles as `tgt_in`/`tgt_out`, decoded without gradient and with
    dropout off; the model's train/eval mode is restored."""
    core = getattr(model, "module", model)  # the DDP wrapper has no start/step
    was_training = core.training
    core.eval()
    try:
        hyps = greedy_search(core, src_ids, max_len=max_len)
    finally:
        core.train(was_training)
    examples = []
    for row, hyp in zip(src_ids, hyps):
        _, tgt_in, tgt_out = core.build_example([], hyp.tokens)  # the family's title layout
        examples.append((row[row != core.pad_id].tolist(), tgt_in, tgt_out))
    return {k: v.to(src_ids.device) for k, v in core.collate(examples).items()}


@dataclass(kw_only=True, eq=False)
class SemiSupervised(Regularizer):
    inner: Regularizer | None = nested(required="a semi-supervised regularizer wraps the labelled pairs' regularizer "
                                                "(e.g. inner: {_target_: seq2seq_rdrop.regularizers.RDrop})")
    unlabeled_alpha: float = number(4.0, 0.0, note=" (the weight of the KL term on unlabelled abstracts)")
    self_train: float = number(0.0, 0.0, note=" (the weight of the CE on pseudo-titles)")
    unlabeled_ratio: float = number(1.0, 0.0, low_open=True, note=" (unlabelled abstracts per labelled pair)")
    pseudo_max_len: int = integer(32, 1)
    passes: str = choice(DEFAULT_PASSES, PASSES)

    def unlabeled_per_labeled(self) -> float:
        return self.unlabeled_ratio if (self.unlabeled_alpha > 0 or self.self_train > 0) else 0.0

    def __call__(self, model, batch):
        loss, parts = self.base_loss(model, {k: v for k, v in batch.items() if k != UNLABELED})
        unlabeled = batch.get(UNLABELED)
        if unlabeled is None or not self.unlabeled_per_labeled():
            return loss, parts  # not training (e.g. a benchmark without unlabelled data), or both weights 0
        pseudo = pseudo_titled_batch(model, unlabeled["src_ids"], self.pseudo_max_len)
        if self.unlabeled_alpha > 0:
            ce, kl = two_pass_terms(self, model, pseudo, self.passes)
            loss = loss + self.unlabeled_alpha / 4 * kl
            parts["kl_unlabeled"] = kl.item()
        else:
            ce = self.cross_entropy(model, model(pseudo), pseudo)
        if self.self_train > 0:
            loss = loss + self.self_train * ce
        parts["ce_unlabeled"] = ce.item()
        return loss, parts
