"""The training loop. `train(cfg, out_dir)` reads as the list of its steps, each a function or method
below it, in the order they run:

    check the options -> load the splits -> build (or resume) the model -> optimisation (AdamW, schedule,
    EMA) -> steps (batch_schedule, the unlabelled abstracts of semi-supervised regularizers from
    UnlabeledStream, Run.train_step), with an evaluation every trainer.eval_every steps on dev, or on the
    validation split of data.val_size (Run.evaluate_and_keep) -> with a validation split, dev scores of the
    final weights (score_final_weights) -> final metrics of the kept weights (final_metrics, score_kept_weights)

Everything a run writes lands in its output directory:
    metrics.json, example_scores.json, predictions_dev.tsv (and _test, and _<split>_<name> per
    trainer.final_decodes entry; predictions_dev_final*.tsv with a validation split), train_log.csv,
    eval_log.csv, kept_dev_scores.json (kept_val_scores.json with a validation split),
    checkpoint/ (kept model, HF format + tokenizer + resolved config), state/ (for resuming).
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import pickle
import random
import re
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm
from transformers.utils import logging as hf_logging

from .checkpoints import atomic_write_dir, keep_state_copy, recover_dir, save_model_checkpoint
from .checkpoints import CheckpointError, check_checkpoint_dir, check_tokenizer_fits, loading_checkpoint
from .config_checks import check_run_decoding, validate
from .data import read_abstracts, read_examples, resolve_data_dir
from .decoding import generate
from .distributed import Dist, init_distributed, pick_device, shutdown, wrap
from .encode_cache import encode_training_pairs
from .fast_dropout import use_fast_dropout
from .lr_schedules import LR_SCHEDULES, linear_schedule_to_deadline
from .memory import keep_freed_memory
from .metrics import (LEAD_CHARS, METRIC_NAMES, format_table, lead_scores, rule_scores, score_corpus, score_examples,
                      title_shape)
from .models import Seq2SeqModel, build_model, load_model
from .regularizers.semi_supervised import UNLABELED, UNLABELED_PARTS
from .run_config import check_resumed_config, data_file_hashes, find_resume_dir, run_record, write_run_record
from .run_dir import owned_run_dir
from .tokenizer import build_tokenizer, decode_ids, encode_text, load_tokenizer, restore_case
from .vocab_trim import trim_vocabulary

log = logging.getLogger(__name__)
# what the final table is read against, on CSL dev (measured figures; README "Results")
REFERENCE_POINTS = ("on CSL dev (493 pairs) `python train.py` reaches ROUGE-L 45.9 (600 steps, beam 16 re-ranked), the "
                    "preset (scripts/run_quality_preset.py: 600 pretraining + 590 fine-tuning steps) 49.8 (3 seeds), and "
                    "the published pretrained UniLM baseline 63.8 on CLGE csl val")
# trainer.monitor may name any of METRIC_NAMES; higher is better for all of them


def train(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Train, evaluate and score one run; return metrics.json's content ({} on ranks > 0 of torchrun)."""
    validate(cfg)  # every option, before anything is read or written (config_checks.py)
    keep_freed_memory()
    ctx, device_name = init_distributed(cfg.trainer.device)
    try:
        return _train(cfg, out_dir, ctx, device_name)
    finally:
        shutdown(ctx)


def _train(cfg: DictConfig, out_dir, ctx: Dist, device_name: str) -> dict:
    out_dir = Path(ctx.broadcast(str(out_dir)))  # every rank uses rank 0's run directory
    if not ctx.is_main:
        return _train_in(cfg, out_dir, ctx, device_name)
    with owned_run_dir(out_dir, cfg.trainer.resume, bool(cfg.trainer.get("overwrite"))):  # one run per directory
        return _train_in(cfg, out_dir, ctx, device_name)


