"""Title generators behind one small interface.

Every model takes a batch dict of right-padded id tensors
    src_ids [B, S]   abstract with the model's special tokens
    tgt_in  [B, T]   teacher-forcing inputs (title tokens)
    tgt_out [B, T']  the tokens to predict (title + end token), pad where nothing is predicted
and returns log-probabilities [B, T', V] over `tgt_out` positions (`forward`).
For decoding it offers `start` (encode the abstract once) and `step` (one new token per row),
with `reorder` to follow beams. `use_cache=False` recomputes the whole prefix at every step:
slower, but the reference that the cached path must equal.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertForMaskedLM
from transformers.utils import logging as hf_logging

log = logging.getLogger(__name__)

hf_logging.disable_progress_bar()  # no "Loading weights" / "Writing model shards" bars at every checkpoint

MODEL_CONFIG_KEY = "seq2seq_rdrop"  # our own settings, stored inside the HF config.json


class KVCache:
    """Per-layer keys/values [N, heads, L, d] for incremental decoding. Duck-types the `update`
    method that Hugging Face attention layers call on a cache.

    The first call per layer stores the abstract; later calls append title positions into a
    preallocated buffer, so a step writes one position instead of copying the whole history.
    Following beams (`reorder`) moves only the title part while every row stays with the same
    abstract, which is what beam search does after its first expansion."""

    GROW = 32  # title positions allocated at a time

    def __init__(self):
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.filled: list[int] = []
        self.source_len = 0

    def _grow(self, buffer: torch.Tensor, needed: int) -> torch.Tensor:
        if needed <= buffer.size(2):
            return buffer
        bigger = buffer.new_empty(*buffer.shape[:2], needed + self.GROW, buffer.size(3))
        bigger[:, :, : buffer.size(2)] = buffer
        return bigger

    def update(self, key, value, layer_idx, *args, **kwargs):
        if layer_idx == len(self.keys):  # the abstract
            self.source_len = key.size(2)
            self.keys.append(key)
            self.values.append(value)
            self.filled.append(key.size(2))
            return key, value
        start, end = self.filled[layer_idx], self.filled[layer_idx] + key.size(2)
        self.keys[layer_idx] = self._grow(self.keys[layer_idx], end)
        self.values[layer_idx] = self._grow(self.values[layer_idx], end)
        self.keys[layer_idx][:, :, start:end] = key
        self.values[layer_idx][:, :, start:end] = value
        self.filled[layer_idx] = end
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

    def reorder(self, index: torch.Tensor, same_abstracts: bool = False) -> None:
        """Follow beams. `same_abstracts` (DecodeState knows it): every row keeps its abstract, so only
        the title part moves; otherwise whole rows are index-selected."""
        for layer, filled in enumerate(self.filled):
            for buffers in (self.keys, self.values):
                if same_abstracts:
                    title = slice(self.source_len, filled)
                    buffers[layer][:, :, title] = buffers[layer][:, :, title].index_select(0, index)
                else:
                    buffers[layer] = buffers[layer].index_select(0, index)


@dataclass
class DecodeState:
    """What a model needs between decoding steps. Tensors have one row per hypothesis.

    Tensors in `extras` must depend only on the abstract a row decodes (its encoder states, masks,
    positions), never on the row's own title prefix: row-specific history lives in caches with a
    `reorder` method. That lets `reorder` skip them when every row stays with its abstract, which is
    what beam search does after the first expansion (it only swaps rows among one abstract's beams);
    copying [rows, S, H] encoder states at every step would cost more than the step itself."""

    src_ids: torch.Tensor
    prefix: torch.Tensor  # tokens generated so far [N, t]
    extras: dict = field(default_factory=dict)  # model-specific tensors (row-aligned) and caches
    rows: torch.Tensor | None = None  # which abstract (row of the batch given to `start`) each row decodes

    def reorder(self, index: torch.Tensor) -> "DecodeState":
        rows = self.rows if self.rows is not None else torch.arange(self.src_ids.size(0), device=index.device)
        new_rows = rows.index_select(0, index)
        same_abstracts = new_rows.shape == rows.shape and torch.equal(new_rows, rows)
        extras = {}
        for key, value in self.extras.items():
            if isinstance(value, torch.Tensor):
                extras[key] = value if same_abstracts else value.index_select(0, index)
            elif hasattr(value, "reorder"):  # caches: they move what is row-specific
                value.reorder(index, same_abstracts)
                extras[key] = value
            else:
                extras[key] = value
        src_ids = self.src_ids if same_abstracts else self.src_ids.index_select(0, index)
        return DecodeState(src_ids, self.prefix.index_select(0, index), extras, new_rows)


class Seq2SeqModel(nn.Module):
    """Shared plumbing: special ids, batch building, uncached decoding."""

    family = "base"

    def __init__(self, pad_id: int, bos_id: int, eos_id: int, vocab_size: int):
        super().__init__()
        self.pad_id, self.bos_id, self.eos_id, self.vocab_size = pad_id, bos_id, eos_id, vocab_size

    # --- batches -----------------------------------------------------------------------------
    def build_example(self, src_tokens: list[int], tgt_tokens: list[int] | None):
        """Abstract/title token ids (no specials) -> (src, tgt_in, tgt_out) id lists."""
        raise NotImplementedError

    def collate(self, examples: list[tuple]) -> dict[str, torch.Tensor]:
        def pad(seqs):
            width = max(len(s) for s in seqs)
            return torch.tensor([s + [self.pad_id] * (width - len(s)) for s in seqs], dtype=torch.long)

        batch = {"src_ids": pad([e[0] for e in examples])}
        if examples[0][1] is not None:
            batch["tgt_in"] = pad([e[1] for e in examples])
            batch["tgt_out"] = pad([e[2] for e in examples])
        return batch

    def special_ids(self) -> list[int]:
        return sorted({self.pad_id, self.bos_id, self.eos_id, *self.extra_special_ids()})

    def extra_special_ids(self) -> list[int]:
        return []

    def input_embeddings(self) -> nn.Embedding:
        raise NotImplementedError

    # --- decoding ----------------------------------------------------------------------------
    def start(self, src_ids: torch.Tensor, use_cache: bool = True) -> tuple[DecodeState, torch.Tensor]:
        """Encode the abstracts; return the state and log-probs of the first title token [B, V]."""
        prefix = src_ids.new_zeros(src_ids.size(0), 0)
        if not use_cache:
            state = DecodeState(src_ids, prefix, {"cached": False})
            return state, self._recompute(state)
        return self._start_cached(src_ids)

    def step(self, state: DecodeState, tokens: torch.Tensor) -> tuple[DecodeState, torch.Tensor]:
        """Append `tokens` [N] to each row's prefix; return log-probs of the next token [N, V]."""
        state.prefix = torch.cat([state.prefix, tokens[:, None]], dim=1)
        if state.extras.get("cached") is False:
            return state, self._recompute(state)
        return state, self._step_cached(state, tokens)

    def _recompute(self, state: DecodeState) -> torch.Tensor:
        """Reference decoding: run the full model on abstract + whole prefix, keep the last position."""
        batch = self.decoder_batch(state.src_ids, state.prefix)
        log_probs = self(batch)
        return log_probs[:, state.prefix.size(1)]

    def decoder_batch(self, src_ids, prefix) -> dict:
        raise NotImplementedError

    def _start_cached(self, src_ids):
        raise NotImplementedError

    def _step_cached(self, state, tokens):
        raise NotImplementedError

    # --- saving ------------------------------------------------------------------------------
    hf_model: nn.Module  # the wrapped Hugging Face model (BertForMaskedLM, BartForConditionalGeneration)

    def save_pretrained(self, out_dir: str | Path) -> None:
        """HF files (config.json with our settings, safetensors) plus our extra heads."""
        head = getattr(self, "copy_head", None)
        self.hf_model.config.update({MODEL_CONFIG_KEY: {
            "family": self.family, "copy": head is not None,
            "copy_follow": head is not None and head.follow is not None,
            "copy_coverage": head is not None and head.coverage is not None}})
        self.hf_model.save_pretrained(str(out_dir))
        save_extra_modules(self, out_dir)


def saved_copy_options(config, copy: bool | None, copy_follow: bool | None, copy_coverage: bool | None) -> dict:
    """`copy` (the copy head), `copy_follow` and `copy_coverage` (its bonuses): each as requested, else as
    the checkpoint was saved (off for plain HF checkpoints). Keyword arguments for the model classes."""
    saved = getattr(config, MODEL_CONFIG_KEY, None) or {}
    requested = {"copy": copy, "copy_follow": copy_follow, "copy_coverage": copy_coverage}
    return {name: bool(saved.get(name, False) if value is None else value) for name, value in requested.items()}


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean [B, Q, K] 'may attend' -> additive mask [B, 1, Q, K] for HF attention (eager or sdpa)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )[:, None]


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


