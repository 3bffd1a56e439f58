"""The interface every title generator offers, and what the families (unilm.py, bart.py) share.

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

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers.models.bert.modeling_bert import BertLayer
from transformers.utils import logging as hf_logging

from ..tokenizer import load_tokenizer, vocab_sha256
from .copy_head import CopyHead, load_copy_head, save_copy_head

hf_logging.disable_progress_bar()  # no "Loading weights" / "Writing model shards" bars at every checkpoint

MODEL_CONFIG_KEY = "seq2seq_rdrop"  # our own settings, stored inside the HF config.json
# The keyword under which Hugging Face layers take a key/value cache: transformers renamed
# `past_key_values` to `cache` within 5.x (5.17 has the old name, 5.24 the new one) and a layer
# given the other name ignores it silently, so the installed version decides.
CACHE_KEYWORD = "cache" if "cache" in inspect.signature(BertLayer.forward).parameters else "past_key_values"


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


def saved_copy_options(config, copy: bool | None, copy_follow: bool | None, copy_coverage: bool | None) -> dict:
    """`copy` (the copy head), `copy_follow` and `copy_coverage` (its bonuses): each as requested, else as
    the checkpoint was saved (off for plain HF checkpoints). Keyword arguments for the model classes."""
    saved = getattr(config, MODEL_CONFIG_KEY, None) or {}
    requested = {"copy": copy, "copy_follow": copy_follow, "copy_coverage": copy_coverage}
    return {name: bool(saved.get(name, False) if value is None else value) for name, value in requested.items()}


def check_vocab_matches(config, tokenizer) -> None:
    """ValueError when config.json holds the vocab_sha256 of the tokenizer the model was trained with and
    `tokenizer` is another (another run's, or a reordered vocab.txt). Checkpoints saved before the hash
    was kept, and plain HF ones, carry none: they load as before."""
    expected = (getattr(config, MODEL_CONFIG_KEY, None) or {}).get("vocab_sha256")
    if expected and vocab_sha256(tokenizer) != expected:
        raise ValueError(f"its tokenizer files ({len(tokenizer)} tokens) are not the vocabulary the model was trained "
                         "with (vocab_sha256 in config.json differs): use the tokenizer files saved with the model")


def never_generated(tokenizer) -> list[int]:
    """[UNK] and [MASK] (or <unk>/<mask>): never generated nor drawn by random replacement."""
    return [i for i in (tokenizer.unk_token_id, tokenizer.mask_token_id) if i is not None]


class Seq2SeqModel(nn.Module):
    """A Hugging Face model (held as `self.<hf_attribute>`) with an optional copy head (`self.copy_head`),
    behind the interface above. Shared plumbing: special ids, batches, loading and saving, dropout,
    the copy head's mixing, uncached decoding, the decoding-memory estimate. A family defines the class
    attributes below, `from_scratch` (whose keyword arguments are its size keys), `from_hf`, the network
    (`forward`, `_start_cached`, `_step_cached`), `check_positions` and `trim_vocabulary`."""

    family = "base"
    hf_class: type[nn.Module]  # BertForMaskedLM, BartForConditionalGeneration
    hf_attribute: str  # the HF model's attribute name ("bert", "bart"): the prefix of its weights' names
    dropout_config_keys: tuple[str, str]  # the HF config's (hidden, attention) dropout fields
    cached_layers_key: str  # the HF config's count of the layers that keep a key/value cache while decoding
    layer_keys: dict[str, str] = {}  # the HF config's layer counts -> the stem of those layers' weight names
    source_states = 1  # [S, H] tensors per hypothesis besides the cache (the abstract's states for the copy head)
    hf_generates = False  # HF generate() decodes the HF model as the family does (bench_decode.py's peer)
    hf_model_types: tuple[str, ...] = ()  # a plain HF checkpoint's config.json model_type read as this family
    # model options of a fresh model that are not sizes (build_model passes every other one to from_scratch)
    NOT_SIZES = ("dropout", "copy", "copy_follow", "copy_coverage")

    def __init__(self, hf_model: nn.Module, pad_id: int, bos_id: int, eos_id: int, extra_specials=(),
                 copy: bool = False, copy_follow: bool = False, copy_coverage: bool = False):
        super().__init__()
        config = hf_model.config
        self.pad_id, self.bos_id, self.eos_id, self.vocab_size = pad_id, bos_id, eos_id, config.vocab_size
        self.extra_special_ids = sorted(set(extra_specials))  # besides pad/bos/eos: never generated
        self.max_positions = config.max_position_embeddings
        setattr(self, self.hf_attribute, hf_model)  # registered before the copy head: parameter order as saved
        self.copy_head = (CopyHead(config.hidden_size, follow=copy_follow, coverage=copy_coverage)
                          if copy else None)

    @property
    def hf_model(self) -> nn.Module:
        return getattr(self, self.hf_attribute)

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_scratch(cls, tokenizer, **settings) -> "Seq2SeqModel":
        """A fresh model sized by the `model` config group (conf/model/*_small.yaml)."""
        raise NotImplementedError

    @classmethod
    def size_keys(cls) -> tuple[str, ...]:
        """The `model` options that size a fresh model (each an integer >= 1): from_scratch's keyword arguments
        but dropout and the copy options, in its order."""
        parameters = list(inspect.signature(cls.from_scratch).parameters.values())[1:]  # after the tokenizer
        return tuple(p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD and p.name not in cls.NOT_SIZES)

    @classmethod
    def from_hf(cls, hf_model: nn.Module, tokenizer, **copy_options) -> "Seq2SeqModel":
        """Wrap a Hugging Face model that goes with `tokenizer` (special ids from both)."""
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, path, tokenizer=None, dropout: float | None = None, copy: bool | None = None,
                        copy_follow: bool | None = None, copy_coverage: bool | None = None,
                        **unused) -> "Seq2SeqModel":
        """A checkpoint directory: ours (with our settings and copy head) or a plain HF one of this family.
        `dropout` None keeps the checkpoint's; copy options None keep what the checkpoint was saved with.
        The tokenizer is the directory's own unless given."""
        from .weights_fit import check_weights_fit_config  # it builds the model on the meta device: after base

        check_weights_fit_config(cls, path)  # before Hugging Face allocates what config.json asks for
        overrides = {} if dropout is None else dict.fromkeys(cls.dropout_config_keys, dropout)
        hf_model = cls.hf_class.from_pretrained(str(path), **overrides)
        if tokenizer is None:
            tokenizer = load_tokenizer(path)
        check_vocab_matches(hf_model.config, tokenizer)
        model = cls.from_hf(hf_model, tokenizer, **saved_copy_options(hf_model.config, copy, copy_follow,
                                                                      copy_coverage))
        load_copy_head(model.copy_head, path)
        return model

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
        """Ids beam search never generates (but the end token) and random replacement never draws."""
        return sorted({self.pad_id, self.bos_id, self.eos_id, *self.extra_special_ids})

    def input_embeddings(self) -> nn.Embedding:
        raise NotImplementedError

    def trim_vocabulary(self, index: torch.Tensor, old_to_new: dict[int, int]) -> None:
        """Keep only the `index` rows of the token embeddings and the output layer, in place (model.trim_vocab;
        vocab_trim.trim_model remaps the ids and configs the families share)."""
        raise ValueError(f"model.trim_vocab: no vocabulary trimming for model family {self.family!r}")

    # --- dropout -----------------------------------------------------------------------------
    def set_dropout(self, p: float, attention: float | None = None) -> None:
        """Hidden-state dropout p; attention-probability dropout `attention` (None: p as well)."""
        attention = p if attention is None else attention
        self._set_dropout_modules(p, attention)
        hidden_key, attention_key = self.dropout_config_keys
        setattr(self.hf_model.config, hidden_key, p)
        setattr(self.hf_model.config, attention_key, attention)

    def _set_dropout_modules(self, p: float, attention: float) -> None:
        raise NotImplementedError

    def dropout_rates(self) -> tuple[float, float]:
        """(hidden, attention) dropout as now in force."""
        hidden_key, attention_key = self.dropout_config_keys
        return getattr(self.hf_model.config, hidden_key), getattr(self.hf_model.config, attention_key)

    # --- the copy head -----------------------------------------------------------------------
    def _with_copying(self, log_probs, hidden, src_hidden, src_ids, fed_ids) -> torch.Tensor:
        """Vocabulary log P [B,T,V] mixed with copying from the abstract (with the copy head; else as is).
        hidden [B,T,H] at the predicting positions, src_hidden [B,S,H]; fed_ids [B,T'>=T]: the tokens fed
        in so far, the last T at these positions. Specials are never copied."""
        if self.copy_head is None:
            return log_probs
        copyable = (src_ids != self.pad_id) & (src_ids != self.bos_id) & (src_ids != self.eos_id)
        return self.copy_head(log_probs, hidden, src_hidden, src_ids, copyable, fed_ids)

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

    def check_positions(self, max_source_len: int, max_len: int) -> None:
        """ValueError (one line) when abstracts of max_source_len tokens and titles of max_len tokens cannot fit
        the model's max_positions: a clear error instead of an index error deep in the model."""
        raise NotImplementedError

    def estimate_decode_bytes(self, rows: int, source_len: int, max_len: int) -> int:
        """About what beam search holds for `rows` hypotheses: the key/value cache (abstract + title + its growth
        margin, every cached layer), the abstract's states (source_states) and a few [rows, vocabulary] score
        tensors (decode_options.check_fits weighs it against the memory free)."""
        config = self.hf_model.config
        hidden, layers = int(config.hidden_size), int(getattr(config, self.cached_layers_key))
        title = max_len + 33  # KVCache.GROW positions of margin
        per_row = layers * 2 * hidden * (source_len + title) + self.source_states * source_len * hidden
        per_row += 4 * int(self.vocab_size)
        return rows * per_row * 4  # float32

    def _start_cached(self, src_ids):
        raise NotImplementedError

    def _step_cached(self, state, tokens):
        raise NotImplementedError

    # --- saving ------------------------------------------------------------------------------
    def save_pretrained(self, out_dir: str | Path, tokenizer=None) -> None:
        """HF files (config.json with our settings, safetensors) plus the copy head's weights. With the
        tokenizer saved beside it, config.json also holds its vocab_sha256 (checked by from_pretrained)."""
        head = self.copy_head
        self.hf_model.config.update({MODEL_CONFIG_KEY: {
            "family": self.family, "copy": head is not None,
            "copy_follow": head is not None and head.follow is not None,
            "copy_coverage": head is not None and head.coverage is not None,
            **({"vocab_sha256": vocab_sha256(tokenizer)} if tokenizer is not None else {})}})
        self.hf_model.save_pretrained(str(out_dir))
        save_copy_head(head, out_dir)