def _train_in(cfg: DictConfig, out_dir: Path, ctx: Dist, device_name: str) -> dict:
    hf_logging.disable_progress_bar()  # no "Writing model shards" bars at every checkpoint
    set_seed(cfg.seed)
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    device = pick_device(device_name, option="trainer.device")

    splits = load_splits(cfg)
    record = run_record(cfg, data_file_hashes(cfg, splits.data_dir))  # saved with every state (run_config.py)
    model, tokenizer, resume_from = build_or_resume_model(cfg, out_dir, splits.train, ctx)
    earlier_changes, changed = check_resumed_config(resume_from, record) if resume_from is not None else ([], {})
    check_run_decoding(cfg, model, device)  # beams within the vocabulary and memory, before any step
    regularizer = instantiate(cfg.regularizer)
    dropout = prepare_model(model, regularizer, cfg.trainer.fast_dropout, device)
    encoded = encode_training_split(cfg, model, tokenizer, splits, write_cache=ctx.is_main)
    unlabeled = UnlabeledStream.build(cfg, model, tokenizer, splits.unlabeled, regularizer)
    plan = StepPlan.for_examples(len(encoded), cfg.trainer)

    forward_model = wrap(model, ctx, device)  # what the regularizer runs: the model itself, or its DDP wrapper
    deadline = Deadline(cfg.trainer.max_minutes, ctx)
    optim = Optimisation.build(model, cfg.trainer, plan.total_steps, deadline)
    state = (resume_training(resume_from, optim, cfg.trainer, plan.total_steps) if resume_from is not None
             else TrainState(total_steps=plan.total_steps))
    record["changes"] = earlier_changes + ([{"step": state.step, "changed": changed}] if changed else [])
    run = Run(cfg=cfg, out_dir=out_dir, ctx=ctx, device=device, model=model, forward_model=forward_model,
              tokenizer=tokenizer, regularizer=regularizer, optim=optim, deadline=deadline, state=state,
              selection=splits.selection, unlabeled=unlabeled, record=record)
    if ctx.is_main:
        run.open_logs()
    run.fit(encoded, plan)

    checksums = ctx.gather(float(sum(p.detach().double().sum() for p in model.parameters())))
    if not ctx.is_main:
        return {}
    metrics = final_metrics(run, splits, plan, dropout)
    if ctx.enabled:
        metrics["rank_weight_checksums"] = checksums  # equal when DDP kept the replicas in sync
    per_example = (score_final_weights(run, splits.dev, metrics)
                   if splits.val and cfg.trainer.get("score_final_weights", True) else {})
    score_kept_weights(cfg, out_dir, tokenizer, device, splits, metrics, per_example)
    add_floors_and_title_shapes(metrics, splits.dev, out_dir)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    print_summary(metrics, cfg, out_dir)
    return metrics


# --------------------------------------------------------------------------------------------- set-up


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
        if holdout >= len(train_examples):
            raise ValueError(f"data.holdout_test={holdout} leaves no training examples (train has {len(train_examples)})")
        train_examples, test_examples = train_examples[:-holdout], train_examples[-holdout:]
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


def carve_validation(train_examples: list, val_size: int) -> tuple[list, list | None]:
    """(train, val): the last val_size training pairs become the validation split (None when 0). The end of
    the file, as holdout_test: a fixed choice, the same for every run, and pretrain.py can leave it out."""
    if not val_size:
        return train_examples, None
    if val_size >= len(train_examples):
        raise ValueError(f"data.val_size={val_size} leaves no training examples (train has {len(train_examples)})")
    return train_examples[:-val_size], train_examples[-val_size:]


def load_split(cfg: DictConfig, data_dir: Path, name: str):
    """data.<name>_file in data_dir, or None when it is null."""
    file = cfg.data[f"{name}_file"]
    if not file:
        return None
    return read_examples(data_dir / file, skip_bad_lines=cfg.data.skip_bad_lines, header=cfg.data.get("header", "auto"))


def load_unlabeled(cfg: DictConfig, data_dir: Path, splits: list[list]) -> list[str] | None:
    """The abstracts of data.unlabeled_file (its titles dropped as it is read), less every abstract of the
    labelled training pairs, dev and test: pointed at the training file with data.max_train_samples=N,
    these are the abstracts of the pairs after the first N. None when the option is null."""
    file = cfg.data.get("unlabeled_file")
    if not file:
        return None
    abstracts = read_abstracts(data_dir / file, skip_bad_lines=cfg.data.skip_bad_lines,
                               header=cfg.data.get("header", "auto"))
    taken = {e.abstract for split in splits for e in split}
    kept = [a for a in abstracts if a not in taken]
    log.info("data.unlabeled_file=%s: %d abstracts, %d of them also in the labelled pairs, dev or test left out",
             file, len(abstracts), len(abstracts) - len(kept))
    if not kept:
        raise ValueError(f"data.unlabeled_file={file}: no abstract left once those of the labelled pairs, "
                         "dev and test are left out")
    return kept


def build_or_resume_model(cfg: DictConfig, out_dir: Path, train_examples, ctx: Dist):
    """(model, tokenizer, resume_from): the saved state's model (trainer.resume), a local pretrained
    checkpoint (model.pretrained), or a fresh model with a character vocabulary of the training split."""
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
    except FileNotFoundError as e:
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


@dataclass(frozen=True)
class StepPlan:
    steps_per_epoch: int
    total_steps: int  # trainer.max_steps, else trainer.epochs passes
    eval_every: int  # trainer.eval_every, else once per epoch

    @classmethod
    def for_examples(cls, n_examples: int, trainer_cfg: DictConfig) -> "StepPlan":
        steps_per_epoch = math.ceil(n_examples / trainer_cfg.batch_size)
        return cls(steps_per_epoch, trainer_cfg.max_steps or trainer_cfg.epochs * steps_per_epoch,
                   trainer_cfg.eval_every or steps_per_epoch)