def unilm_mask(src_valid: torch.Tensor, tgt_valid: torch.Tensor) -> torch.Tensor:
    """The UniLM seq2seq mask over [abstract ; title], boolean [B, S+T, S+T] (True = may attend).

    Abstract positions see every abstract token and no title token; title position j sees every
    abstract token and title positions <= j. Padding is never attended to."""
    S, T = src_valid.size(1), tgt_valid.size(1)
    key_valid = torch.cat([src_valid, tgt_valid], dim=1)  # [B, L]
    idx = torch.arange(S + T, device=src_valid.device)
    q, k = idx[:, None], idx[None, :]
    structure = (k < S) | ((q >= S) & (k <= q))  # [L, L]
    return structure[None] & key_valid[:, None, :]


class UniLM(Seq2SeqModel):
    """One BERT encoder with a tied masked-LM head, used as a seq2seq model by its attention mask.

    Input `[CLS] abstract [SEP] title [SEP]`, segment ids 0 for `[CLS] abstract [SEP]` and 1 for the
    title. The hidden state at the abstract's `[SEP]` predicts the first title token, the state at
    title token i predicts token i+1, the last one predicts `[SEP]` (end of title)."""

    family = "unilm"

    def __init__(self, bert: BertForMaskedLM, pad_id: int, cls_id: int, sep_id: int, copy: bool = False,
                 copy_follow: bool = False, copy_coverage: bool = False):
        super().__init__(pad_id=pad_id, bos_id=cls_id, eos_id=sep_id, vocab_size=bert.config.vocab_size)
        self.bert = bert
        self.max_positions = bert.config.max_position_embeddings
        self.copy_head = (CopyHead(bert.config.hidden_size, follow=copy_follow, coverage=copy_coverage)
                          if copy else None)
        self._extra_specials: list[int] = []

    def with_tokenizer_specials(self, tokenizer) -> "UniLM":
        """[UNK] and [MASK] are never generated nor drawn by random replacement."""
        self._extra_specials = [i for i in (tokenizer.unk_token_id, tokenizer.mask_token_id) if i is not None]
        return self

    def extra_special_ids(self) -> list[int]:
        return self._extra_specials

    @classmethod
    def from_scratch(cls, tokenizer, hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024,
                     dropout=0.1, max_positions=512, copy=False, copy_follow=False, copy_coverage=False,
                     **unused) -> "UniLM":
        config = BertConfig(
            vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
            num_attention_heads=num_heads, intermediate_size=intermediate_size,
            hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
            max_position_embeddings=max_positions, type_vocab_size=2, pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
        )
        return cls(BertForMaskedLM(config), tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id,
                   copy=copy, copy_follow=copy_follow, copy_coverage=copy_coverage).with_tokenizer_specials(tokenizer)

    @classmethod
    def from_pretrained(cls, path, tokenizer=None, dropout: float | None = None, copy: bool | None = None,
                        copy_follow: bool | None = None, copy_coverage: bool | None = None,
                        **unused) -> "UniLM":
        overrides = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
        bert = BertForMaskedLM.from_pretrained(str(path), **overrides)
        if tokenizer is None:
            from .tokenizer import load_tokenizer
            tokenizer = load_tokenizer(path)
        model = cls(bert, tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id,
                    **saved_copy_options(bert.config, copy, copy_follow, copy_coverage))
        load_extra_modules(model, path)
        return model.with_tokenizer_specials(tokenizer)

    @property
    def hf_model(self) -> BertForMaskedLM:
        return self.bert

    def set_dropout(self, p: float, attention: float | None = None) -> None:
        """Hidden-state dropout p; attention-probability dropout `attention` (None: p as well)."""
        attention = p if attention is None else attention
        for name, module in self.named_modules():
            if isinstance(module, nn.Dropout):
                module.p = attention if name.endswith("attention.self.dropout") else p
        self.bert.config.hidden_dropout_prob, self.bert.config.attention_probs_dropout_prob = p, attention

    def dropout_rates(self) -> tuple[float, float]:
        return self.bert.config.hidden_dropout_prob, self.bert.config.attention_probs_dropout_prob

    def input_embeddings(self) -> nn.Embedding:
        return self.bert.bert.embeddings.word_embeddings

    def build_example(self, src_tokens, tgt_tokens):
        src = [self.bos_id] + src_tokens + [self.eos_id]
        if tgt_tokens is None:
            return src, None, None
        return src, list(tgt_tokens), list(tgt_tokens) + [self.eos_id]

    def decoder_batch(self, src_ids, prefix):
        return {"src_ids": src_ids, "tgt_in": prefix}

    # --- the network -------------------------------------------------------------------------
    def _run_layers(self, ids, segments, positions, allowed, cache=None) -> torch.Tensor:
        embeddings = self.bert.bert.embeddings
        hidden = embeddings(input_ids=ids, token_type_ids=segments, position_ids=positions)
        mask = _additive(allowed, hidden.dtype)
        for layer in self.bert.bert.encoder.layer:
            hidden = layer(hidden, mask, cache=cache)
        return hidden

    def _log_probs(self, hidden, src_hidden=None, src_ids=None, fed_ids=None) -> torch.Tensor:
        """hidden [B,T,H] -> log P [B,T,V]; with the copy head, mixed with copying from the abstract.
        fed_ids [B,T'>=T]: the tokens fed in so far ([SEP], then the title), the last T at these positions."""
        log_probs = F.log_softmax(self.bert.cls(hidden).float(), dim=-1)
        if self.copy_head is None:
            return log_probs
        copyable = (src_ids != self.pad_id) & (src_ids != self.bos_id) & (src_ids != self.eos_id)
        return self.copy_head(log_probs, hidden, src_hidden, src_ids, copyable, fed_ids)

    def forward(self, batch: dict) -> torch.Tensor:
        src, tgt = batch["src_ids"], batch["tgt_in"]
        B, S = src.shape
        T = tgt.size(1)
        src_valid, tgt_valid = src != self.pad_id, tgt != self.pad_id
        src_len = src_valid.sum(1)
        if S + T > self.max_positions and int(src_len.max()) + T > self.max_positions:
            raise ValueError(f"abstract+title of {int(src_len.max()) + T} tokens exceed the model's "
                             f"{self.max_positions} positions: lower data.max_source_len")
        arange_t = torch.arange(T, device=src.device)
        positions = torch.cat([torch.arange(S, device=src.device).expand(B, S), src_len[:, None] + arange_t], 1)
        segments = torch.cat([torch.zeros_like(src), torch.ones_like(tgt)], dim=1)
        hidden = self._run_layers(torch.cat([src, tgt], 1), segments, positions, unilm_mask(src_valid, tgt_valid))
        last_src = hidden[torch.arange(B, device=src.device), src_len - 1]  # the abstract's [SEP]
        out = torch.cat([last_src[:, None], hidden[:, S:]], dim=1)  # [B, T+1, H]
        fed = torch.cat([src.new_full((B, 1), self.eos_id), tgt], dim=1)  # the token at each of those positions
        return self._log_probs(out, hidden[:, :S], src, fed)

    def _start_cached(self, src_ids):
        B, S = src_ids.shape
        src_valid = src_ids != self.pad_id
        src_len = src_valid.sum(1)
        cache = KVCache()
        allowed = unilm_mask(src_valid, src_valid[:, :0])
        positions = torch.arange(S, device=src_ids.device).expand(B, S)
        hidden = self._run_layers(src_ids, torch.zeros_like(src_ids), positions, allowed, cache)
        last = hidden[torch.arange(B, device=src_ids.device), src_len - 1]
        state = DecodeState(src_ids, src_ids.new_zeros(B, 0),
                            {"cache": cache, "key_valid": src_valid, "next_pos": src_len.clone(), "src_hidden": hidden})
        return state, self._log_probs(last[:, None], hidden, src_ids, src_ids.new_full((B, 1), self.eos_id))[:, 0]

    def _step_cached(self, state, tokens):
        x = state.extras
        key_valid = torch.cat([x["key_valid"], torch.ones_like(tokens[:, None], dtype=torch.bool)], 1)
        hidden = self._run_layers(tokens[:, None], torch.ones_like(tokens[:, None]), x["next_pos"][:, None],
                                  key_valid[:, None, :], x["cache"])
        x["key_valid"], x["next_pos"] = key_valid, x["next_pos"] + 1
        fed = F.pad(state.prefix, (1, 0), value=self.eos_id)  # [SEP] + the title so far (this step's token last)
        return self._log_probs(hidden, x["src_hidden"], state.src_ids, fed)[:, 0]


