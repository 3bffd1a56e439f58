"""Vocabulary trimming for pretrained checkpoints: `python train.py model=unilm model.pretrained=DIR
model.trim_vocab=true` (or model=bart).

A Chinese BERT/BART vocabulary holds ~21k tokens, but the titles and abstracts of a training set use a
few thousand; the output softmax (and the embedding's gradient) pays for every row. As the reference
implementation does, trimming keeps only
    * every special token of the tokenizer and every special id the model uses (pad, [CLS]/bos,
      [SEP]/eos, [UNK], [MASK], the decoder start), and
    * every token id produced by tokenizing the training split's titles and abstracts,
in their original id order (so specials keep their relative order, and [PAD]=0 stays 0 in a
bert-base-chinese layout). Tokens of dev/test text that were never seen in training become [UNK].

What changes:
    * the tokenizer: a new `vocab.txt` with the kept tokens is written into `out_dir` and loaded as a
      `transformers.BertTokenizer` with the original normalization (lower-casing, CJK splitting,
      accent stripping); `save_pretrained` makes the directory loadable by AutoTokenizer.
      For the training texts, the new tokenizer gives exactly the old ids mapped to new ones
      (WordPiece is greedy longest-match-first, and every piece it emitted is kept).
    * the model, in place: embedding rows and the tied output layer are sliced to the kept ids
      (UniLM: word embeddings, MLM decoder and its bias; BART: shared/encoder/decoder embeddings,
      lm_head, final_logits_bias), weight tying still holds, and every special id (model attributes,
      HF config, generation config) is remapped. The logits of the kept tokens are unchanged; only
      the softmax normalizer now runs over the kept tokens.
    * the mapping is stored in the HF config under `vocab_trim`:
          {"original_vocab_size": N, "kept_original_ids": [old id of new id 0, of new id 1, ...]}
      so `save_pretrained` writes it into the checkpoint's config.json and `load_model` reads it back
      (`trim_mapping(model)`). Trimming an already trimmed model composes the mappings, so they
      always refer to the original checkpoint's ids.

Only WordPiece (BERT-style `vocab.txt`) tokenizers can be trimmed; a BPE tokenizer raises ValueError.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from .tokenizer import fold_width

log = logging.getLogger(__name__)

CONFIG_KEY = "vocab_trim"  # where the mapping lives in the HF config (config.json)
CHUNK = 2048  # texts tokenized per call


def is_wordpiece(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return type(backend.model).__name__ == "WordPiece"
    return type(tokenizer).__name__.startswith("Bert") and hasattr(tokenizer, "get_vocab")


def _normalization(tokenizer) -> dict:
    """The original's text normalization, as BertTokenizer arguments."""
    settings = {"do_lower_case": getattr(tokenizer, "do_lower_case", True),
                "tokenize_chinese_chars": getattr(tokenizer, "tokenize_chinese_chars", True),
                "strip_accents": getattr(tokenizer, "strip_accents", None)}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    normalizer = getattr(backend, "normalizer", None) if backend is not None else None
    if normalizer is not None:  # the fast tokenizer's normalizer is what actually runs
        try:
            state = json.loads(normalizer.__getstate__())
        except Exception:  # noqa: BLE001 - a normalizer without a JSON state: keep the attributes
            state = {}
        if state.get("type") == "BertNormalizer":
            settings = {"do_lower_case": state.get("lowercase", True),
                        "tokenize_chinese_chars": state.get("handle_chinese_chars", True),
                        "strip_accents": state.get("strip_accents")}
    return settings


def _model_special_ids(model) -> set[int]:
    ids = set(model.special_ids())
    ids.add(getattr(model, "decoder_start_id", model.bos_id))
    config = model.hf_model.config
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "decoder_start_token_id"):
        value = getattr(config, name, None)
        if isinstance(value, int) and 0 <= value < model.vocab_size:
            ids.add(value)
    return ids


def kept_token_ids(tokenizer, texts: Iterable[str], extra_ids: Iterable[int] = ()) -> list[int]:
    """Special ids + `extra_ids` + every id that tokenizing `texts` produces, in original id order."""
    kept = set(tokenizer.all_special_ids) | set(extra_ids)
    texts = list(texts)
    for first in range(0, len(texts), CHUNK):
        for ids in tokenizer([fold_width(t) for t in texts[first:first + CHUNK]], add_special_tokens=False)["input_ids"]:
            kept.update(ids)
    return sorted(kept)


def trim_mapping(model) -> dict | None:
    """{"original_vocab_size", "kept_original_ids"} of a trimmed model (None when it was never trimmed)."""
    return getattr(model.hf_model.config, CONFIG_KEY, None) or None


# --------------------------------------------------------------------------- the tokenizer


