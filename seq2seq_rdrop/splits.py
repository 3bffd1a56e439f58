"""The data splits of a run: train, dev, test (data.test_file or data.holdout_test), the validation split
carved from the training file (data.val_size) and the unlabelled abstracts of semi-supervised runs."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from .data import column_limit, read_abstracts, read_examples, resolve_data_dir

log = logging.getLogger(__name__)


@dataclass
class Splits:
    data_dir: Path  # where they were read from
    train: list
    dev: list
    test: list | None
    unlabeled: list[str] | None = None  # data.unlabeled_file: abstracts alone (load_unlabeled)
    val: list | None = None  # data.val_size: the last pairs of the training file, for evaluations and selection

    @property
    def selection(self) -> tuple[str, list]:
        """(name, examples) of the split that the evaluations score and the kept checkpoint is chosen on."""
        return ("val", self.val) if self.val else ("dev", self.dev)


def load_splits(cfg: DictConfig) -> Splits:
    """Train, dev and (optionally) test examples as cfg.data names and cuts them."""
    data_dir = resolve_data_dir(cfg.data.dir)
    train_examples = load_split(cfg, data_dir, "train")
    test_examples = load_split(cfg, data_dir, "test")
    holdout = cfg.data.holdout_test or 0
    if holdout:
        # a test split carved from the end of the training file, for data that ships only train + dev
        if test_examples is not None:
            raise ValueError("data.holdout_test and data.test_file are exclusive: set one of them")
        train_examples, test_examples = carve_holdout(train_examples, holdout, cfg.data.get("holdout_offset") or 0)
    train_examples, val_examples = carve_validation(train_examples, cfg.data.get("val_size") or 0)
    if cfg.data.max_train_samples:
        train_examples = train_examples[: cfg.data.max_train_samples]
    dev_examples = load_split(cfg, data_dir, "dev")
    if dev_examples is None:
        raise ValueError("data.dev_file is required: the best checkpoint is chosen on dev")
    unlabeled = load_unlabeled(cfg, data_dir, [train_examples, val_examples or [], dev_examples, test_examples or []])
    if cfg.data.max_eval_samples and len(dev_examples) > cfg.data.max_eval_samples:
        # a large dev file (e.g. the full CSL release's) would make every evaluation cost minutes of beam search
        log.info("dev: %d pairs in %s; evaluating (and choosing the checkpoint) on its first %d "
                 "(data.max_eval_samples=%d; null = all)", len(dev_examples), cfg.data.dev_file,
                 cfg.data.max_eval_samples, cfg.data.max_eval_samples)
        dev_examples = dev_examples[: cfg.data.max_eval_samples]
    return Splits(data_dir, train_examples, dev_examples, test_examples, unlabeled, val_examples)


def carve_holdout(train_examples: list, holdout: int, offset: int = 0) -> tuple[list, list]:
    """(train, test): the `holdout` pairs that end `offset` pairs before the end of the training file become
    the test split; the `offset` pairs after them stay in training (and data.val_size carves from them
    first). An offset keeps a held-out split off the file's last pairs when earlier choices were made on
    those (docs/experiments/2026-12-07_quality_heldout.md)."""
    if holdout + offset >= len(train_examples):
        raise ValueError(f"data.holdout_test={holdout} with data.holdout_offset={offset} leaves no training examples "
                         f"(train has {len(train_examples)})")
    end = len(train_examples) - offset
    return train_examples[:end - holdout] + train_examples[end:], train_examples[end - holdout:end]


def carve_validation(train_examples: list, val_size: int) -> tuple[list, list | None]:
    """(train, val): the last val_size training pairs become the validation split (None when 0). The end of
    the file, as holdout_test: a fixed choice, the same for every run, and pretrain.py can leave it out."""
    if not val_size:
        return train_examples, None
    if val_size >= len(train_examples):
        raise ValueError(f"data.val_size={val_size} leaves no training examples (train has {len(train_examples)})")
    return train_examples[:-val_size], train_examples[-val_size:]


def load_split(cfg: DictConfig, data_dir: Path, name: str):
    """data.<name>_file in data_dir, or None when it is null. Titles and abstracts longer than the model reads are
    cut as they are read (data.column_limit), so one huge line never sits in memory whole."""
    file = cfg.data[f"{name}_file"]
    if not file:
        return None
    return read_examples(data_dir / file, skip_bad_lines=cfg.data.skip_bad_lines, header=cfg.data.get("header", "auto"),
                         max_chars=read_limit(cfg))


def read_limit(cfg: DictConfig) -> int:
    """How many characters of a title or an abstract a run reads (data.column_limit of its token lengths)."""
    return column_limit(cfg.data.max_source_len, cfg.data.max_target_len)


def load_unlabeled(cfg: DictConfig, data_dir: Path, splits: list[list]) -> list[str] | None:
    """The abstracts of data.unlabeled_file (its titles dropped as it is read), less every abstract of the
    labelled training pairs, dev and test: pointed at the training file with data.max_train_samples=N,
    these are the abstracts of the pairs after the first N. None when the option is null."""
    file = cfg.data.get("unlabeled_file")
    if not file:
        return None
    abstracts = read_abstracts(data_dir / file, skip_bad_lines=cfg.data.skip_bad_lines,
                               header=cfg.data.get("header", "auto"), max_chars=read_limit(cfg))
    taken = {e.abstract for split in splits for e in split}
    kept = [a for a in abstracts if a not in taken]
    log.info("data.unlabeled_file=%s: %d abstracts, %d of them also in the labelled pairs, dev or test left out",
             file, len(abstracts), len(abstracts) - len(kept))
    if not kept:
        raise ValueError(f"data.unlabeled_file={file}: no abstract left once those of the labelled pairs, "
                         "dev and test are left out")
    return kept