EXTRA_WEIGHTS = "extra_modules.safetensors"  # our heads that the HF model class does not know about


def save_extra_modules(model: Seq2SeqModel, out_dir) -> None:
    from safetensors.torch import save_file

    if getattr(model, "copy_head", None) is not None:
        tensors = {f"copy_head.{k}": v.detach().contiguous() for k, v in model.copy_head.state_dict().items()}
        save_file(tensors, str(Path(out_dir) / EXTRA_WEIGHTS))


def load_extra_modules(model: Seq2SeqModel, path) -> None:
    from safetensors.torch import load_file

    file = Path(path) / EXTRA_WEIGHTS
    if getattr(model, "copy_head", None) is None:
        return
    if not file.is_file():  # a pretrained encoder without our head: the head starts fresh
        return
    state = {k[len("copy_head."):]: v for k, v in load_file(str(file)).items() if k.startswith("copy_head.")}
    missing, unexpected = model.copy_head.load_state_dict(state, strict=False)
    # the span-following and coverage bonuses may be switched on (or off) for a checkpoint saved
    # without (with) them, e.g. fine-tuning an older pretrain.py checkpoint with +experiment=quality
    bonus = ("follow.", "coverage.")
    if [k for k in missing + unexpected if not k.startswith(bonus)]:
        raise RuntimeError(f"{file}: copy head weights do not fit (missing {missing}, unexpected {unexpected})")
    if missing:
        log.info("%s: no weights for %s; they start at their initial values", file, ", ".join(missing))
    if unexpected:
        log.warning("%s: %s not used (switched off for this run)", file, ", ".join(unexpected))