def write_trimmed_tokenizer(tokenizer, kept: list[int], out_dir: str | Path) -> None:
    """vocab.txt with the kept tokens (new id = line number) + tokenizer_config.json in out_dir."""
    from transformers import BertTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens = tokenizer.convert_ids_to_tokens(kept)
    (out_dir / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    trimmed = BertTokenizer(vocab=str(out_dir / "vocab.txt"), **_special_tokens(tokenizer), **_normalization(tokenizer),
                            model_max_length=tokenizer.model_max_length)
    trimmed.save_pretrained(str(out_dir))


def _special_tokens(tokenizer) -> dict:
    names = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
    return {name: str(getattr(tokenizer, name)) for name in names if getattr(tokenizer, name, None) is not None}


def _load_trimmed_tokenizer(out_dir, tokens: list[str]):
    from .tokenizer import load_tokenizer

    trimmed = load_tokenizer(out_dir)
    if len(trimmed) != len(tokens) or trimmed.convert_tokens_to_ids(tokens) != list(range(len(tokens))):
        raise RuntimeError(f"the trimmed vocabulary in {out_dir} does not load back with the kept tokens at "
                           f"ids 0..{len(tokens) - 1} (got {len(trimmed)} tokens)")
    return trimmed


# --------------------------------------------------------------------------- the model


def slice_embedding(embedding: nn.Embedding, index: torch.Tensor, old_to_new: dict[int, int]) -> nn.Parameter:
    old = embedding.weight
    embedding.weight = nn.Parameter(old.detach().index_select(0, index).clone(), requires_grad=old.requires_grad)
    embedding.num_embeddings = index.numel()
    if embedding.padding_idx is not None:
        embedding.padding_idx = old_to_new.get(embedding.padding_idx)
    return embedding.weight


def tie_weight(module: nn.Module, weight: nn.Parameter) -> None:
    module.weight = weight
    if isinstance(module, nn.Embedding):
        module.num_embeddings = weight.size(0)
    elif isinstance(module, nn.Linear):
        module.out_features = weight.size(0)


def _remap(value, old_to_new: dict[int, int]):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return old_to_new.get(value)
    if isinstance(value, (list, tuple)):
        return type(value)(old_to_new[v] for v in value if v in old_to_new)
    return value


def trim_model(model, kept: list[int]) -> None:
    """Shrink `model` (UniLM or BART) in place to the `kept` original ids (sorted); remap its special ids."""
    old_size = model.vocab_size
    old_to_new = {old: new for new, old in enumerate(kept)}
    missing = [i for i in (model.pad_id, model.bos_id, model.eos_id) if i not in old_to_new]
    if missing or kept != sorted(set(kept)) or kept[-1] >= old_size:
        raise ValueError(f"kept ids must be sorted, unique, < {old_size} and include the special ids {missing}")
    device = model.input_embeddings().weight.device
    index = torch.tensor(kept, dtype=torch.long, device=device)
    model.trim_vocabulary(index, old_to_new)  # the family's own embeddings and output layer

    model.pad_id, model.bos_id, model.eos_id = (old_to_new[i] for i in (model.pad_id, model.bos_id, model.eos_id))
    model.vocab_size = len(kept)
    model.extra_special_ids = [old_to_new[i] for i in model.extra_special_ids if i in old_to_new]

    hf = model.hf_model
    for config in (hf.config, getattr(hf, "generation_config", None)):
        if config is None:
            continue
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "decoder_start_token_id",
                     "forced_bos_token_id", "forced_eos_token_id"):
            if getattr(config, name, None) is not None:
                setattr(config, name, _remap(getattr(config, name), old_to_new))
    previous = trim_mapping(model)  # trimming a trimmed model: keep referring to the original ids
    original_ids = [previous["kept_original_ids"][i] for i in kept] if previous else list(kept)
    hf.config.vocab_size = len(kept)
    hf.config.update({CONFIG_KEY: {"original_vocab_size": previous["original_vocab_size"] if previous else old_size,
                                   "kept_original_ids": original_ids}})


def trim_vocabulary(model, tokenizer, texts: Iterable[str], out_dir: str | Path, write: bool = True,
                    barrier: Callable[[], None] | None = None):
    """Keep the special tokens and the tokens of `texts` (the training split's titles and abstracts):
    write the trimmed tokenizer into out_dir, shrink `model` in place; return (model, new tokenizer).

    Distributed training: every rank calls this with the same texts; only the main rank writes
    (`write=ctx.is_main`) and `barrier` makes the others wait for the files before reading them."""
    if not is_wordpiece(tokenizer):
        raise ValueError(f"model.trim_vocab=true needs a WordPiece (BERT-style vocab.txt) tokenizer; "
                         f"{type(tokenizer).__name__} is not one: set model.trim_vocab=false")
    if len(tokenizer) > model.vocab_size:
        raise ValueError(f"model.trim_vocab: the tokenizer has {len(tokenizer)} tokens, more than the model's "
                         f"vocabulary of {model.vocab_size}")
    kept = kept_token_ids(tokenizer, texts, _model_special_ids(model))
    if write:
        write_trimmed_tokenizer(tokenizer, kept, out_dir)
    if barrier is not None:
        barrier()
    trimmed = _load_trimmed_tokenizer(out_dir, tokenizer.convert_ids_to_tokens(kept))
    before = model.vocab_size
    trim_model(model, kept)
    log.info("model.trim_vocab: vocabulary %d -> %d tokens (%.1f%%), tokenizer in %s",
             before, model.vocab_size, 100.0 * model.vocab_size / before, out_dir)
    return model, trimmed
