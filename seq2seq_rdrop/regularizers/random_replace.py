"""Random replacement: during teacher forcing some title *input* tokens are swapped for other
tokens, so the model learns to continue from imperfect prefixes (against exposure bias).
Labels, the abstract and padding are never touched.

The default is the reference recipe (bojone/exposure_bias, random_replacement.py): a coin flip per
example picks half of the examples (`example_prob` 0.5), each title input token of a picked example
is replaced with probability `prob` 0.3, and the replacement is drawn from the example's own token
sequence, uniformly over its positions (abstract and title; `source: sequence`). One departure: the
special tokens ([CLS], [SEP], padding) are left out of the draw, where the reference code may draw
[CLS] or [SEP] (about 3 of ~200 positions). `source: vocab` draws uniformly from the non-special
vocabulary instead (conf/regularizer/random_replace_vocab.yaml, the setting the quality preset was first tuned with).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..option_schema import check_choice, choice, number
from .base import Regularizer

SOURCES = ("sequence", "vocab")  # regularizer.source: where a replacement token is drawn from


def _uniform(shape, generator, device) -> torch.Tensor:
    return torch.rand(*shape, generator=generator, device="cpu").to(device)


def _draw_from_vocab(tgt_in, vocab_size: int, special: torch.Tensor, generator) -> torch.Tensor:
    allowed = torch.ones(vocab_size, dtype=torch.bool, device=tgt_in.device)
    allowed[special] = False
    pool = allowed.nonzero().squeeze(1)
    return pool[torch.randint(len(pool), tgt_in.shape, generator=generator).to(tgt_in.device)]


def _draw_from_sequence(tgt_in, src_ids, special: torch.Tensor, generator) -> torch.Tensor:
    """For every title position, a token from a uniformly drawn non-special position of the same
    example's abstract + title."""
    sequence = torch.cat([src_ids, tgt_in], dim=1)
    usable = ~torch.isin(sequence, special)
    count = usable.sum(1, keepdim=True)  # [B, 1]; every real example has some abstract tokens
    # usable positions first, in order: the k-th usable position of row b is order[b, k]
    order = torch.argsort((~usable).to(torch.int8), dim=1, stable=True)
    k = (_uniform(tgt_in.shape, generator, tgt_in.device) * count).long().clamp_max(count - 1).clamp_min(0)
    return sequence.gather(1, order.gather(1, k))


def replace_title_inputs(tgt_in: torch.Tensor, prob: float, example_prob: float, vocab_size: int,
                         special_ids: list[int], generator: torch.Generator | None = None,
                         source: str = "vocab", src_ids: torch.Tensor | None = None) -> torch.Tensor:
    """A copy of `tgt_in` where each non-special token of a chosen example (chosen with probability
    `example_prob`) is replaced with probability `prob` by a token drawn from `source`: "vocab"
    (uniform over the non-special vocabulary) or "sequence" (the example's own `src_ids` + `tgt_in`)."""
    check_choice("regularizer.source", source, SOURCES)
    special = torch.tensor(special_ids, device=tgt_in.device)
    chosen_examples = _uniform((tgt_in.size(0), 1), generator, tgt_in.device) < example_prob
    replace = (_uniform(tgt_in.shape, generator, tgt_in.device) < prob) & chosen_examples & ~torch.isin(tgt_in, special)
    if source == "sequence":
        if src_ids is None:
            raise ValueError("source='sequence' needs the batch's src_ids")
        draws = _draw_from_sequence(tgt_in, src_ids, special, generator)
    else:
        draws = _draw_from_vocab(tgt_in, vocab_size, special, generator)
    return torch.where(replace, draws, tgt_in)


@dataclass(kw_only=True, eq=False)
class RandomReplace(Regularizer):
    prob: float = number(0.3, 0.0, 1.0)  # a title input token of a chosen example is replaced
    example_prob: float = number(0.5, 0.0, 1.0)  # an example is chosen (drawn again each time it is served)
    source: str = choice("sequence", SOURCES)

    def __call__(self, model, batch):
        if not getattr(model, "training", True):
            return self.base_loss(model, batch)
        noisy = dict(batch)
        noisy["tgt_in"] = replace_title_inputs(batch["tgt_in"], self.prob, self.example_prob, model.vocab_size,
                                               model.special_ids(), source=self.source, src_ids=batch["src_ids"])
        return self.base_loss(model, noisy)