# --------------------------------------------------------------------------------------- optimisation


class Deadline:
    """trainer.max_minutes against the run's training + evaluation seconds. Every rank follows rank 0's
    count (the learning rate with trainer.lr_decay_by_time, and when to stop)."""

    def __init__(self, max_minutes: float | None, ctx: Dist):
        self.max_seconds = 60 * max_minutes if max_minutes else None
        self.ctx = ctx
        self.seconds = 0.0  # as of the last update

    @property
    def enabled(self) -> bool:
        return self.max_seconds is not None

    def update(self, seconds: float) -> None:
        if self.enabled:
            self.seconds = self.ctx.broadcast(seconds)

    def used_fraction(self) -> float:
        return self.seconds / self.max_seconds

    def passed(self) -> bool:
        return self.enabled and self.seconds >= self.max_seconds


@dataclass
class Optimisation:
    """AdamW, its learning-rate schedule and the optional moving average of the weights."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: AveragedModel | None  # trainer.ema_decay

    @classmethod
    def build(cls, model: nn.Module, trainer_cfg: DictConfig, total_steps: int, deadline: Deadline) -> "Optimisation":
        optimizer = torch.optim.AdamW(model.parameters(), lr=trainer_cfg.lr, weight_decay=trainer_cfg.weight_decay)
        warmup_steps = trainer_cfg.get("warmup_steps")
        if warmup_steps is None:
            warmup_steps = int(trainer_cfg.warmup_ratio * total_steps)
        if trainer_cfg.lr_decay_by_time and deadline.enabled:
            scheduler = linear_schedule_to_deadline(optimizer, trainer_cfg.warmup_ratio, total_steps,
                                                    deadline.used_fraction)
        else:
            scheduler = LR_SCHEDULES[trainer_cfg.get("lr_schedule", "linear")](optimizer, warmup_steps, total_steps)
        # trainer.ema_decay: an exponential moving average of the weights is what gets evaluated, selected
        # and saved. On 2.7k pairs the raw weights' dev ROUGE-L wanders by about a point between evaluations.
        ema = None
        if trainer_cfg.ema_decay is not None:
            ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(trainer_cfg.ema_decay)))
        return cls(optimizer, scheduler, ema)

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                **({"ema": self.ema.state_dict()} if self.ema is not None else {})}

    def restart_schedule_at(self, step: int) -> None:
        """The learning rate of the schedule built for a new total at `step` (the saved one followed the old
        total up to the saved step): what the next optimiser step uses."""
        scheduler = self.scheduler
        lrs = [base * factor(step) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        scheduler._last_lr = lrs

    def load_state_dict(self, saved: dict, where: Path, ema_decay) -> None:
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if self.ema is not None:
            if "ema" not in saved:
                raise ValueError(f"trainer.ema_decay={ema_decay} but {where} was saved without it: "
                                 "resume with the run's own trainer.ema_decay")
            self.ema.load_state_dict(saved["ema"])


@dataclass
class TrainState:
    """Where a run stands. Saved in state/trainer_state.pt as a dict under "progress"."""

    step: int = 0
    best: float = -math.inf  # the best dev score of trainer.monitor so far
    best_step: int | None = None
    kept_step: int | None = None  # the evaluation whose weights checkpoint/ holds (trainer.keep)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    total_steps: int | None = None  # the schedule's length (StepPlan.total_steps); None: saved before it was kept

    @classmethod
    def from_dict(cls, saved: dict) -> "TrainState":
        state = cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})
        if "kept_step" not in saved:  # saved before trainer.keep existed: checkpoint/ holds the best weights
            state.kept_step = state.best_step
        return state


def resume_training(resume_from: Path, optim: Optimisation, trainer_cfg: DictConfig, total_steps: int) -> TrainState:
    """Optimiser, schedule, EMA, TrainState and random states as state/ saved them. A new step budget
    (trainer.max_steps or epochs changed) gets the schedule over the new total, from the saved step on."""
    saved = load_trainer_state(resume_from / "trainer_state.pt")
    optim.load_state_dict(saved, resume_from, trainer_cfg.ema_decay)
    state = TrainState.from_dict(saved["progress"])
    if total_steps < state.step:
        raise ValueError(f"trainer.max_steps: the run is to end at step {total_steps} but {resume_from} is at step "
                         f"{state.step} already: resume with trainer.max_steps >= {state.step}")
    if state.total_steps is not None and state.total_steps != total_steps:
        optim.restart_schedule_at(state.step)
        log.info("trainer: %d steps in all (was %d): the learning-rate schedule follows the new total",
                 total_steps, state.total_steps)
    state.total_steps = total_steps
    _set_rng_state(saved["rng"])
    log.info("resumed from %s at step %d", resume_from, state.step)
    return state


# What an older trainer_state.pt may hold beyond tensors and plain containers: numpy's random state was
# saved as an array. These are the types torch's own documentation allows for numpy arrays; nothing else
# in a state file is ever turned into an object (weights_only=True: a planted pickle payload is refused).
_NUMPY_ARRAY_GLOBALS = [np.ndarray, np.dtype, type(np.dtype(np.uint32)),
                        getattr(np, "_core", getattr(np, "core", None)).multiarray._reconstruct]


def load_trainer_state(path: Path) -> dict:
    """trainer_state.pt as data: tensors, numbers, strings and containers only. A file that holds anything
    else (an object to build, code to run) is refused with a one-line error naming it."""
    try:
        with torch.serialization.safe_globals(_NUMPY_ARRAY_GLOBALS):
            saved = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        # torch's message advises retrying the unsafe way, which would run the payload: name only what was found
        found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", str(e))
        what = f"it asks to build {found.group(1)}" if found else "it holds more than tensors and plain values"
        raise CheckpointError(f"{path}: refused, not a trainer state this project wrote ({what}); "
                              "nothing in it was run") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable trainer state ({type(e).__name__}: {e})") from None
    if not isinstance(saved, dict) or not {"optimizer", "scheduler", "progress", "rng"} <= saved.keys():
        raise CheckpointError(f"{path}: not a trainer state (expected optimizer, scheduler, progress and rng)")
    return saved


def _rng_state() -> dict:
    numpy_state = np.random.get_state()  # (name, uint32 keys, pos, has_gauss, cached): keys stored as a list
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------- the loop


def batch_schedule(n_examples: int, batch_size: int, seed: int, first_step: int, plan: StepPlan):
    """(epoch, example indices) for each step from first_step to plan.total_steps. An epoch's order depends
    only on (seed, epoch), so a resumed run replays the batches of an uninterrupted one."""
    step = first_step
    while step < plan.total_steps:
        epoch, offset = divmod(step, plan.steps_per_epoch)
        order = torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()
        for first in range(offset * batch_size, n_examples, batch_size):
            if step >= plan.total_steps:
                return
            yield epoch, order[first:first + batch_size]
            step += 1


class UnlabeledStream:
    """The unlabelled abstracts of each step for a semi-supervised regularizer (batch["unlabeled"]):
    `rows` of them per step, read on through shuffled passes over the pool. A pass's order depends only
    on (seed, pass), so step s always gets the same abstracts: a resumed run needs no saved state for it
    (the pseudo-titles are decoded afresh at every step, regularizers/semi_supervised.py)."""

    SEED_OFFSET = 10 ** 9  # pass orders drawn apart from batch_schedule's epoch orders (seed * 1000 + epoch)

    def __init__(self, examples: list, rows: int, seed: int):
        self.examples, self.rows, self.seed = examples, rows, seed
        self._orders: dict[int, list[int]] = {}  # the passes in use (at most two per step)

    @classmethod
    def build(cls, cfg: DictConfig, model, tokenizer, abstracts, regularizer) -> "UnlabeledStream | None":
        """round(ratio x trainer.batch_size) rows per step, ratio = regularizer.unlabeled_per_labeled();
        None when the regularizer uses no unlabelled data."""
        ratio = regularizer.unlabeled_per_labeled()
        if not ratio:
            if abstracts:
                log.info("data.unlabeled_file: not used by regularizer %s", regularizer.name)
            return None
        if not abstracts:  # config_checks refuses this first; here for callers that skip validate()
            raise ValueError(f"regularizer={regularizer.name} needs data.unlabeled_file (abstracts, one per line)")
        examples = [model.build_example(encode_text(tokenizer, a, cfg.data.max_source_len), None) for a in abstracts]
        rows = max(1, round(ratio * cfg.trainer.batch_size))
        log.info("unlabelled abstracts: %d, %d per step with each batch of %d pairs", len(examples), rows,
                 cfg.trainer.batch_size)
        return cls(examples, rows, cfg.seed)

    def order(self, n_pass: int) -> list[int]:
        if n_pass not in self._orders:
            self._orders = {k: v for k, v in self._orders.items() if k == n_pass - 1}
            generator = torch.Generator().manual_seed(self.seed * 1000 + n_pass + self.SEED_OFFSET)
            self._orders[n_pass] = torch.randperm(len(self.examples), generator=generator).tolist()
        return self._orders[n_pass]

    def batch(self, step: int) -> list:
        """The encoded abstracts of step `step` (0-based)."""
        positions = (divmod(i, len(self.examples)) for i in range(step * self.rows, (step + 1) * self.rows))
        return [self.examples[self.order(n_pass)[index]] for n_pass, index in positions]


class Stopwatch:
    """Seconds spent training and evaluating, counted on from a resumed TrainState."""

    def __init__(self, state: TrainState):
        self.start = time.perf_counter() - state.train_seconds - state.eval_seconds
        self.eval_seconds = state.eval_seconds

    def total(self) -> float:
        return time.perf_counter() - self.start

    def train_seconds(self) -> float:
        return self.total() - self.eval_seconds


class CsvLog:
    """Append-only CSV with a fixed header (so resumed runs keep writing the same file)."""

    def __init__(self, path: Path, fields: list[str]):
        self.path, self.fields = path, fields
        if not path.exists():
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(fields)

    def drop_after(self, step: int) -> None:
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
        if len(kept) != len(rows):
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerows(kept)

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])


@dataclass
class Run:
    """What the loop works with; rank 0 also evaluates, logs and saves."""

    cfg: DictConfig
    out_dir: Path
    ctx: Dist
    device: torch.device
    model: Seq2SeqModel  # the weights being trained
    forward_model: nn.Module  # what the regularizer runs: `model`, or its DDP wrapper
    tokenizer: object
    regularizer: object
    optim: Optimisation
    deadline: Deadline
    state: TrainState
    selection: tuple[str, list]  # (name, examples) of the split evaluated and selected on: dev, or val
    train_log: CsvLog | None = None  # rank 0 only, from open_logs
    eval_log: CsvLog | None = None
    unlabeled: UnlabeledStream | None = None  # semi-supervised regularizers only
    record: dict | None = None  # config, data hashes, changes at resumes: state/run_config.json (run_config.py)

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated and kept: the moving average with trainer.ema_decay."""
        return self.optim.ema.module if self.optim.ema is not None else self.model

    def open_logs(self) -> None:
        self.train_log = CsvLog(self.out_dir / "train_log.csv",
                                ["step", "epoch", "lr", "loss", "ce", "kl", "penalty",
                                 *(UNLABELED_PARTS if self.unlabeled is not None else ()), "seconds"])
        self.eval_log = CsvLog(self.out_dir / "eval_log.csv", ["step", *METRIC_NAMES, "n", "seconds"])
        for csv_log in (self.train_log, self.eval_log):
            csv_log.drop_after(self.state.step)  # steps a resumed run replays are logged again
        OmegaConf.save(self.cfg, self.out_dir / "config_resolved.yaml", resolve=True)

    def fit(self, encoded: list, plan: StepPlan) -> None:
        """Steps until plan.total_steps or the deadline, with dev evaluations; state/ saved every
        trainer.save_every steps."""
        trainer_cfg, ctx = self.cfg.trainer, self.ctx
        bar = tqdm(total=plan.total_steps, initial=self.state.step, desc=f"train {self.regularizer.name}",
                   dynamic_ncols=True, disable=not ctx.is_main)
        self.model.train()
        stopwatch = Stopwatch(self.state)
        try:
            for epoch, batch_ids in batch_schedule(len(encoded), trainer_cfg.batch_size, self.cfg.seed,
                                                   self.state.step, plan):
                unlabeled = self.unlabeled.batch(self.state.step) if self.unlabeled is not None else None
                loss_value, parts = self.train_step([encoded[i] for i in batch_ids], stopwatch, unlabeled)
                step = self.state.step
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}")
                if ctx.is_main and (step % trainer_cfg.log_every == 0 or step == plan.total_steps):
                    self.log_step(epoch, loss_value, parts, stopwatch)
                out_of_time = self.deadline.passed()
                if out_of_time:
                    log.info("trainer.max_minutes=%s reached at step %d: last evaluation", trainer_cfg.max_minutes, step)
                evaluate_now = step % plan.eval_every == 0 or step == plan.total_steps or out_of_time
                if ctx.is_main and evaluate_now:
                    self.evaluate_and_keep(bar, stopwatch)
                out_of_patience = evaluate_now and self.out_of_patience(plan)
                out_of_time = out_of_time or out_of_patience
                self.state.train_seconds = stopwatch.train_seconds()
                self.state.eval_seconds = stopwatch.eval_seconds
                if ctx.is_main and trainer_cfg.save_every and (step % trainer_cfg.save_every == 0
                                                               or step == plan.total_steps):
                    self.save_state()
                if ctx.enabled and evaluate_now:
                    ctx.barrier()  # the other ranks wait while rank 0 evaluates
                if out_of_time:
                    break
        finally:
            bar.close()  # also when a NaN stops the run

    def out_of_patience(self, plan: StepPlan) -> bool:
        """trainer.patience: N evaluations in a row without a new best of trainer.monitor (every rank
        follows rank 0's count)."""
        patience = self.cfg.trainer.get("patience")
        if not patience or self.state.best_step is None:
            return False
        stop = self.ctx.broadcast(self.state.step - self.state.best_step >= patience * plan.eval_every)
        if stop:
            log.info("trainer.patience=%d: no better %s %s since step %d; stopping at step %d", patience,
                     self.selection[0], self.cfg.trainer.monitor, self.state.best_step, self.state.step)
        return stop

    def train_step(self, examples: list, stopwatch: Stopwatch, unlabeled: list | None = None) -> tuple[float, dict]:
        """One optimiser step on a global batch (this rank's shard of it), with the step's unlabelled
        abstracts as batch["unlabeled"] when there are any: (loss, its parts)."""
        batch = self.model.collate(self.ctx.shard(examples))
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if unlabeled:
            batch[UNLABELED] = {k: v.to(self.device) for k, v in self.model.collate(self.ctx.shard(unlabeled)).items()}
        bf16 = self.cfg.trainer.precision == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, parts = self.regularizer(self.forward_model, batch)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            self.stop_on_nan("loss", loss_value)
        optimizer = self.optim.optimizer
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.trainer.max_grad_norm)
        if not torch.isfinite(grad_norm):
            self.stop_on_nan("gradient norm", grad_norm.item())
        optimizer.step()
        if self.optim.ema is not None:
            self.optim.ema.update_parameters(self.model)
        self.deadline.update(stopwatch.total())  # before the schedule steps: lr_decay_by_time reads it
        self.optim.scheduler.step()
        self.state.step += 1
        return loss_value, parts

    def stop_on_nan(self, what: str, value: float):
        state_dir = self.out_dir / "state"
        raise FloatingPointError(
            f"{what} is {value} at step {self.state.step + 1}; stopping. The last good state is in "
            f"{state_dir if state_dir.exists() else '(no saved state yet)'} and the best model in "
            f"{self.out_dir / 'checkpoint'}")

    def log_step(self, epoch: int, loss_value: float, parts: dict, stopwatch: Stopwatch) -> None:
        self.train_log.write({"step": self.state.step, "epoch": epoch,
                              "lr": f"{self.optim.scheduler.get_last_lr()[0]:.3e}", "loss": f"{loss_value:.5f}",
                              **{k: f"{v:.5f}" for k, v in parts.items()},
                              "seconds": f"{stopwatch.train_seconds():.1f}"})

    def evaluate_and_keep(self, bar, stopwatch: Stopwatch) -> None:
        """Scores of eval_model on the selection split (dev, or val); checkpoint/ gets its weights when they
        score best so far on trainer.monitor (trainer.keep=best) or at every evaluation (keep=last)."""
        trainer_cfg, state = self.cfg.trainer, self.state
        name, examples = self.selection
        started = time.perf_counter()
        scores, predictions = evaluate(self.eval_model, self.tokenizer, examples, self.cfg, self.device)
        self.model.train()
        self.eval_log.write({"step": state.step, **{k: f"{scores[k]:.2f}" for k in METRIC_NAMES},
                             "n": scores["n"], "seconds": f"{time.perf_counter() - started:.1f}"})
        bar.write(f"step {state.step}: {name} " + " ".join(f"{k} {scores[k]:.2f}" for k in METRIC_NAMES))
        improved = scores[trainer_cfg.monitor] > state.best
        if improved:
            state.best, state.best_step = scores[trainer_cfg.monitor], state.step
        if improved or trainer_cfg.keep == "last":  # keep=last: each evaluation replaces the last
            state.kept_step = state.step
            save_model_checkpoint(self.out_dir / "checkpoint", self.eval_model, self.tokenizer, self.cfg,
                                  extra={"step": state.step, name: scores})
            write_predictions(self.out_dir / f"predictions_{name}.tsv", examples, predictions)
            (self.out_dir / f"kept_{name}_scores.json").write_text(json.dumps(scores))
        stopwatch.eval_seconds += time.perf_counter() - started

    def save_state(self) -> None:
        """state/: the model with its tokenizer, and trainer_state.pt (optimisation, TrainState, random
        states), swapped in whole."""
        def write(tmp: Path):
            self.model.save_pretrained(tmp / "model", tokenizer=self.tokenizer)
            self.tokenizer.save_pretrained(str(tmp / "model"))
            torch.save({**self.optim.state_dict(), "progress": asdict(self.state), "rng": _rng_state()},
                       tmp / "trainer_state.pt")
            if self.record is not None:
                write_run_record(tmp, self.record)
        atomic_write_dir(self.out_dir / "state", write)
        if self.cfg.trainer.keep_last_states > 1:  # earlier states for scripts/average_checkpoints.py
            keep_state_copy(self.out_dir, self.state.step, self.cfg.trainer.keep_last_states)