def read_family(path: str | Path) -> str:
    """Which of our model classes a checkpoint directory holds (from its config.json)."""
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path}: not a model checkpoint directory (no config.json)")
    config = json.loads(config_file.read_text())
    ours = config.get(MODEL_CONFIG_KEY) or {}
    if "family" in ours:
        return ours["family"]
    model_type = config.get("model_type", "")
    if model_type in ("bart", "mbart"):
        return "bart"
    return "unilm"  # any BERT-family checkpoint (bert, roberta-wwm layouts) is used as a UniLM


MODEL_CLASSES: dict[str, type[Seq2SeqModel]] = {"unilm": UniLM}  # bart.py adds "bart" when imported


def _model_class(family: str) -> type[Seq2SeqModel]:
    from . import bart  # noqa: F401  (registers the BART-style family)

    if family not in MODEL_CLASSES:
        raise ValueError(f"model.family={family!r} is not one of {sorted(MODEL_CLASSES)}")
    return MODEL_CLASSES[family]


def build_model(cfg, tokenizer) -> Seq2SeqModel:
    """From the `model` config group: a fresh model, or a local pretrained checkpoint by path."""
    model_class = _model_class(cfg.family)
    kwargs = {k: v for k, v in cfg.items() if k not in ("family", "pretrained", "name", "trim_vocab")}
    if cfg.get("pretrained"):
        return model_class.from_pretrained(cfg.pretrained, tokenizer=tokenizer, dropout=cfg.get("dropout"),
                                         copy=cfg.get("copy"), copy_follow=cfg.get("copy_follow"),
                                         copy_coverage=cfg.get("copy_coverage"))
    return model_class.from_scratch(tokenizer, **kwargs)


def load_model(path: str | Path, tokenizer=None) -> Seq2SeqModel:
    return _model_class(read_family(path)).from_pretrained(path, tokenizer=tokenizer)

