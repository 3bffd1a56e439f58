"""BART (encoder-decoder) behind the same interface as UniLM: `python train.py model=bart_small`,
or a local pretrained checkpoint directory with `model=bart model.pretrained=PATH`.

Batches: src `[bos] abstract [eos]`, tgt_in `[decoder_start] title`, tgt_out `title [eos]`.
With our character tokenizer (a BertTokenizer) bos is [CLS], eos is [SEP], pad is [PAD] and a
fresh model starts the decoder with [CLS]; a pretrained checkpoint keeps its own
`decoder_start_token_id` (e.g. [SEP] for fnlp/bart-base-chinese), and a BPE-style tokenizer
without [CLS]/[SEP] falls back to its bos/eos tokens.

The token embedding is called once for the abstract and once for the title (the encoder and the
decoder share it), so a forward hook on `input_embeddings()` sees both, which is what the
gradient-penalty regularizer needs.

Cached decoding keeps Hugging Face's EncoderDecoderCache (self-attention keys/values grow by one
position per step; cross-attention keys/values are computed once from the encoder output).
Beam search only ever reorders rows within the beams of one abstract, and the cross-attention
keys/values depend on the abstract alone, so the adapter reorders them only when a reorder
moves a row to another abstract (the first expansion to beams, or any other caller's index).
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BartConfig, BartForConditionalGeneration
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from ..vocab_trim import slice_embedding, tie_weight
from .base import CACHE_KEYWORD, DecodeState, Seq2SeqModel, never_generated

log = logging.getLogger(__name__)


class BartCache:
    """Hugging Face's EncoderDecoderCache with the `reorder(index, same_abstracts)` that DecodeState calls.
    Cross-attention keys/values depend on the abstract alone: they move only when a row changes abstract."""

    def __init__(self, cache: EncoderDecoderCache):
        self.cache = cache

    def reorder(self, index: torch.Tensor, same_abstracts: bool = False) -> None:
        self.cache.self_attention_cache.reorder_cache(index)
        if not same_abstracts:
            self.cache.cross_attention_cache.reorder_cache(index)


def _first_id(*candidates):
    return next((c for c in candidates if c is not None), None)


class BartSeq2Seq(Seq2SeqModel):
    """Hugging Face `BartForConditionalGeneration` (tied embeddings and LM head) as a title generator."""

    family = "bart"
    hf_class = BartForConditionalGeneration
    hf_attribute = "bart"
    dropout_config_keys = ("dropout", "attention_dropout")
    cached_layers_key = "decoder_layers"
    layer_keys = {"encoder_layers": "encoder.layers", "decoder_layers": "decoder.layers"}
    source_states = 2  # the encoder's output [S, H], counted twice by the decoding-memory estimate
    hf_generates = True  # an encoder-decoder: HF generate() runs it (UniLM's seq2seq mask is ours alone)
    hf_model_types = ("bart", "mbart")

    def __init__(self, bart: BartForConditionalGeneration, pad_id: int, bos_id: int, eos_id: int,
                 decoder_start_id: int, extra_specials=(), **copy_options):
        super().__init__(bart, pad_id, bos_id, eos_id, extra_specials=[decoder_start_id, *extra_specials],
                         **copy_options)
        self.decoder_start_id = decoder_start_id

    # --- construction ------------------------------------------------------------------------
    @staticmethod
    def _pad_bos_eos(tokenizer, config=None) -> tuple[int, int, int]:
        """(pad, bos, eos): [PAD]/[CLS]/[SEP] for BERT-style vocabularies, else the tokenizer's pad/bos/eos."""
        pad = _first_id(tokenizer.pad_token_id, getattr(config, "pad_token_id", None))
        bos = _first_id(tokenizer.cls_token_id, tokenizer.bos_token_id, getattr(config, "bos_token_id", None))
        eos = _first_id(tokenizer.sep_token_id, tokenizer.eos_token_id, getattr(config, "eos_token_id", None))
        if None in (pad, bos, eos):
            raise ValueError(f"the tokenizer needs pad and [CLS]/bos and [SEP]/eos tokens "
                             f"(pad={pad}, bos={bos}, eos={eos})")
        return pad, bos, eos

    @classmethod
    def from_scratch(cls, tokenizer, hidden_size=256, encoder_layers=3, decoder_layers=3, num_heads=4,
                     ffn_size=1024, dropout=0.1, max_positions=512, copy=False, copy_follow=False,
                     copy_coverage=False, **unused) -> "BartSeq2Seq":
        pad, bos, eos = cls._pad_bos_eos(tokenizer)
        config = BartConfig(
            vocab_size=len(tokenizer), d_model=hidden_size, encoder_layers=encoder_layers,
            decoder_layers=decoder_layers, encoder_attention_heads=num_heads, decoder_attention_heads=num_heads,
            encoder_ffn_dim=ffn_size, decoder_ffn_dim=ffn_size, dropout=dropout, attention_dropout=dropout,
            activation_dropout=0.0, max_position_embeddings=max_positions, pad_token_id=pad, bos_token_id=bos,
            eos_token_id=eos, decoder_start_token_id=bos, forced_bos_token_id=None, forced_eos_token_id=None,
            tie_word_embeddings=True, scale_embedding=False,
        )
        return cls.from_hf(BartForConditionalGeneration(config), tokenizer, copy=bool(copy),
                           copy_follow=bool(copy_follow), copy_coverage=bool(copy_coverage))

    @classmethod
    def from_hf(cls, hf_model: BartForConditionalGeneration, tokenizer, **copy_options) -> "BartSeq2Seq":
        """Embeddings grown to the tokenizer if it is larger; the decoder starts with the checkpoint's own
        decoder_start_token_id (a fresh model's is [CLS])."""
        if len(tokenizer) > hf_model.config.vocab_size:
            log.warning("tokenizer has %d tokens, the checkpoint's vocabulary %d: resizing the embeddings",
                        len(tokenizer), hf_model.config.vocab_size)
            hf_model.resize_token_embeddings(len(tokenizer))
        pad, bos, eos = cls._pad_bos_eos(tokenizer, hf_model.config)
        start = _first_id(hf_model.config.decoder_start_token_id, bos)
        return cls(hf_model, pad, bos, eos, decoder_start_id=start, extra_specials=never_generated(tokenizer),
                   **copy_options)

    def _set_dropout_modules(self, p: float, attention: float) -> None:
        """BART keeps its rates as float attributes (`dropout` of its attention modules, layers and stacks)."""
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = p
            elif module is not self and isinstance(getattr(module, "dropout", None), (int, float)):
                module.dropout = attention if type(module).__name__.endswith("Attention") else p

    def input_embeddings(self) -> nn.Embedding:
        return self.bart.model.shared

    def trim_vocabulary(self, index: torch.Tensor, old_to_new: dict[int, int]) -> None:
        bart = self.bart
        weight = slice_embedding(bart.model.shared, index, old_to_new)
        for module in (bart.model.encoder.embed_tokens, bart.model.decoder.embed_tokens):
            if module is not bart.model.shared:  # untied copies in some checkpoints
                tie_weight(module, weight)
                if module.padding_idx is not None:
                    module.padding_idx = old_to_new.get(module.padding_idx)
        tie_weight(bart.lm_head, weight)
        bart.final_logits_bias = bart.final_logits_bias.index_select(1, index).clone()
        self.decoder_start_id = old_to_new[self.decoder_start_id]

    # --- batches -----------------------------------------------------------------------------
    def build_example(self, src_tokens, tgt_tokens):
        src = [self.bos_id] + list(src_tokens) + [self.eos_id]
        if tgt_tokens is None:
            return src, None, None
        return src, [self.decoder_start_id] + list(tgt_tokens), list(tgt_tokens) + [self.eos_id]

    def decoder_batch(self, src_ids, prefix):
        start = prefix.new_full((prefix.size(0), 1), self.decoder_start_id)
        return {"src_ids": src_ids, "tgt_in": torch.cat([start, prefix], dim=1)}

    def check_positions(self, max_source_len: int, max_len: int) -> None:
        if max_source_len + 2 > self.max_positions or max_len + 1 > self.max_positions:  # encoder, decoder apart
            raise ValueError(f"max_source_len={max_source_len} (+2 special tokens) or decode.max_len={max_len} (+1) "
                             f"exceed the model's {self.max_positions} positions")

    # --- the network -------------------------------------------------------------------------
    def _check_lengths(self, S: int, T: int) -> None:
        if S > self.max_positions:
            raise ValueError(f"abstract of {S} tokens exceeds the model's {self.max_positions} positions: "
                             "lower data.max_source_len")
        if T > self.max_positions:
            raise ValueError(f"title of {T} tokens exceeds the model's {self.max_positions} positions")

    def _encode(self, src_ids: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        embeds = self.input_embeddings()(src_ids)
        return self.bart.model.encoder(inputs_embeds=embeds, attention_mask=src_mask).last_hidden_state

    def _decode(self, tgt_ids, src_hidden, src_mask, cache=None) -> torch.Tensor:
        embeds = self.input_embeddings()(tgt_ids)
        return self.bart.model.decoder(inputs_embeds=embeds, encoder_hidden_states=src_hidden,
                                       encoder_attention_mask=src_mask, **{CACHE_KEYWORD: cache},
                                       use_cache=cache is not None).last_hidden_state

    def _log_probs(self, hidden, src_hidden, src_ids, fed_ids) -> torch.Tensor:
        """Decoder states [B,T,H] -> log P [B,T,V]; with the copy head, mixed with copying from the abstract.
        fed_ids [B,T'>=T]: the decoder inputs so far, the last T at these positions."""
        logits = self.bart.lm_head(hidden) + self.bart.final_logits_bias.to(hidden.dtype)
        log_probs = F.log_softmax(logits.float(), dim=-1)
        return self._with_copying(log_probs, hidden, src_hidden, src_ids, fed_ids)

    def forward(self, batch: dict) -> torch.Tensor:
        src, tgt = batch["src_ids"], batch["tgt_in"]
        self._check_lengths(src.size(1), tgt.size(1))
        src_mask = src != self.pad_id
        src_hidden = self._encode(src, src_mask)
        hidden = self._decode(tgt, src_hidden, src_mask)
        return self._log_probs(hidden, src_hidden, src, tgt)

    # --- cached decoding ---------------------------------------------------------------------
    def _start_cached(self, src_ids):
        B = src_ids.size(0)
        self._check_lengths(src_ids.size(1), 1)
        src_mask = src_ids != self.pad_id
        src_hidden = self._encode(src_ids, src_mask)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        start = src_ids.new_full((B, 1), self.decoder_start_id)
        hidden = self._decode(start, src_hidden, src_mask, cache)
        extras = {"cache": BartCache(cache),
                  "src_hidden": src_hidden, "src_mask": src_mask}
        state = DecodeState(src_ids, src_ids.new_zeros(B, 0), extras)
        return state, self._log_probs(hidden, src_hidden, src_ids, start)[:, 0]

    def _step_cached(self, state, tokens):
        extras = state.extras
        if state.prefix.size(1) + 1 > self.max_positions:
            raise ValueError(f"title longer than the model's {self.max_positions} positions: lower decode.max_len")
        hidden = self._decode(tokens[:, None], extras["src_hidden"], extras["src_mask"], extras["cache"].cache)
        fed = F.pad(state.prefix, (1, 0), value=self.decoder_start_id)  # this step's token is the last
        return self._log_probs(hidden, extras["src_hidden"], state.src_ids, fed)[:, 0]

