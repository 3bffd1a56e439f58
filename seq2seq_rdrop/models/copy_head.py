"""The pointer-generator copy head both model families can carry (`model.copy=true`), and its weights
file beside the Hugging Face checkpoint files (the HF model classes do not know about it)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

EXTRA_WEIGHTS = "extra_modules.safetensors"  # our heads that the HF model class does not know about


class CopyHead(nn.Module):
    """Pointer-generator mixing: P(w) = g * P_vocab(w) + (1 - g) * sum_{i: src_i = w} a_i, where a is an
    attention of the decoder state over the abstract's final hidden states and g = sigmoid(w.h).
    Most title characters occur in the abstract, so copying them is easier than generating them.
    Works on log-probabilities, so regularizers (R-Drop's KL) see the final mixed distribution.

    With `follow`, the copy attention also gets a learned bonus f(h_t) at every abstract position i
    whose predecessor src_{i-1} is the title token just fed in: the signal "carry on the span you are
    copying". 84% of CSL title characters sit in a span of 2+ characters copied from the abstract;
    without the bonus a small model must find the next position by content alone and drifts (titles
    like 覆盖目标量视觉器视觉盖).

    With `coverage`, positions whose token the title already holds get a learned bonus c(h_t)
    (negative once learned: the model copying a span a second time is its main remaining failure)."""

    def __init__(self, hidden_size: int, follow: bool = False, coverage: bool = False):
        super().__init__()
        self.query = nn.Linear(hidden_size, hidden_size)
        self.gate = nn.Linear(hidden_size, 1)
        self.follow = nn.Linear(hidden_size, 1) if follow else None
        self.coverage = nn.Linear(hidden_size, 1) if coverage else None
        if follow:  # start by following spans; the model learns where to stop
            nn.init.zeros_(self.follow.weight)
            nn.init.constant_(self.follow.bias, 2.0)
        if coverage:  # start neutral
            nn.init.zeros_(self.coverage.weight)
            nn.init.zeros_(self.coverage.bias)

    def forward(self, vocab_log_probs, tgt_hidden, src_hidden, src_ids, src_copyable, fed_ids=None):
        """vocab_log_probs [B,T,V], tgt_hidden [B,T,H], src_hidden [B,S,H], src_ids/src_copyable [B,S].
        fed_ids [B,T'] (T' >= T, needed with `follow` or `coverage`): the tokens fed in so far, the last T
        of them at the positions of tgt_hidden (a cached decoding step passes its whole prefix)."""
        T = tgt_hidden.size(1)
        scores = self.query(tgt_hidden) @ src_hidden.transpose(1, 2) / src_hidden.size(-1) ** 0.5  # [B,T,S]
        scores = scores.float()
        if self.follow is not None:
            previous = F.pad(src_ids[:, :-1], (1, 0), value=-1)  # src_{i-1}; nothing precedes position 0
            continues = fed_ids[:, -T:, None] == previous[:, None, :]  # [B,T,S]
            scores = scores + self.follow(tgt_hidden).float() * continues
        if self.coverage is not None:
            fed_here = (fed_ids[:, :, None] == src_ids[:, None, :]).int()  # [B,T',S]
            seen = fed_here.cummax(dim=1).values[:, -T:]  # src_i's token was fed at or before t
            scores = scores + self.coverage(tgt_hidden).float() * seen
        scores = scores.masked_fill(~src_copyable[:, None, :], torch.finfo(torch.float32).min)
        attention = scores.softmax(-1)
        copy = torch.zeros_like(vocab_log_probs).scatter_add_(
            -1, src_ids[:, None, :].expand(-1, attention.size(1), -1), attention)
        log_gate = F.logsigmoid(self.gate(tgt_hidden).float())  # [B,T,1]
        log_not_gate = F.logsigmoid(-self.gate(tgt_hidden).float())
        return torch.logaddexp(log_gate + vocab_log_probs, log_not_gate + copy.clamp_min(1e-12).log())


def save_copy_head(head: CopyHead | None, out_dir) -> None:
    """The head's weights as out_dir/extra_modules.safetensors (nothing without a head)."""
    from safetensors.torch import save_file

    if head is not None:
        tensors = {f"copy_head.{k}": v.detach().contiguous() for k, v in head.state_dict().items()}
        save_file(tensors, str(Path(out_dir) / EXTRA_WEIGHTS))


def load_copy_head(head: CopyHead | None, path) -> None:
    """Load the head's weights saved in checkpoint directory `path`, if there are any."""
    from safetensors.torch import load_file

    file = Path(path) / EXTRA_WEIGHTS
    if head is None:
        return
    if not file.is_file():  # a pretrained encoder without our head: the head starts fresh
        return
    state = {k[len("copy_head."):]: v for k, v in load_file(str(file)).items() if k.startswith("copy_head.")}
    missing, unexpected = head.load_state_dict(state, strict=False)
    # the span-following and coverage bonuses may be switched on (or off) for a checkpoint saved
    # without (with) them, e.g. fine-tuning an older pretrain.py checkpoint with +experiment=quality
    bonus = ("follow.", "coverage.")
    if [k for k in missing + unexpected if not k.startswith(bonus)]:
        raise RuntimeError(f"{file}: copy head weights do not fit (missing {missing}, unexpected {unexpected})")
    if missing:
        log.info("%s: no weights for %s; they start at their initial values", file, ", ".join(missing))
    if unexpected:
        log.warning("%s: %s not used (switched off for this run)", file, ", ".join(unexpected))
