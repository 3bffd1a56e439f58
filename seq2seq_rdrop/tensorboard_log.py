"""TensorBoard event files of a training run (trainer.tensorboard, default on), written into the run directory
beside train_log.csv and eval_log.csv (which stay: the reports read them), so that `tensorboard --logdir` on a
sweep's work dir shows one run per <row>_seed<S> folder:

    train/loss, train/<part> (ce, kl, penalty, ce_unlabeled, kl_unlabeled: whatever the regularizer returns),
    train/lr, train/step_seconds (training seconds per step since the last log)  every trainer.log_every steps
    <split>/<metric> (val or dev: rouge-1, rouge-2, rouge-l, bleu), <split>/eval_seconds  at each evaluation
    hparams: the run's resolved config, with final/<split>[_<decoding>]/<metric> from metrics.json  at the end

Only rank 0 writes. A resumed run purges what the killed one logged after its saved step (SummaryWriter's
purge_step), so the replayed steps are not shown twice; every state save flushes the events, so nothing up to
the saved step is lost with a kill. Writing events draws no random numbers: training is the same with or without."""
from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .metrics import METRIC_NAMES


class RunBoard:
    """The SummaryWriter of one run directory, opened at `step` (0, or the step a resumed run continues from, with
    `train_seconds` already spent)."""

    def __init__(self, out_dir: Path, step: int = 0, train_seconds: float = 0.0):
        from torch.utils.tensorboard import SummaryWriter  # here: the tensorboard package loads only when used

        self.writer = SummaryWriter(log_dir=str(out_dir), purge_step=step + 1 if step else None)
        self.last_logged = (step, train_seconds)

    def log_step(self, step: int, loss: float, parts: dict, lr: float, train_seconds: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        for name, value in parts.items():
            self.writer.add_scalar(f"train/{name}", value, step)
        self.writer.add_scalar("train/lr", lr, step)
        last_step, last_seconds = self.last_logged
        if step > last_step:
            self.writer.add_scalar("train/step_seconds", (train_seconds - last_seconds) / (step - last_step), step)
        self.last_logged = (step, train_seconds)

    def log_evaluation(self, step: int, split: str, scores: dict, seconds: float) -> None:
        for metric in METRIC_NAMES:
            self.writer.add_scalar(f"{split}/{metric}", scores[metric], step)
        self.writer.add_scalar(f"{split}/eval_seconds", seconds, step)

    def log_final(self, cfg: DictConfig, metrics: dict, step: int) -> None:
        """The run's config as hparams, with final_scores(metrics) as their metrics, at the run's last step."""
        from torch.utils.tensorboard.summary import hparams

        scores = final_scores(metrics)
        # into this run's own event file: SummaryWriter.add_hparams would open a sub-run named by the clock
        file_writer = self.writer._get_file_writer()
        for summary in hparams(config_hparams(cfg), scores):
            file_writer.add_summary(summary, step)
        for tag, value in scores.items():
            self.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def final_scores(metrics: dict) -> dict[str, float]:
    """metrics.json's scores as final/<split>/<metric> (the kept weights, cfg.decode), final/<split>_<decoding>/...
    (each trainer.final_decodes entry) and final/<split>_final_weights/... (the final weights, with a validation
    split)."""
    scores = {}

    def add(prefix: str, by_metric: dict) -> None:
        scores.update({f"final/{prefix}/{m}": float(by_metric[m]) for m in METRIC_NAMES if m in by_metric})

    for split in ("val", "dev", "test"):
        if isinstance(metrics.get(split), dict):
            add(split, metrics[split])
    for name, decoded in metrics.get("decodes", {}).items():
        for split in ("val", "dev", "test"):
            if isinstance(decoded.get(split), dict):
                add(f"{split}_{name}", decoded[split])
    final = metrics.get("final", {})
    if isinstance(final.get("dev"), dict):
        add("dev_final_weights", final["dev"])
    return scores


def config_hparams(cfg: DictConfig) -> dict:
    """The resolved config flattened to dotted keys with values TensorBoard's hparams take (numbers, strings,
    booleans; lists and nulls as their JSON text)."""
    flat = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
            return
        key = prefix[:-1]
        flat[key] = node if isinstance(node, (bool, int, float, str)) else json.dumps(node, ensure_ascii=False)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat
