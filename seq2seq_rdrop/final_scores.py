"""The scores a run writes at its end: decoding a split (evaluate), the kept weights' scores on dev, test and
the validation split for each trainer.final_decodes entry, the final weights' (with a validation split), the
no-training floors and the titles' shapes, metrics.json's content and the printed summary."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from omegaconf import DictConfig, OmegaConf

from .decoding import generate
from .metrics import (LEAD_CHARS, WORD_METRIC_NAMES, format_table, lead_scores, rule_scores, rule_title, score_corpus,
                      score_examples, title_shape, word_rouge)
from .models import load_model
from .title_form import FORM_LABELS
from .tokenizer import decode_ids, restore_case

from .model_setup import count_parameters
from .splits import Splits

if TYPE_CHECKING:  # the loop's types, for annotations only: training.py imports this module
    from .training import Run, StepPlan

log = logging.getLogger(__name__)


REFERENCE_POINTS = ("on CSL dev (493 pairs) `python train.py` reaches ROUGE-L 56.1 (its content selector, 600 steps, beam "
                    "16 with the selector's spans, re-ranked), the preset (scripts/run_quality_preset.py: 600 pretraining "
                    "+ 590 fine-tuning steps) 56.3 (3 seeds), and the published pretrained UniLM baseline 63.8 on CLGE "
                    "csl val")
# trainer.monitor may name any of METRIC_NAMES; higher is better for all of them


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


def add_floors_and_title_shapes(metrics: dict, dev_examples: list, out_dir: Path,
                                test_examples: list | None = None) -> None:
    """metrics.json's no-training floors (<split>_lead: the first 20 characters; <split>_rule: the one-line
    rule) and, per prediction file, whether the titles read as titles (<split>_title_shape, by decoding; the
    well-formedness checks of title_form against each title's abstract, the references' beside them): for dev,
    and for the test split when there is one (data.holdout_test or data.test_file)."""
    for split, examples in (("dev", dev_examples), ("test", test_examples)):
        if not examples:
            continue
        titles, abstracts = [e.title for e in examples], [e.abstract for e in examples]
        metrics[f"{split}_lead"] = lead_scores(titles, abstracts)
        metrics[f"{split}_rule"] = rule_scores(titles, abstracts)
        metrics[f"{split}_title_shape"] = {
            decoding: {k: round(v, 4) for k, v in title_shape(predictions, titles, abstracts).items()}
            for decoding, (_, predictions) in _prediction_files(out_dir, split).items()}


WORD_ROUGE_NOTE = ("secondary: ROUGE F1 x100 over jieba words (lower-cased); every comparison and choice uses the "
                   "character scores")


def add_word_rouge(metrics: dict, dev_examples: list, out_dir: Path) -> None:
    """metrics["word_rouge"]: word-level ROUGE (metrics.word_rouge) of every prediction file, by split and
    decoding as the files name them, and of dev's no-training floors (lead, rule), under a note that says it
    is secondary. The character scores stay where they are, under the names every table reads."""
    out: dict = {"note": WORD_ROUGE_NOTE}
    for split in ("val", "dev", "test"):
        for decoding, (references, predictions) in _prediction_files(out_dir, split).items():
            out.setdefault(split, {})[decoding] = _rounded(word_rouge(references, predictions))
    titles, abstracts = [e.title for e in dev_examples], [e.abstract for e in dev_examples]
    out.setdefault("dev", {}).update(
        lead=_rounded(word_rouge(titles, [a[:LEAD_CHARS] for a in abstracts])),
        rule=_rounded(word_rouge(titles, [rule_title(a) for a in abstracts])))
    metrics["word_rouge"] = out


def _rounded(scores: dict) -> dict:
    return {k: (round(v, 4) if k in WORD_METRIC_NAMES else v) for k, v in scores.items()}


def _prediction_files(out_dir: Path, split: str) -> dict[str, tuple[list[str], list[str]]]:
    """{decoding: (references, predictions)} of out_dir/predictions_<split>[_<decoding>].tsv (main: no suffix),
    as write_predictions wrote them; the split name must be followed by "_" or nothing (dev_final is dev's)."""
    out = {}
    for path in sorted(out_dir.glob(f"predictions_{split}*.tsv")):
        rest = path.stem[len(f"predictions_{split}"):]
        if rest and not rest.startswith("_"):
            continue
        pairs = [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()]
        out[rest.lstrip("_") or "main"] = ([p[0] for p in pairs], [p[1] if len(p) > 1 else "" for p in pairs])
    return out


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
        if "latin_cut_short" in shape:  # runs since the title_form checks
            print("  well-formedness (references' rate in brackets): " + ", ".join(
                f"{label} {shape[k]:.1%} ({shape['reference_' + k]:.1%})" for k, label in FORM_LABELS.items()))
    words = metrics.get("word_rouge", {}).get("dev", {})
    if "main" in words:
        print("dev word-level ROUGE-1/2/L (jieba words; secondary, the comparisons use characters): "
              + " / ".join(f"{words['main'][m]:.2f}" for m in WORD_METRIC_NAMES)
              + f"; the one-line rule's ROUGE-L {words['rule']['word-rouge-l']:.2f}")
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
