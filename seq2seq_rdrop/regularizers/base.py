"""The one interface every regularizer shares: `regularizer(model, batch) -> (loss, parts)`.

`parts` holds the loss terms as floats for logging (always `ce`, plus e.g. `kl` or `penalty`).
A regularizer may wrap another one (`inner`), which is how combinations are written in YAML
without new code, e.g. random replacement around R-Drop.

The batch holds the labelled pairs' tensors (models/base.py) and, only for a regularizer whose
`unlabeled_per_labeled()` is above 0, `batch["unlabeled"]`: a dict with the `src_ids` of unlabelled
abstracts (semi-supervised training, semi_supervised.py). Every other regularizer never sees that key.

Its options are its dataclass fields, each declared with what it may be (option_schema.py): a regularizer
checks them when built, and config_checks checks a conf/regularizer/*.yaml block against the fields of the
class its `_target_` names, before the run starts. A new option is one field.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..option_schema import check_fields, nested, number, text


def token_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor, pad_id: int,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean negative log-likelihood over the non-padding target tokens."""
    mask = target != pad_id
    nll = -log_probs.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    if label_smoothing > 0:
        # uniform smoothing over the vocabulary; -inf log-probs (impossible tokens) are ignored
        smooth = -log_probs.masked_fill(torch.isinf(log_probs), 0.0).mean(-1)
        nll = (1 - label_smoothing) * nll + label_smoothing * smooth
    return (nll * mask).sum() / mask.sum().clamp_min(1)


@dataclass(kw_only=True, eq=False)
class Regularizer:
    """Plain cross-entropy on the title tokens; subclasses add their term (and their options, as fields).

    model_dropout / model_attention_dropout: the dropout the model trains with under this regularizer, on
    hidden states and on attention probabilities apart (None: the model's own setting)."""

    name: str | None = text(None, what="a name")  # None: the class name
    label_smoothing: float = number(0.0, 0.0, 1.0, high_open=True)
    model_dropout: float | None = number(None, 0.0, 1.0, high_open=True, note=" (null = the model's own)")
    model_attention_dropout: float | None = number(None, 0.0, 1.0, high_open=True, note=" (null = the model's own)")
    inner: Regularizer | None = nested()  # the regularizer whose loss this one adds its term to

    def __post_init__(self):
        check_fields(self, prefix="regularizer.")
        self.name = self.name or type(self).__name__

    def apply_dropout(self, model) -> tuple[float, float]:
        """Set the model's dropout to this regularizer's; return (hidden, attention) as now in force."""
        hidden, attention = model.dropout_rates()
        if self.model_dropout is not None or self.model_attention_dropout is not None:
            hidden = hidden if self.model_dropout is None else self.model_dropout
            attention = attention if self.model_attention_dropout is None else self.model_attention_dropout
            model.set_dropout(hidden, attention)
        return hidden, attention

    def cross_entropy(self, model, log_probs, batch) -> torch.Tensor:
        return token_cross_entropy(log_probs, batch["tgt_out"], model.pad_id, self.label_smoothing)

    def base_loss(self, model, batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss this regularizer adds its term to: the inner regularizer's, or plain CE."""
        if self.inner is not None:
            return self.inner(model, batch)
        ce = self.cross_entropy(model, model(batch), batch)
        return ce, {"ce": ce.item()}

    def __call__(self, model, batch) -> tuple[torch.Tensor, dict[str, float]]:
        return self.base_loss(model, batch)

    def unlabeled_per_labeled(self) -> float:
        """Unlabelled abstracts per labelled pair that the training loop should put in batch["unlabeled"]
        (a sub-batch of `src_ids` only) for this regularizer or one it wraps; 0: none, the loop reads no
        unlabelled data. Only semi_supervised.SemiSupervised asks for any."""
        return self.inner.unlabeled_per_labeled() if self.inner is not None else 0.0

    def settings(self) -> dict:
        """What metrics.json records about this regularizer."""
        out = {k: v for k, v in vars(self).items() if k != "inner" and not k.startswith("_")}
        if self.inner is not None:
            out["inner"] = self.inner.settings()
        return out
