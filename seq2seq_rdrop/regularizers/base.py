"""The one interface every regularizer shares: `regularizer(model, batch) -> (loss, parts)`.

`parts` holds the loss terms as floats for logging (always `ce`, plus e.g. `kl` or `penalty`).
A regularizer may wrap another one (`inner`), which is how combinations are written in YAML
without new code, e.g. random replacement around R-Drop.

The batch holds the labelled pairs' tensors (models/base.py) and, only for a regularizer whose
`unlabeled_per_labeled()` is above 0, `batch["unlabeled"]`: a dict with the `src_ids` of unlabelled
abstracts (semi-supervised training, semi_supervised.py). Every other regularizer never sees that key.
"""
from __future__ import annotations

import torch


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


class Regularizer:
    """Plain cross-entropy on the title tokens; subclasses add their term."""

    def __init__(self, name: str | None = None, label_smoothing: float = 0.0, model_dropout: float | None = None,
                 model_attention_dropout: float | None = None, inner: "Regularizer | None" = None):
        self.name = name or type(self).__name__
        self.label_smoothing = label_smoothing
        # dropout the model trains with under this regularizer, on hidden states and on attention
        # probabilities apart (None: the model's own setting)
        self.model_dropout = model_dropout
        self.model_attention_dropout = model_attention_dropout
        self.inner = inner

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