def evaluate(model, tokenizer, examples, cfg, device, progress=True, decode_overrides=None):
    """Beam-search titles for `examples` (cfg.decode, updated by `decode_overrides`); return (scores, predictions)."""
    decode_cfg = {**OmegaConf.to_container(cfg.decode, resolve=True), **(decode_overrides or {})}
    hyps = generate(model, tokenizer, [e.abstract for e in examples], decode_cfg,
                    batch_size=decode_cfg["batch_size"], max_source_len=cfg.data.max_source_len,
                    device=device, progress=progress)
    # titles as users get them (generate.py's keep_case); scoring lower-cases, so the scores cannot move
    predictions = [restore_case(decode_ids(tokenizer, h[0].tokens), e.abstract) for h, e in zip(hyps, examples)]
    return score_corpus([e.title for e in examples], predictions), predictions


def write_predictions(path: Path, examples, predictions) -> None:
    def clean(s: str) -> str:
        return s.replace("\t", " ").replace("\n", " ")

    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{clean(e.title)}\t{clean(p)}\n" for e, p in zip(examples, predictions)), encoding="utf-8")
    tmp.replace(path)


# ------------------------------------------------------------------------------------------ the end


def final_metrics(run: Run, splits: Splits, plan: StepPlan, dropout: tuple[float, float]) -> dict:
    """metrics.json before the kept weights' test and final_decodes scores (score_kept_weights adds them)."""
    cfg, state, model, regularizer = run.cfg, run.state, run.model, run.regularizer
    selection = run.selection[0]  # with a validation split, score_kept_weights adds the kept weights' dev scores
    return {
        selection: json.loads((run.out_dir / f"kept_{selection}_scores.json").read_text()),
        "selected_on": selection,
        "best_step": state.best_step,
        "kept": cfg.trainer.keep,
        "kept_step": state.kept_step,
        "train_seconds": round(state.train_seconds, 3),
        "eval_seconds": round(state.eval_seconds, 3),
        "total_steps": plan.total_steps,
        "steps": state.step,  # fewer than total_steps when trainer.patience or trainer.max_minutes stopped the run
        "seed": cfg.seed,
        "monitor": f"dev {cfg.trainer.monitor}",
        "regularizer": {"name": regularizer.name, **json_safe(regularizer.settings())},
        "model": {"family": model.family, "parameters": count_parameters(model), "vocab_size": model.vocab_size,
                  "pretrained": cfg.model.pretrained,
                  "dropout": {"hidden": dropout[0], "attention": dropout[1]}},
        "decode": OmegaConf.to_container(cfg.decode, resolve=True),
        "data": {"dir": os.path.relpath(splits.data_dir), "train": len(splits.train), "dev": len(splits.dev),
                 **({"val": len(splits.val)} if splits.val else {}),
                 "test": len(splits.test) if splits.test else 0,
                 **({"unlabeled": len(run.unlabeled.examples)} if run.unlabeled is not None else {})},
        "device": str(run.device),
        "torch_threads": torch.get_num_threads(),  # CPU results can differ in the last bits across thread counts
        "world_size": run.ctx.world_size,
        "precision": cfg.trainer.precision,
        "ema_decay": cfg.trainer.ema_decay,
        "fast_dropout": bool(cfg.trainer.fast_dropout),
        **({"config_changes": run.record["changes"]} if run.record and run.record["changes"] else {}),
    }


