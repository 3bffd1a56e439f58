"""UniLM: one BERT encoder with a tied masked-LM head, used as a seq2seq model by its attention mask."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertForMaskedLM

from ..vocab_trim import slice_embedding, tie_weight
from .base import CACHE_KEYWORD, DecodeState, KVCache, Seq2SeqModel, never_generated


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean [B, Q, K] 'may attend' -> additive mask [B, 1, Q, K] for HF attention (eager or sdpa)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )[:, None]


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
    hf_class = BertForMaskedLM
    hf_attribute = "bert"
    dropout_config_keys = ("hidden_dropout_prob", "attention_probs_dropout_prob")
    cached_layers_key = "num_hidden_layers"
    layer_keys = {"num_hidden_layers": "encoder.layer"}

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
        return cls.from_hf(BertForMaskedLM(config), tokenizer, copy=copy, copy_follow=copy_follow,
                           copy_coverage=copy_coverage)

    @classmethod
    def from_hf(cls, hf_model: BertForMaskedLM, tokenizer, **copy_options) -> "UniLM":
        """[CLS] starts the sequence, [SEP] ends the abstract and the title."""
        return cls(hf_model, tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id,
                   extra_specials=never_generated(tokenizer), **copy_options)

    def _set_dropout_modules(self, p: float, attention: float) -> None:
        for name, module in self.named_modules():
            if isinstance(module, nn.Dropout):
                module.p = attention if name.endswith("attention.self.dropout") else p

    def input_embeddings(self) -> nn.Embedding:
        return self.bert.bert.embeddings.word_embeddings

    def trim_vocabulary(self, index: torch.Tensor, old_to_new: dict[int, int]) -> None:
        weight = slice_embedding(self.input_embeddings(), index, old_to_new)
        predictions = self.bert.cls.predictions  # tied to the input embeddings, with a bias of its own
        tie_weight(predictions.decoder, weight)
        bias = predictions.bias
        predictions.bias = nn.Parameter(bias.detach().index_select(0, index).clone(), requires_grad=bias.requires_grad)
        predictions.decoder.bias = predictions.bias

    def build_example(self, src_tokens, tgt_tokens):
        src = [self.bos_id] + src_tokens + [self.eos_id]
        if tgt_tokens is None:
            return src, None, None
        return src, list(tgt_tokens), list(tgt_tokens) + [self.eos_id]

    def decoder_batch(self, src_ids, prefix):
        return {"src_ids": src_ids, "tgt_in": prefix}

    def check_positions(self, max_source_len: int, max_len: int) -> None:
        if max_source_len + 2 + max_len > self.max_positions:  # abstract and title share one sequence
            raise ValueError(
                f"max_source_len={max_source_len} + decode.max_len={max_len} (+2 special tokens) "
                f"exceed the model's {self.max_positions} positions: lower max_source_len or decode.max_len")

    # --- the network -------------------------------------------------------------------------
    def _run_layers(self, ids, segments, positions, allowed, cache=None) -> torch.Tensor:
        embeddings = self.bert.bert.embeddings
        hidden = embeddings(input_ids=ids, token_type_ids=segments, position_ids=positions)
        mask = _additive(allowed, hidden.dtype)
        for layer in self.bert.bert.encoder.layer:
            hidden = layer(hidden, mask, **{CACHE_KEYWORD: cache})
        return hidden

    def _log_probs(self, hidden, src_hidden, src_ids, fed_ids) -> torch.Tensor:
        """hidden [B,T,H] -> log P [B,T,V]; with the copy head, mixed with copying from the abstract.
        fed_ids [B,T'>=T]: the tokens fed in so far ([SEP], then the title), the last T at these positions."""
        log_probs = F.log_softmax(self.bert.cls(hidden).float(), dim=-1)
        return self._with_copying(log_probs, hidden, src_hidden, src_ids, fed_ids)

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

    # --- cached decoding ---------------------------------------------------------------------
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
        extras = state.extras
        key_valid = torch.cat([extras["key_valid"], torch.ones_like(tokens[:, None], dtype=torch.bool)], 1)
        hidden = self._run_layers(tokens[:, None], torch.ones_like(tokens[:, None]), extras["next_pos"][:, None],
                                  key_valid[:, None, :], extras["cache"])
        extras["key_valid"], extras["next_pos"] = key_valid, extras["next_pos"] + 1
        fed = F.pad(state.prefix, (1, 0), value=self.eos_id)  # [SEP] + the title so far (this step's token last)
        return self._log_probs(hidden, extras["src_hidden"], state.src_ids, fed)[:, 0]
