"""A run's model and tokenizer: resumed from state/, loaded from model.pretrained, or built from scratch with a
character vocabulary of the training split; its dropout and device; the training pairs encoded."""
from __future__ import annotations

import logging
import random
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .checkpoints import CheckpointError, check_checkpoint_dir, check_tokenizer_fits, loading_checkpoint, recover_dir
from .distributed import Dist
from .encode_cache import encode_training_pairs
from .fast_dropout import use_fast_dropout
from .models import Seq2SeqModel, build_model, load_model
from .run_config import find_resume_dir
from .splits import Splits
from .tokenizer import build_tokenizer, encode_text, load_tokenizer
from .vocab_trim import trim_vocabulary

log = logging.getLogger(__name__)


def build_or_resume_model(cfg: DictConfig, out_dir: Path, train_examples, ctx: Dist, selector_file: Path | None = None):
    """(model, tokenizer, resume_from): the saved state's model (trainer.resume), a local pretrained
    checkpoint (model.pretrained), or a fresh model with a character vocabulary of the training split; with
    the content selector of `selector_file` (run_selector) attached (it travels in the checkpoints, for
    decode.span_candidates and decode.rerank's sel)."""
    model, tokenizer, resume_from = _build_or_resume_model(cfg, out_dir, train_examples, ctx)
    if selector_file is not None:
        from .selector import Selector, attach

        attach(model, Selector.load(selector_file))
    return model, tokenizer, resume_from


def run_selector(cfg: DictConfig, out_dir: Path, splits: Splits, ctx: Dist) -> Path | None:
    """The run's content selector file: `selector` (a file given), else with `selector_epochs` > 0 one trained
    first on this run's training split (its validation split, when there is one, keeps the best epoch) and
    saved as out_dir/selector.pt, which a resumed run reuses; None without either. The selector trains under
    its own random state (own_random_state), so the generator's initialisation and batches are those of
    the same run without a selector: the selector changes what decoding chooses from, not the model."""
    if cfg.get("selector"):
        return Path(cfg.selector)
    epochs = int(cfg.get("selector_epochs") or 0)
    if epochs <= 0:
        return None
    path = out_dir / "selector.pt"
    if ctx.is_main and not path.is_file():
        from .pretraining import read_lines
        from .selector import train_selector

        titles_file = Path(splits.data_dir) / "titles_only.txt"  # the lexicon's title-only text, as the preset's
        extra = read_lines(titles_file) if titles_file.is_file() else []
        with own_random_state():
            selector = train_selector([(e.abstract, e.title) for e in splits.train], extra, epochs=epochs,
                                      seed=cfg.seed, val_pairs=[(e.abstract, e.title) for e in splits.val or []],
                                      log=log.info)
        selector.save(path)  # atomic: a kill before this line trains it again on resume
        log.info("content selector (%d epochs) saved in %s", epochs, path)
    ctx.barrier()
    return path


@contextmanager
def own_random_state():
    """Python's, numpy's and torch's global random states as they were before the block, whatever it drew."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng():
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _build_or_resume_model(cfg: DictConfig, out_dir: Path, train_examples, ctx: Dist):
    state_dir = out_dir / "state"
    if ctx.is_main:
        for directory in (state_dir, out_dir / "checkpoint"):
            recover_dir(directory)  # a kill between two renames must not lose the last good copy
    ctx.barrier()
    resume_from = find_resume_dir(cfg.trainer.resume, state_dir)
    if resume_from is not None:
        with loading_checkpoint(resume_from / "model", what="trainer.resume: the saved model"):
            tokenizer = load_tokenizer(resume_from / "model")
            model = load_model(resume_from / "model", tokenizer)
        return model, tokenizer, resume_from
    texts = [t for e in train_examples for t in (e.title, e.abstract)]  # the train split only
    if cfg.model.pretrained:
        model, tokenizer = load_pretrained(cfg.model)
        # .get: only the pretrained-checkpoint groups (model=unilm, model=bart) define trim_vocab; a
        # from-scratch group given model.pretrained=PATH has no such key
        if cfg.model.get("trim_vocab"):  # keep the specials + the training split's tokens (vocab_trim.py)
            model, tokenizer = trim_vocabulary(model, tokenizer, texts, out_dir / "tokenizer", write=ctx.is_main,
                                               barrier=ctx.barrier)
        return model, tokenizer, None
    if ctx.is_main:
        build_tokenizer(texts, out_dir / "tokenizer", min_count=cfg.data.vocab_min_count)
    ctx.barrier()
    tokenizer = load_tokenizer(out_dir / "tokenizer")
    return build_model(cfg.model, tokenizer), tokenizer, None


def load_pretrained(model_cfg: DictConfig):
    """(model, tokenizer) of model.pretrained, a checkpoint directory (or the previous version a kill
    while saving left of it); any damage is one CheckpointError naming the option."""
    try:
        path = check_checkpoint_dir(model_cfg.pretrained)
    except (FileNotFoundError, CheckpointError) as e:
        raise CheckpointError(f"model.pretrained: {e}") from None
    if str(path) != str(model_cfg.pretrained):  # its surviving previous version (.NAME.old)
        model_cfg = OmegaConf.merge(model_cfg, {"pretrained": str(path)})
    with loading_checkpoint(path, what="model.pretrained: checkpoint directory"):
        tokenizer = load_tokenizer(path)
        model = build_model(model_cfg, tokenizer)
        check_tokenizer_fits(tokenizer, model)
    return model, tokenizer


def prepare_model(model: Seq2SeqModel, regularizer, fast_dropout: bool, device) -> tuple[float, float]:
    """The regularizer's dropout (e.g. R-Drop's hidden-state 0.3), trainer.fast_dropout, the device.
    Returns the (hidden, attention) dropout now in force."""
    dropout = regularizer.apply_dropout(model)
    if fast_dropout:  # dropout masks at a quarter of torch's CPU cost (fast_dropout.py)
        use_fast_dropout(model)
    model.to(device)
    log.info("model %s: %.2fM parameters, vocabulary %d, dropout %g (attention %g)", model.family,
             count_parameters(model) / 1e6, model.vocab_size, *dropout)
    return dropout


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def encode_pairs(model, tokenizer, examples, max_source_len: int, max_target_len: int):
    """Examples -> (src, tgt_in, tgt_out) id lists. Abstracts longer than max_source_len tokens are cut.
    The reference: training reads the same lists through encode_training_split (compact, cached)."""
    out = []
    for ex in examples:
        src = encode_text(tokenizer, ex.abstract, max_source_len)
        tgt = encode_text(tokenizer, ex.title, max_target_len)
        out.append(model.build_example(src, tgt))
    return out


def encode_training_split(cfg: DictConfig, model, tokenizer, splits: "Splits", write_cache: bool = True):
    """encode_pairs of the training split, read from data.cache_dir when an earlier run (or this run
    before a resume) encoded the same examples with the same tokenizer and settings (encode_cache.py)."""
    cache_dir = cfg.data.get("cache_dir")
    data_files = [splits.data_dir / cfg.data.train_file] if cache_dir else []
    return encode_training_pairs(model, tokenizer, splits.train, cfg.data.max_source_len, cfg.data.max_target_len,
                                 data_files=data_files, cache_dir=cache_dir or None, write=write_cache)