def score_kept_weights(cfg, out_dir: Path, tokenizer, device, splits: Splits, metrics: dict,
                       per_example: dict) -> None:
    """The kept checkpoint's scores beyond those of its evaluation (already in metrics): dev with cfg.decode
    when it was chosen on a validation split, test with cfg.decode, and dev/test with each of
    trainer.final_decodes (name -> decode overrides, e.g. a wide beam). Per-example scores of every split
    and decoding, with those in `per_example` (score_final_weights), go to example_scores.json."""
    selection = splits.selection[0]
    decodes = _final_decodes(cfg)
    on_val = set(cfg.trainer.get("val_decodes") or ())  # final_decodes also scored on the validation split
    to_score = {"dev": splits.dev, **({"test": splits.test} if splits.test else {}),
                **({"val": splits.val} if splits.val and on_val else {})}
    if selection == "dev":
        predictions_dev = [line.split("\t", 1)[1] for line in
                           (out_dir / "predictions_dev.tsv").read_text(encoding="utf-8").splitlines()]
        per_example.setdefault("dev", {})["main"] = score_examples([e.title for e in splits.dev], predictions_dev)
    if selection == "dev" and not splits.test and not decodes:
        _write_example_scores(out_dir, per_example)
        return
    kept = load_model(out_dir / "checkpoint", tokenizer).to(device)
    for split, examples in to_score.items():
        for name, overrides in [("main", None), *decodes.items()]:
            if (split == selection and name == "main") or (split == "val" and name not in on_val):
                continue
            scores, predictions = evaluate(kept, tokenizer, examples, cfg, device, decode_overrides=overrides)
            suffix = split if name == "main" else f"{split}_{name}"
            write_predictions(out_dir / f"predictions_{suffix}.tsv", examples, predictions)
            per_example.setdefault(split, {})[name] = score_examples([e.title for e in examples], predictions)
            if name == "main":
                metrics[split] = scores
            else:
                metrics.setdefault("decodes", {}).setdefault(name, {"overrides": overrides})[split] = scores
    _write_example_scores(out_dir, per_example)


