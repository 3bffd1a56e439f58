"""The training loop, top to bottom: data -> tokenizer -> model -> regularizer -> steps with
periodic dev evaluation (beam search) -> best checkpoint -> final scores and predictions.

Everything a run writes lands in its output directory:
    metrics.json, predictions_dev.tsv (and _test), train_log.csv, eval_log.csv,
    checkpoint/ (best model, HF format + tokenizer + resolved config), state/ (for resuming).
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup
from transformers.utils import logging as hf_logging

from .checkpoints import atomic_write_dir, recover_dir, save_model_checkpoint
from .data import read_examples, resolve_data_dir
from .decoding import generate
from .distributed import init_distributed, shutdown, wrap
from .fast_dropout import use_fast_dropout
from .memory import keep_freed_memory
from .metrics import METRIC_NAMES, format_table, score_corpus, score_examples
from .models import build_model, load_model
from .tokenizer import build_tokenizer, decode_ids, encode_text, load_tokenizer
from .vocab_trim import trim_vocabulary

log = logging.getLogger(__name__)
MONITORS = METRIC_NAMES  # what trainer.monitor may name; higher is better for all of them
KEEP = ("best", "last")  # trainer.keep: the weights that scored best on dev, or the final weights


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"trainer.device={name!r}: allowed values are auto, cpu, cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"trainer.device={name} but no CUDA device is available")
    return torch.device(name)


def load_split(cfg: DictConfig, data_dir: Path, name: str):
    file = cfg.data.get(f"{name}_file")
    if not file:
        return None
    return read_examples(data_dir / file, skip_bad_lines=cfg.data.skip_bad_lines)


def encode_pairs(model, tokenizer, examples, max_source_len: int, max_target_len: int):
    """Examples -> (src, tgt_in, tgt_out) id lists. Abstracts longer than max_source_len tokens are cut."""
    out = []
    for ex in examples:
        src = encode_text(tokenizer, ex.abstract, max_source_len)
        tgt = encode_text(tokenizer, ex.title, max_target_len)
        out.append(model.build_example(src, tgt))
    return out


def linear_schedule_to_deadline(optimizer, warmup_ratio: float, total_steps: int, used_time_fraction):
    """Linear warm-up, then linear decay to 0, over progress = the larger of steps done / total_steps
    and used_time_fraction() (the share of trainer.max_minutes spent). A run that the clock stops
    before total_steps thus still ends annealed, on any machine (trainer.lr_decay_by_time)."""
    def factor(step: int) -> float:
        progress = min(max(step / total_steps, used_time_fraction()), 1.0)
        if progress < warmup_ratio:
            return progress / warmup_ratio
        return (1.0 - progress) / max(1.0 - warmup_ratio, 1e-12)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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


def evaluate(model, tokenizer, examples, cfg, device, progress=True, decode_overrides=None):
    """Beam-search titles for `examples` (cfg.decode, updated by `decode_overrides`); return (scores, predictions)."""
    decode_cfg = {**OmegaConf.to_container(cfg.decode, resolve=True), **(decode_overrides or {})}
    hyps = generate(model, tokenizer, [e.abstract for e in examples], decode_cfg,
                    batch_size=decode_cfg["batch_size"], max_source_len=cfg.data.max_source_len,
                    device=device, progress=progress)
    predictions = [decode_ids(tokenizer, h[0].tokens) for h in hyps]
    return score_corpus([e.title for e in examples], predictions), predictions


def write_predictions(path: Path, examples, predictions) -> None:
    def clean(s: str) -> str:
        return s.replace("\t", " ").replace("\n", " ")

    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{clean(e.title)}\t{clean(p)}\n" for e, p in zip(examples, predictions)), encoding="utf-8")
    tmp.replace(path)


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train(cfg: DictConfig, out_dir: str | Path) -> dict:
    keep_freed_memory()
    ctx, device_name = init_distributed(cfg.trainer.device)
    try:
        return _train(cfg, out_dir, ctx, device_name)
    finally:
        shutdown(ctx)


def _train(cfg: DictConfig, out_dir, ctx, device_name: str) -> dict:
    out_dir = Path(ctx.broadcast(str(out_dir)))  # every rank uses rank 0's run directory
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()  # no "Writing model shards" bars at every checkpoint
    tcfg = cfg.trainer
    if tcfg.monitor not in MONITORS:
        raise ValueError(f"trainer.monitor={tcfg.monitor!r}: allowed values are {', '.join(MONITORS)}")
    if tcfg.keep not in KEEP:
        raise ValueError(f"trainer.keep={tcfg.keep!r}: allowed values are {', '.join(KEEP)}")
    if tcfg.get("precision", "fp32") not in ("fp32", "bf16"):
        raise ValueError(f"trainer.precision={tcfg.precision!r}: allowed values are fp32, bf16")
    set_seed(cfg.seed)
    if tcfg.get("num_threads"):
        torch.set_num_threads(int(tcfg.num_threads))
    device = pick_device(device_name)
    bf16 = tcfg.get("precision") == "bf16"
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731

    # --- data --------------------------------------------------------------------------------
    data_dir = resolve_data_dir(cfg.data.dir)
    train_examples = load_split(cfg, data_dir, "train")
    test_examples = load_split(cfg, data_dir, "test")
    holdout = cfg.data.get("holdout_test") or 0
    if holdout:
        # a test split carved from the end of the training file, for data that ships only train + dev
        if test_examples is not None:
            raise ValueError("data.holdout_test and data.test_file are exclusive: set one of them")
        if holdout >= len(train_examples):
            raise ValueError(f"data.holdout_test={holdout} leaves no training examples (train has {len(train_examples)})")
        train_examples, test_examples = train_examples[:-holdout], train_examples[-holdout:]
    if cfg.data.get("max_train_samples"):
        train_examples = train_examples[: cfg.data.max_train_samples]
    dev_examples = load_split(cfg, data_dir, "dev")
    if dev_examples is None:
        raise ValueError("data.dev_file is required: the best checkpoint is chosen on dev")
    if cfg.data.max_eval_samples:
        dev_examples = dev_examples[: cfg.data.max_eval_samples]

    # --- tokenizer and model -----------------------------------------------------------------
    state_dir = out_dir / "state"
    if ctx.is_main:
        for directory in (state_dir, out_dir / "checkpoint"):
            recover_dir(directory)  # a kill between two renames must not lose the last good copy
    ctx.barrier()
    resume_from = _resume_dir(tcfg.resume, state_dir)
    if resume_from is not None:
        tokenizer = load_tokenizer(resume_from / "model")
        model = load_model(resume_from / "model", tokenizer)
    elif cfg.model.get("pretrained"):
        tokenizer = load_tokenizer(cfg.model.pretrained)
        model = build_model(cfg.model, tokenizer)
        if cfg.model.get("trim_vocab"):  # keep the specials + the training split's tokens (vocab_trim.py)
            texts = [t for e in train_examples for t in (e.title, e.abstract)]
            model, tokenizer = trim_vocabulary(model, tokenizer, texts, out_dir / "tokenizer", write=ctx.is_main,
                                               barrier=ctx.barrier)
    else:
        texts = [t for e in train_examples for t in (e.title, e.abstract)]  # train split only
        if ctx.is_main:
            build_tokenizer(texts, out_dir / "tokenizer", min_count=cfg.data.vocab_min_count)
        ctx.barrier()
        tokenizer = load_tokenizer(out_dir / "tokenizer")
        model = build_model(cfg.model, tokenizer)
    regularizer = instantiate(cfg.regularizer)
    dropout = regularizer.apply_dropout(model)  # e.g. R-Drop's hidden-state dropout 0.3
    if tcfg.get("fast_dropout"):  # dropout masks at a quarter of torch's CPU cost (fast_dropout.py)
        use_fast_dropout(model)
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model %s: %.2fM parameters, vocabulary %d, dropout %g (attention %g)", model.family, n_params / 1e6,
             model.vocab_size, *dropout)

    encoded = encode_pairs(model, tokenizer, train_examples, cfg.data.max_source_len, cfg.data.max_target_len)
    steps_per_epoch = math.ceil(len(encoded) / tcfg.batch_size)
    total_steps = tcfg.max_steps or tcfg.epochs * steps_per_epoch
    eval_every = tcfg.eval_every or steps_per_epoch

    net = wrap(model, ctx, device)  # what the regularizer runs: the model itself, or its DDP wrapper
    max_seconds = 60 * tcfg.max_minutes if tcfg.get("max_minutes") else None
    clock = {"seconds": 0.0}  # training + evaluation seconds so far, as rank 0 counts them
    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    if tcfg.get("lr_decay_by_time") and max_seconds is not None:
        scheduler = linear_schedule_to_deadline(optimizer, tcfg.warmup_ratio, total_steps,
                                                lambda: clock["seconds"] / max_seconds)
    else:
        scheduler = get_linear_schedule_with_warmup(optimizer, int(tcfg.warmup_ratio * total_steps), total_steps)

    # trainer.ema_decay: an exponential moving average of the weights is what gets evaluated, selected
    # and saved. On 2.7k pairs the raw weights' dev ROUGE-L wanders by about a point between evaluations.
    ema = None
    if tcfg.get("ema_decay") is not None:
        if not 0.0 < float(tcfg.ema_decay) < 1.0:
            raise ValueError(f"trainer.ema_decay={tcfg.ema_decay!r}: allowed values are null (off) or a number in (0, 1)")
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(tcfg.ema_decay)))
    judged = ema.module if ema is not None else model  # the weights that are evaluated and saved

    progress = {"step": 0, "best": -math.inf, "best_step": None, "kept_step": None, "train_seconds": 0.0,
                "eval_seconds": 0.0}
    if resume_from is not None:
        saved = torch.load(resume_from / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if ema is not None:
            if "ema" not in saved:
                raise ValueError(f"trainer.ema_decay={tcfg.ema_decay} but {resume_from} was saved without it: "
                                 "resume with the run's own trainer.ema_decay")
            ema.load_state_dict(saved["ema"])
        progress.update(saved["progress"])
        _set_rng_state(saved["rng"])
        log.info("resumed from %s at step %d", resume_from, progress["step"])

    if ctx.is_main:
        train_log = CsvLog(out_dir / "train_log.csv", ["step", "epoch", "lr", "loss", "ce", "kl", "penalty", "seconds"])
        eval_log = CsvLog(out_dir / "eval_log.csv", ["step", *METRIC_NAMES, "n", "seconds"])
        for csv_log in (train_log, eval_log):
            csv_log.drop_after(progress["step"])  # steps a resumed run replays are logged again
        OmegaConf.save(cfg, out_dir / "config_resolved.yaml", resolve=True)

    def save_state():
        def write(tmp: Path):
            model.save_pretrained(tmp / "model")
            tokenizer.save_pretrained(str(tmp / "model"))
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "progress": dict(progress), "rng": _rng_state(),
                        **({"ema": ema.state_dict()} if ema is not None else {})}, tmp / "trainer_state.pt")
        atomic_write_dir(state_dir, write)

    # --- the loop ----------------------------------------------------------------------------
    # Batch order depends only on (seed, epoch): a resumed run replays the same batches.
    bar = tqdm(total=total_steps, initial=progress["step"], desc=f"train {regularizer.name}", dynamic_ncols=True,
               disable=not ctx.is_main)
    model.train()
    start = time.perf_counter() - progress["train_seconds"] - progress["eval_seconds"]
    eval_time = progress["eval_seconds"]

    try:
        out_of_time = False
        while progress["step"] < total_steps:
            epoch, offset = divmod(progress["step"], steps_per_epoch)
            order = torch.randperm(len(encoded), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch)).tolist()
            for first in range(offset * tcfg.batch_size, len(order), tcfg.batch_size):
                if progress["step"] >= total_steps:
                    break
                batch = model.collate(ctx.shard([encoded[i] for i in order[first:first + tcfg.batch_size]]))
                batch = {k: v.to(device) for k, v in batch.items()}
                with autocast():
                    loss, parts = regularizer(net, batch)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    _stop_on_nan("loss", loss_value, progress["step"] + 1, state_dir, out_dir)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.max_grad_norm)
                if not torch.isfinite(grad_norm):
                    _stop_on_nan("gradient norm", grad_norm.item(), progress["step"] + 1, state_dir, out_dir)
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                if max_seconds is not None:  # all ranks follow rank 0's clock (learning rate, stopping)
                    clock["seconds"] = ctx.broadcast(time.perf_counter() - start)
                scheduler.step()
                progress["step"] += 1
                step = progress["step"]
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}")
                if ctx.is_main and (step % tcfg.log_every == 0 or step == total_steps):
                    train_log.write({"step": step, "epoch": epoch, "lr": f"{scheduler.get_last_lr()[0]:.3e}",
                                     "loss": f"{loss_value:.5f}", **{k: f"{v:.5f}" for k, v in parts.items()},
                                     "seconds": f"{time.perf_counter() - start - eval_time:.1f}"})
                out_of_time = max_seconds is not None and clock["seconds"] >= max_seconds
                if out_of_time:
                    log.info("trainer.max_minutes=%s reached at step %d: last evaluation", tcfg.max_minutes, step)
                evaluate_now = step % eval_every == 0 or step == total_steps or out_of_time
                if ctx.is_main and evaluate_now:
                    t0 = time.perf_counter()
                    scores, predictions = evaluate(judged, tokenizer, dev_examples, cfg, device)
                    model.train()
                    eval_log.write({"step": step, **{k: f"{scores[k]:.2f}" for k in METRIC_NAMES},
                                    "n": scores["n"], "seconds": f"{time.perf_counter() - t0:.1f}"})
                    bar.write(f"step {step}: dev " + " ".join(f"{k} {scores[k]:.2f}" for k in METRIC_NAMES))
                    improved = scores[tcfg.monitor] > progress["best"]
                    if improved:
                        progress["best"], progress["best_step"] = scores[tcfg.monitor], step
                    if improved or tcfg.keep == "last":  # keep=last: each evaluation replaces the last
                        progress["kept_step"] = step
                        save_model_checkpoint(out_dir / "checkpoint", judged, tokenizer, cfg,
                                              extra={"step": step, "dev": scores})
                        write_predictions(out_dir / "predictions_dev.tsv", dev_examples, predictions)
                        (out_dir / "kept_dev_scores.json").write_text(json.dumps(scores))
                    eval_time += time.perf_counter() - t0
                progress["train_seconds"] = time.perf_counter() - start - eval_time
                progress["eval_seconds"] = eval_time
                if ctx.is_main and tcfg.save_every and (step % tcfg.save_every == 0 or step == total_steps):
                    save_state()
                if ctx.enabled and evaluate_now:
                    ctx.barrier()  # the other ranks wait while rank 0 evaluates
                if out_of_time:
                    break
            if out_of_time:
                break
    finally:
        bar.close()  # also when a NaN stops the run
    checksums = ctx.gather(float(sum(p.detach().double().sum() for p in model.parameters())))
    if not ctx.is_main:
        return {}

    # --- final scores, from the kept checkpoint ----------------------------------------------
    metrics = {
        "dev": json.loads((out_dir / "kept_dev_scores.json").read_text()),
        "best_step": progress["best_step"],
        "kept": tcfg.keep,
        "kept_step": progress.get("kept_step", progress["best_step"]),
        "train_seconds": round(progress["train_seconds"], 3),
        "eval_seconds": round(progress["eval_seconds"], 3),
        "total_steps": total_steps,
        "seed": cfg.seed,
        "monitor": f"dev {tcfg.monitor}",
        "regularizer": {"name": regularizer.name, **_plain(regularizer.settings())},
        "model": {"family": model.family, "parameters": n_params, "vocab_size": model.vocab_size,
                  "pretrained": cfg.model.get("pretrained"),
                  "dropout": {"hidden": dropout[0], "attention": dropout[1]}},
        "decode": OmegaConf.to_container(cfg.decode, resolve=True),
        "data": {"dir": os.path.relpath(data_dir), "train": len(train_examples), "dev": len(dev_examples),
                 "test": len(test_examples) if test_examples else 0},
        "device": str(device),
        "world_size": ctx.world_size,
        "precision": tcfg.get("precision", "fp32"),
        "ema_decay": tcfg.get("ema_decay"),
        "fast_dropout": bool(tcfg.get("fast_dropout")),
    }
    if ctx.enabled:
        metrics["rank_weight_checksums"] = checksums  # equal when DDP kept the replicas in sync
    score_kept_weights(cfg, out_dir, tokenizer, device, dev_examples, test_examples, metrics)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    splits = {k: metrics[k] for k in ("dev", "test") if k in metrics}
    print(format_table(splits, title=f"{tcfg.keep} checkpoint (step {metrics['kept_step']}), beam {cfg.decode.beam_size}:"))
    for name, decoded in metrics.get("decodes", {}).items():
        print(format_table({k: decoded[k] for k in ("dev", "test") if k in decoded}, title=f"{name}:"))
    print(f"train {metrics['train_seconds']:.0f}s + dev evaluation {metrics['eval_seconds']:.0f}s; outputs in {out_dir}")
    return metrics


def score_kept_weights(cfg, out_dir: Path, tokenizer, device, dev_examples, test_examples, metrics: dict) -> None:
    """The kept checkpoint's scores beyond dev with cfg.decode (already in metrics): test with cfg.decode,
    and dev/test with each of trainer.final_decodes (name -> decode overrides, e.g. a wide beam).
    Per-example scores of every split and decoding go to example_scores.json (for paired bootstraps)."""
    splits = {"dev": dev_examples, **({"test": test_examples} if test_examples else {})}
    predictions_dev = [line.split("\t", 1)[1] for line in
                       (out_dir / "predictions_dev.tsv").read_text(encoding="utf-8").splitlines()]
    per_example = {"dev": {"main": score_examples([e.title for e in dev_examples], predictions_dev)}}
    decodes = OmegaConf.to_container(cfg.trainer.final_decodes, resolve=True) or {}
    if not test_examples and not decodes:
        _write_example_scores(out_dir, per_example)
        return
    kept = load_model(out_dir / "checkpoint", tokenizer).to(device)
    for split, examples in splits.items():
        for name, overrides in [("main", None), *decodes.items()]:
            if split == "dev" and name == "main":
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


def _write_example_scores(out_dir: Path, per_example: dict) -> None:
    rounded = {split: {name: {m: [round(v, 2) for v in values] for m, values in scores.items()}
                       for name, scores in by_name.items()} for split, by_name in per_example.items()}
    (out_dir / "example_scores.json").write_text(json.dumps(rounded, separators=(",", ":")))


def _stop_on_nan(what: str, value: float, step: int, state_dir: Path, out_dir: Path):
    raise FloatingPointError(
        f"{what} is {value} at step {step}; stopping. The last good state is in "
        f"{state_dir if state_dir.exists() else '(no saved state yet)'} and the best model in {out_dir / 'checkpoint'}")


def _plain(obj):
    """Settings -> JSON-friendly values."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj if isinstance(obj, (int, float, str, bool, type(None))) else str(obj)


def _resume_dir(resume, state_dir: Path) -> Path | None:
    """trainer.resume: false (start fresh), true (this run's state/), or a path to a state directory."""
    if resume in (False, None, "false", "False"):
        return None
    path = state_dir if resume in (True, "true", "True") else Path(str(resume))
    if path.is_dir() and (path / "state").is_dir() and not (path / "trainer_state.pt").exists():
        path = path / "state"  # a run directory was given
    if not (path / "trainer_state.pt").is_file():
        if resume in (True, "true", "True"):
            log.warning("trainer.resume=true but %s holds no saved state: starting from scratch", path)
            return None
        raise FileNotFoundError(f"trainer.resume={resume}: {path} holds no trainer_state.pt")
    return path
