"""Gradient penalty: loss + epsilon/2 * ||d loss / d E||^2, where E is the output of the
token-embedding layer for the batch. A flat loss around the embeddings makes the model less
sensitive to small input perturbations. Needs a double backward through the model.

With the default epsilon 1 this is the reference recipe (bojone/exposure_bias, gradient_penalty.py):
loss = mean token cross-entropy + 0.5 * the sum of the squared entries of d(CE)/d(token-embedding
lookups), i.e. the gradient at the looked-up word embeddings before position and segment embeddings
are added, summed over the whole batch (not averaged), with no square root
(tests/test_regularizers.py checks it against that formula).

The forward runs with PyTorch's "math" scaled-dot-product-attention backend: the fused kernels
(flash attention on CPU, chosen when dropout is 0; flash / memory-efficient on CUDA) implement
no double backward, and `loss.backward()` would fail with "derivative for
aten::_scaled_dot_product_..._backward is not implemented"."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..option_schema import number
from .base import Regularizer


@dataclass(kw_only=True, eq=False)
class GradPenalty(Regularizer):
    epsilon: float = number(1.0, 0.0, note=" (the weight of the gradient penalty)")

    def __call__(self, model, batch):
        captured: list[torch.Tensor] = []
        # a hook sees every call of the embedding layer (a BART-style model calls it for the
        # encoder and the decoder inputs), whatever the model's architecture
        handle = model.input_embeddings().register_forward_hook(lambda m, i, out: captured.append(out))
        try:
            with sdpa_kernel(SDPBackend.MATH):  # the only backend with a double backward
                loss, parts = self.base_loss(model, batch)
        finally:
            handle.remove()
        if not torch.is_grad_enabled():
            return loss, parts
        grads = torch.autograd.grad(loss, captured, create_graph=True)
        penalty = sum(g.pow(2).sum() for g in grads)
        parts["penalty"] = penalty.item()
        return loss + self.epsilon / 2 * penalty, parts