def score_final_weights(run: Run, dev_examples: list, metrics: dict) -> dict:
    """With a validation split, the kept weights are its best step's; the final weights' dev scores (cfg.decode
    and each trainer.final_decodes entry) go to metrics["final"], their predictions to predictions_dev_final*.tsv.
    Returns their per-example scores, {"dev": {"final": ..., "final_<name>": ...}}."""
    metrics["final"] = {"step": run.state.step}
    per_example: dict = {"dev": {}}
    titles = [e.title for e in dev_examples]
    for name, overrides in [("main", None), *_final_decodes(run.cfg).items()]:
        scores, predictions = evaluate(run.eval_model, run.tokenizer, dev_examples, run.cfg, run.device,
                                       decode_overrides=overrides)
        suffix = "final" if name == "main" else f"final_{name}"
        write_predictions(run.out_dir / f"predictions_dev_{suffix}.tsv", dev_examples, predictions)
        per_example["dev"][suffix] = score_examples(titles, predictions)
        if name == "main":
            metrics["final"]["dev"] = scores
        else:
            metrics["final"].setdefault("decodes", {})[name] = {"overrides": overrides, "dev": scores}
    return per_example


def add_floors_and_title_shapes(metrics: dict, dev_examples: list, out_dir: Path) -> None:
    """metrics.json's no-training floors on dev (dev_lead: the first 20 characters; dev_rule: the one-line
    rule) and, per dev prediction file, whether the titles read as titles (dev_title_shape, by decoding)."""
    titles, abstracts = [e.title for e in dev_examples], [e.abstract for e in dev_examples]
    metrics["dev_lead"] = lead_scores(titles, abstracts)
    metrics["dev_rule"] = rule_scores(titles, abstracts)
    shapes = {}
    for path in sorted(out_dir.glob("predictions_dev*.tsv")):
        decoding = path.stem[len("predictions_dev"):].lstrip("_") or "main"
        predictions = [line.split("\t", 1)[1] for line in path.read_text(encoding="utf-8").splitlines()]
        shapes[decoding] = {k: round(v, 4) for k, v in title_shape(predictions, titles).items()}
    metrics["dev_title_shape"] = shapes


