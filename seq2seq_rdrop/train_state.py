"""What a run carries from step to step and across a resume: the optimiser, schedule and moving average
(Optimisation), the time budget (Deadline), where it stands (TrainState), and its saved state read back as
data (load_trainer_state: nothing in a state file is ever run)."""
from __future__ import annotations

import logging
import math
import pickle
import random
import re
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .checkpoints import CheckpointError
from .distributed import Dist
from .lr_schedules import LR_SCHEDULES, linear_schedule_to_deadline

log = logging.getLogger(__name__)


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
    set_rng_state(saved["rng"])
    log.info("resumed from %s at step %d", resume_from, state.step)
    return state


# What an older trainer_state.pt may hold beyond tensors and plain containers: numpy's random state was
# saved as an array. These are the types torch's own documentation allows for numpy arrays; nothing else
# in a state file is ever turned into an object (weights_only=True: a planted pickle payload is refused).
_NUMPY_ARRAY_GLOBALS = [np.ndarray, np.dtype, type(np.dtype(np.uint32)),
                        getattr(np, "_core", getattr(np, "core", None)).multiarray._reconstruct]


def load_trainer_state(path: Path, mmap: bool = False) -> dict:
    """trainer_state.pt as data: tensors, numbers, strings and containers only. A file that holds anything
    else (an object to build, code to run) is refused with a one-line error naming it. mmap: tensors are
    mapped from the file, not read (a check of the file costs little)."""
    try:
        with torch.serialization.safe_globals(_NUMPY_ARRAY_GLOBALS):
            saved = torch.load(path, weights_only=True, map_location="cpu", mmap=mmap)
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


def rng_state() -> dict:
    numpy_state = np.random.get_state()  # (name, uint32 keys, pos, has_gauss, cached): keys stored as a list
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
