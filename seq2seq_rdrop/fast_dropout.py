"""Dropout whose masks cost a quarter of torch's on CPU (`trainer.fast_dropout`).

Why: on a 2-core CPU, torch's dropout draws one random number per element (`bernoulli_`), and in the
preset's R-Drop step (batch 2x32, 4 layers, 159 positions) those draws took ~18% of the step's time,
the attention probabilities' [64, 4, 159, 159] masks most of it. Here one 64-bit random draw gives
four 16-bit uniforms, and an element is kept when its uniform clears round(p * 65536): the same
Bernoulli(1 - p') mask with p' within 1/131072 of p, scaled by 1 / (1 - p') so the expectation is exact.
On CUDA, torch's own dropout is fast and is used unchanged.

`use_fast_dropout(model)` swaps every `nn.Dropout` module of the model for `FastDropout` (same `p`,
so `set_dropout` keeps working) and routes the HF attention through `fast_dropout_sdpa`, which is
HF's SDPA attention except when it must drop attention probabilities on CPU, where it computes the
attention the way PyTorch's math kernel does, with our mask. BART's hidden dropouts are functional
calls inside HF's layers, so for BART only the attention dropout gets faster.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

ATTENTION_NAME = "fast_dropout_sdpa"


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """F.dropout(x, p, training), with masks drawn 16 bits at a time on CPU."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    threshold = round(p * 65536)
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2 ** 63, None)  # uniform over all 64 bits
    uniforms = words.view(torch.int16)[:n].view(x.shape)  # four uniform 16-bit integers per draw
    keep = uniforms >= threshold - 32768
    return x * keep * (65536 / (65536 - threshold))


class FastDropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def fast_dropout_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """HF's sdpa attention; on CPU with dropout, softmax(q k^T * scaling + mask) dropped out, times v."""
    mask_only_by_flag = attention_mask is None and kwargs.get("is_causal", getattr(module, "is_causal", False))
    if dropout == 0.0 or query.device.type != "cpu" or mask_only_by_flag or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None and attention_mask.dtype == torch.bool:  # True = may attend, as in SDPA
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    elif attention_mask is not None:
        scores = scores + attention_mask
    probs = fast_dropout(scores.softmax(-1, dtype=torch.float32).to(query.dtype), dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION_NAME, fast_dropout_sdpa)


def use_fast_dropout(model: nn.Module, enabled: bool = True) -> nn.Module:
    """In place: every nn.Dropout becomes a FastDropout and HF configs inside use fast_dropout_sdpa
    (enabled=False undoes it: torch's dropout and HF's sdpa again)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if enabled and type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p, child.inplace).train(child.training))
            elif not enabled and type(child) is FastDropout:
                setattr(parent, name, nn.Dropout(child.p, child.inplace).train(child.training))
        config = getattr(parent, "config", None)
        if enabled and getattr(config, "_attn_implementation", None) in ("sdpa", "eager"):
            config._attn_implementation = ATTENTION_NAME
        elif not enabled and getattr(config, "_attn_implementation", None) == ATTENTION_NAME:
            config._attn_implementation = "sdpa"
    return model
