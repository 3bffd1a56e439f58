"""Score a finished run's kept checkpoint once more, with another decoding, into the run's own files.

    python scripts/rescore_run.py RUN_DIR NAME [decode.KEY=VALUE ...]

Decodes RUN_DIR's dev split (and its test split, when the run had one) with the run's own decoding
(RUN_DIR/checkpoint/train_config.yaml) changed by the given decode.KEY=VALUE options, a given decode.rerank
replacing the run's weights whole (not merged key by key), and records it as trainer.final_decodes would
have: metrics.json `decodes.NAME` (its overrides and scores), `<split>_title_shape.NAME`, `word_rouge.<split>.NAME`,
example_scores.json `<split>.NAME`, predictions_<split>_NAME.tsv. The weights and every other score stay as
they are, so a report can set two decodings of the same checkpoints side by side (e.g. the quality preset's
re-ranker without the rule feature: docs/experiments/2026-12-08_quality_preset_selector.md). Files are replaced
whole (a temporary file renamed); NAME must be new unless --replace.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from seq2seq_rdrop.atomic_files import write_text_atomically
from seq2seq_rdrop.data import DataError
from seq2seq_rdrop.final_scores import evaluate, write_predictions
from seq2seq_rdrop.metrics import score_examples, title_shape, word_rouge
from seq2seq_rdrop.models import load_model
from seq2seq_rdrop.splits import load_splits
from seq2seq_rdrop.tokenizer import load_tokenizer

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def parse_overrides(options: list[str]) -> dict:
    """decode.KEY=VALUE options -> {KEY: value}, values read as Hydra reads them on a command line ({lp:1})."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    bad = [o for o in options if not o.startswith("decode.") or "=" not in o]
    if bad:
        raise ValueError(f"{bad[0]}: options are decode.KEY=VALUE")
    try:
        parsed = OverridesParser.create().parse_overrides(options)
    except HydraException as e:
        raise ValueError(" ".join(str(e).split())) from None
    return {o.key_or_group.split(".", 1)[1]: OmegaConf.to_container(OmegaConf.create({"v": o.value()}))["v"]
            for o in parsed}


def rescore(run_dir: Path, name: str, overrides: dict, replace: bool = False) -> dict:
    """Decode and record; return {split: scores}."""
    metrics_path, scores_path = run_dir / "metrics.json", run_dir / "example_scores.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    per_example = json.loads(scores_path.read_text(encoding="utf-8"))
    if name in metrics.get("decodes", {}) and not replace:
        raise ValueError(f"{metrics_path}: decodes.{name} exists (--replace to score it again)")
    cfg = OmegaConf.load(run_dir / "checkpoint" / "train_config.yaml")
    splits = load_splits(cfg)
    tokenizer = load_tokenizer(run_dir / "checkpoint")
    model = load_model(run_dir / "checkpoint", tokenizer)
    decode = {**OmegaConf.to_container(cfg.decode, resolve=True), **overrides}  # rerank replaced whole, not merged
    out = {}
    metrics.setdefault("decodes", {})[name] = {"overrides": overrides}  # a --replace starts afresh
    for split, examples in (("dev", splits.dev), ("test", splits.test)):
        if not examples:
            continue
        scores, predictions = evaluate(model, tokenizer, examples, cfg, torch.device("cpu"), progress=False,
                                       decode_overrides=decode)
        titles, abstracts = [e.title for e in examples], [e.abstract for e in examples]
        write_predictions(run_dir / f"predictions_{split}_{name}.tsv", examples, predictions)
        metrics["decodes"][name][split] = scores
        metrics.setdefault(f"{split}_title_shape", {})[name] = {
            k: round(v, 4) for k, v in title_shape(predictions, titles, abstracts).items()}
        metrics.setdefault("word_rouge", {}).setdefault(split, {})[name] = {
            k: (round(v, 4) if isinstance(v, float) else v) for k, v in word_rouge(titles, predictions).items()}
        per_example.setdefault(split, {})[name] = {
            m: [round(v, 2) for v in values] for m, values in score_examples(titles, predictions).items()}
        out[split] = scores
    write_text_atomically(scores_path, json.dumps(per_example, separators=(",", ":")))
    write_text_atomically(metrics_path, json.dumps(metrics, indent=2, ensure_ascii=False))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("name", help="the decoding's name in the run's files (a-z, 0-9, _)")
    parser.add_argument("options", nargs="*", help="decode.KEY=VALUE")
    parser.add_argument("--replace", action="store_true", help="score a NAME the run already has again")
    args = parser.parse_args(argv)
    if not args.name or set(args.name) - NAME_CHARS or args.name in ("main", "final"):
        parser.error(f"NAME={args.name}: allowed values are names of a-z, 0-9 and _ other than main and final")
    for needed in ("metrics.json", "example_scores.json", "checkpoint/train_config.yaml"):
        if not (args.run_dir / needed).is_file():
            parser.error(f"{args.run_dir / needed}: missing (a finished run directory is required)")
    try:
        overrides = parse_overrides(args.options)
        scores = rescore(args.run_dir, args.name, overrides, args.replace)
    except (ValueError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split, s in scores.items():
        print(f"{args.run_dir} {split} {args.name}: R-1 {s['rouge-1']:.2f} R-2 {s['rouge-2']:.2f} "
              f"R-L {s['rouge-l']:.2f} BLEU {s['bleu']:.2f} ({s['n']} examples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
