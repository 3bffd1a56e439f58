"""Title generators behind one small interface (base.py): UniLM (unilm.py) and a BART-style
encoder-decoder (bart.py), either with the pointer-generator copy head (copy_head.py).

    build_model(cfg.model, tokenizer)   a fresh model, or a local pretrained checkpoint (model.pretrained)
    load_model(path)                    a checkpoint directory, whichever family wrote it
"""
from __future__ import annotations

import json
from pathlib import Path

from .bart import BartSeq2Seq
from .base import MODEL_CONFIG_KEY, DecodeState, KVCache, Seq2SeqModel
from .copy_head import CopyHead
from .unilm import UniLM, unilm_mask

__all__ = ["MODEL_CLASSES", "MODEL_CONFIG_KEY", "BartSeq2Seq", "CopyHead", "DecodeState", "KVCache",
           "Seq2SeqModel", "UniLM", "build_model", "load_model", "read_family", "unilm_mask"]

# the registry, model.family -> class: its keys are model.family's allowed values (config_checks); what a family
# is (its sizes, positions, decoding memory, HF checkpoints it reads) is said on its class
MODEL_CLASSES: dict[str, type[Seq2SeqModel]] = {"unilm": UniLM, "bart": BartSeq2Seq}


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
    for family, model_class in MODEL_CLASSES.items():
        if model_type in model_class.hf_model_types:
            return family
    return "unilm"  # any BERT-family checkpoint (bert, roberta-wwm layouts) is used as a UniLM


def _model_class(family: str) -> type[Seq2SeqModel]:
    if family not in MODEL_CLASSES:
        raise ValueError(f"model.family={family!r} is not one of {sorted(MODEL_CLASSES)}")
    return MODEL_CLASSES[family]


def build_model(cfg, tokenizer) -> Seq2SeqModel:
    """From the `model` config group: a fresh model, or a local pretrained checkpoint by path."""
    model_class = _model_class(cfg.family)
    if cfg.pretrained:
        return model_class.from_pretrained(cfg.pretrained, tokenizer=tokenizer, dropout=cfg.dropout, copy=cfg.copy,
                                           copy_follow=cfg.copy_follow, copy_coverage=cfg.copy_coverage)
    settings = {k: v for k, v in cfg.items() if k not in ("family", "pretrained", "name", "trim_vocab")}
    return model_class.from_scratch(tokenizer, **settings)


def load_model(path: str | Path, tokenizer=None) -> Seq2SeqModel:
    """The checkpoint's model, with its content selector attached when the directory holds one (selector.py)."""
    model = _model_class(read_family(path)).from_pretrained(path, tokenizer=tokenizer)
    from ..selector import SELECTOR_FILE, Selector, attach

    if (Path(path) / SELECTOR_FILE).is_file():
        attach(model, Selector.load(Path(path) / SELECTOR_FILE))
    return model