def _final_decodes(cfg: DictConfig) -> dict:
    """trainer.final_decodes as a plain dict (null: none)."""
    final_decodes = cfg.trainer.final_decodes
    return OmegaConf.to_container(final_decodes, resolve=True) if final_decodes else {}


def _write_example_scores(out_dir: Path, per_example: dict) -> None:
    rounded = {split: {name: {m: [round(v, 2) for v in values] for m, values in scores.items()}
                       for name, scores in by_name.items()} for split, by_name in per_example.items()}
    (out_dir / "example_scores.json").write_text(json.dumps(rounded, separators=(",", ":")))


def print_summary(metrics: dict, cfg: DictConfig, out_dir: Path) -> None:
    splits = {k: metrics[k] for k in ("val", "dev", "test") if k in metrics}
    print(format_table(splits, title=f"{cfg.trainer.keep} checkpoint on {metrics['selected_on']} "
                                     f"(step {metrics['kept_step']}), beam {cfg.decode.beam_size}:"))
    for name, decoded in metrics.get("decodes", {}).items():
        print(format_table({k: decoded[k] for k in ("dev", "test") if k in decoded}, title=f"{name}:"))
    if "final" in metrics:
        final = metrics["final"]
        rows = {"dev": final["dev"], **{f"dev {name}": d["dev"] for name, d in final.get("decodes", {}).items()}}
        print(format_table(rows, title=f"final weights (step {final['step']}):"))
    shape = metrics["dev_title_shape"].get("main")
    if shape:
        print(f"dev titles (main decoding): {shape['length']:.1f} characters (references "
              f"{shape['reference_length']:.1f}), unbalanced brackets {shape['unbalanced_brackets']:.1%}, boilerplate "
              f"{shape['boilerplate']:.1%}, a repeated 3-gram {shape['repetitive']:.1%}, starting with 基于 "
              f"{shape['starts_jiyu']:.1%} (references {shape['reference_starts_jiyu']:.1%})")
    print(f"train {metrics['train_seconds']:.0f}s + dev evaluation {metrics['eval_seconds']:.0f}s; outputs in {out_dir}")
    print(f"what it means: the abstract's first {LEAD_CHARS} characters as the title score dev ROUGE-L "
          f"{metrics['dev_lead']['rouge-l']:.1f} on this dev split, the one-line rule (the clause after 提出/设计/"
          f"研究..., metrics.rule_title) {metrics['dev_rule']['rouge-l']:.1f}; {REFERENCE_POINTS}")


def json_safe(obj):
    """Settings -> JSON-friendly values (anything else as its str)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj if isinstance(obj, (int, float, str, bool, type(None))) else str(obj)
