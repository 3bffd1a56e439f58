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
    eval_log.csv, kept_dev_scores.json (kept_val_scores.json with a validation split), TensorBoard event files
    (trainer.tensorboard: tensorboard_log.py), checkpoint/ (kept model, HF format + tokenizer + resolved config), state/ (for resuming).
"""
from __future__ import annotations

import csv
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm.auto import tqdm
from transformers.utils import logging as hf_logging

from .checkpoints import atomic_write_dir, keep_state_copy, save_model_checkpoint
from .config_checks import check_run_decoding, validate
from .distributed import Dist, init_distributed, pick_device, shutdown, wrap
from .final_scores import (
    add_floors_and_title_shapes,
    add_word_rouge,
    evaluate,
    final_metrics,
    print_summary,
    score_final_weights,
    score_kept_weights,
    write_predictions,
)
from .memory import keep_freed_memory
from .metrics import METRIC_NAMES
from .model_setup import build_or_resume_model, encode_training_split, prepare_model, run_selector
from .models import Seq2SeqModel
from .regularizers.semi_supervised import UNLABELED, UNLABELED_PARTS
from .run_config import check_resumed_config, data_file_hashes, run_record, write_run_record
from .run_dir import owned_run_dir
from .splits import load_splits
from .tensorboard_log import RunBoard
from .tokenizer import encode_text
from .train_state import Deadline, Optimisation, TrainState, resume_training, rng_state

log = logging.getLogger(__name__)


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
    selector_file = run_selector(cfg, out_dir, splits, ctx)  # a content selector given or trained first
    model, tokenizer, resume_from = build_or_resume_model(cfg, out_dir, splits.train, ctx, selector_file)
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
    try:
        return _fit_and_score(run, encoded, plan, splits, dropout)
    finally:
        if run.board is not None:
            run.board.close()


def _fit_and_score(run: Run, encoded: list, plan: StepPlan, splits, dropout: tuple[float, float]) -> dict:
    """The steps, then (rank 0) the final scores: metrics.json, and the TensorBoard hparams with them."""
    cfg, out_dir, ctx, model = run.cfg, run.out_dir, run.ctx, run.model
    run.fit(encoded, plan)

    checksums = ctx.gather(float(sum(p.detach().double().sum() for p in model.parameters())))
    if not ctx.is_main:
        return {}
    metrics = final_metrics(run, splits, plan, dropout)
    if ctx.enabled:
        metrics["rank_weight_checksums"] = checksums  # equal when DDP kept the replicas in sync
    per_example = (score_final_weights(run, splits.dev, metrics)
                   if splits.val and cfg.trainer.get("score_final_weights", True) else {})
    score_kept_weights(cfg, out_dir, run.tokenizer, run.device, splits, metrics, per_example)
    add_floors_and_title_shapes(metrics, splits.dev, out_dir, splits.test)
    add_word_rouge(metrics, splits.dev, out_dir)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    if run.board is not None:
        run.board.log_final(cfg, metrics, run.state.step)
    print_summary(metrics, cfg, out_dir)
    return metrics


# --------------------------------------------------------------------------------------------- set-up


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    board: RunBoard | None = None  # rank 0 with trainer.tensorboard, from open_logs

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
        if self.cfg.trainer.get("tensorboard", True):
            self.board = RunBoard(self.out_dir, self.state.step, self.state.train_seconds)

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
        lr, seconds = self.optim.scheduler.get_last_lr()[0], stopwatch.train_seconds()
        self.train_log.write({"step": self.state.step, "epoch": epoch, "lr": f"{lr:.3e}", "loss": f"{loss_value:.5f}",
                              **{k: f"{v:.5f}" for k, v in parts.items()}, "seconds": f"{seconds:.1f}"})
        if self.board is not None:
            self.board.log_step(self.state.step, loss_value, parts, lr, seconds)

    def evaluate_and_keep(self, bar, stopwatch: Stopwatch) -> None:
        """Scores of eval_model on the selection split (dev, or val); checkpoint/ gets its weights when they
        score best so far on trainer.monitor (trainer.keep=best) or at every evaluation (keep=last)."""
        trainer_cfg, state = self.cfg.trainer, self.state
        name, examples = self.selection
        started = time.perf_counter()
        scores, predictions = evaluate(self.eval_model, self.tokenizer, examples, self.cfg, self.device)
        self.model.train()
        seconds = time.perf_counter() - started
        self.eval_log.write({"step": state.step, **{k: f"{scores[k]:.2f}" for k in METRIC_NAMES},
                             "n": scores["n"], "seconds": f"{seconds:.1f}"})
        if self.board is not None:
            self.board.log_evaluation(state.step, name, scores, seconds)
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
            torch.save({**self.optim.state_dict(), "progress": asdict(self.state), "rng": rng_state()},
                       tmp / "trainer_state.pt")
            if self.record is not None:
                write_run_record(tmp, self.record)
        atomic_write_dir(self.out_dir / "state", write)
        if self.board is not None:
            self.board.flush()  # the events up to the saved step are on disk: a resume after a kill loses none
        if self.cfg.trainer.keep_last_states > 1:  # earlier states for scripts/average_checkpoints.py
            keep_state_copy(self.out_dir, self.state.step, self.cfg.trainer.keep_last_states)
