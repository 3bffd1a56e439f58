"""Test the R-Drop article's explanation on trained checkpoints: dropout consistency (deterministic model
vs MC-dropout ensemble, sub-model disagreement) and exposure bias (teacher-forced vs free-running
accuracy, robustness to a corrupted prefix). The measures are documented in seq2seq_rdrop/diagnostics.py.

    python scripts/diagnose.py CHECKPOINT [CHECKPOINT ...] [--out-dir DIR] [--k 8] [--seed 0]
                               [--max-examples N] [--dropout P] [--batch-size 16]
                               [--val-size N] [data.dir=PATH] [data.dev_file=FILE] [data.train_file=FILE]

A CHECKPOINT is a directory that training saves (HF files + tokenizer + train_config.yaml, whose
data.max_source_len, data.max_target_len and decode.max_len are used; else 256, 64, 32). The split is
teacher-forced: data.dir (default: as training, $CSL_DATA_DIR, data/csl, ../shared/data/csl) /
data.dev_file (default dev.tsv), the first --max-examples pairs; with --val-size N instead the validation split
of training's data.val_size=N (the last N pairs of data.train_file, default train.tsv), so that a choice made on
these measures never reads dev. --dropout P sets hidden and attention dropout of every checkpoint to P (default:
each checkpoint's own rates).

Prints a table and writes diagnostics.json, diagnostics.csv, diagnostics.md and diagnostics.png into
--out-dir (default: <first checkpoint>/../diagnostics). The numbers depend only on the checkpoints,
the data and --seed/--k (`seconds` aside). Several checkpoints must share the vocabulary and the
length settings, so that every measure averages over the same tokens. Exit status: 0 done,
1 bad input (one line `error: ...` on stderr).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from seq2seq_rdrop.atomic_files import replacing
from seq2seq_rdrop.checkpoints import check_checkpoint_dir
from seq2seq_rdrop.data import DataError, read_examples, resolve_data_dir
from seq2seq_rdrop.splits import carve_validation
from seq2seq_rdrop.diagnostics import MEASURE_KEYS, Settings, diagnose
from seq2seq_rdrop.models import load_model
from seq2seq_rdrop.tokenizer import load_tokenizer

DATA_KEYS = {"dir": None, "dev_file": "dev.tsv", "train_file": "train.tsv"}  # data.KEY=VALUE overrides and their defaults
LENGTH_KEYS = {"data.max_source_len": 256, "data.max_target_len": 64, "decode.max_len": 32}  # training's defaults
OUTPUTS = ("diagnostics.json", "diagnostics.csv", "diagnostics.md", "diagnostics.png")


class DiagnoseError(Exception):
    """Bad input: reported as one line on stderr, exit status 1."""


# --------------------------------------------------------------------------- arguments and inputs


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--k", type=int, default=8, help="dropout passes (sub-models) per example")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-examples", type=int, default=None)
    parser.add_argument("--dropout", type=float, default=None, help="hidden and attention dropout for all checkpoints")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per teacher-forced batch")
    parser.add_argument("--val-size", type=int, default=None,
                        help="diagnose on the last N pairs of data.train_file (training's data.val_size=N), not dev")
    overrides = [a for a in argv if a.startswith("data.") and "=" in a]
    args = parser.parse_args([a for a in argv if a not in overrides])
    data = dict(DATA_KEYS)
    for item in overrides:
        key, value = item[len("data."):].split("=", 1)
        if key not in DATA_KEYS:
            raise DiagnoseError(f"unknown override data.{key} (allowed: {', '.join('data.' + k for k in DATA_KEYS)})")
        data[key] = value or None
    for name in ("k", "max_examples", "batch_size", "val_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise DiagnoseError(f"--{name.replace('_', '-')}={value}: a positive integer is required")
    if args.dropout is not None and not 0.0 <= args.dropout < 1.0:
        raise DiagnoseError(f"--dropout={args.dropout}: a number in [0, 1) is required")
    return args, data


def lengths_of(path: Path) -> dict:
    """The run's data.max_source_len, data.max_target_len and decode.max_len (train_config.yaml)."""
    config_file = path / "train_config.yaml"
    try:
        cfg = OmegaConf.load(config_file) if config_file.is_file() else OmegaConf.create()
    except Exception as e:  # yaml errors have no common base class worth naming
        raise DiagnoseError(f"{config_file}: unreadable ({' '.join(str(e).split())})") from None
    return {key: int(OmegaConf.select(cfg, key) or default) for key, default in LENGTH_KEYS.items()}


@dataclass
class Checkpoint:
    given: str  # the path as given on the command line (diagnostics.json's "checkpoint")
    path: Path
    tokenizer: object
    model: object
    lengths: dict
    load_seconds: float


def load_checkpoint(given: str) -> Checkpoint:
    """Tokenizer, model and length settings of one checkpoint directory, or a DiagnoseError."""
    start = time.perf_counter()
    path = check_checkpoint_dir(given)
    lengths = lengths_of(path)
    try:
        tokenizer = load_tokenizer(path)
        model = load_model(path, tokenizer=tokenizer).eval()
    except Exception as e:  # corrupt weights, a foreign config: whatever the loaders raise
        reason = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        raise DiagnoseError(f"{given}: cannot load the model ({reason})") from None
    return Checkpoint(given, path, tokenizer, model, lengths, time.perf_counter() - start)


def check_checkpoints(paths: list[str]) -> list[Checkpoint]:
    """Every checkpoint loaded before any work starts; all must share the vocabulary and the lengths."""
    found = [load_checkpoint(given) for given in paths]
    first = found[0]
    for other in found[1:]:
        if other.tokenizer.get_vocab() != first.tokenizer.get_vocab():
            raise DiagnoseError(f"mismatched checkpoints: {other.given} and {first.given} have different vocabularies "
                                "(per-token measures would count different tokens); diagnose them separately")
        if other.lengths != first.lengths:
            diff = ", ".join(f"{k}={v} vs {first.lengths[k]}"
                             for k, v in other.lengths.items() if v != first.lengths[k])
            raise DiagnoseError(f"mismatched checkpoints: {other.given} and {first.given} differ in {diff}; "
                                "diagnose them separately")
    return found


def load_split(data: dict, max_examples: int | None, val_size: int | None = None) -> tuple[str, list]:
    """(name, examples): dev, or with val_size the validation split training carves from the training file."""
    data_dir = resolve_data_dir(data["dir"])
    if val_size:
        train_examples = read_examples(data_dir / (data["train_file"] or "train.tsv"))
        _, examples = carve_validation(train_examples, val_size)
        name = "val"
    else:
        file = data_dir / (data["dev_file"] or "dev.tsv")
        examples, name = read_examples(file), Path(file).stem
    return name, examples[:max_examples] if max_examples else examples


# --------------------------------------------------------------------------- running


def run_checkpoint(ckpt: Checkpoint, split: str, examples, args) -> dict:
    """One diagnostics.json run; its seconds count loading and measuring."""
    start = time.perf_counter()
    lengths = ckpt.lengths
    settings = Settings(k=args.k, seed=args.seed, max_source_len=lengths["data.max_source_len"],
                        max_target_len=lengths["data.max_target_len"], max_len=lengths["decode.max_len"],
                        batch_size=args.batch_size)
    result = diagnose(ckpt.model, ckpt.tokenizer, examples, settings, dropout=args.dropout)
    seconds = ckpt.load_seconds + time.perf_counter() - start
    return {"checkpoint": ckpt.given, "split": split, **result, "seconds": round(seconds, 1)}


def finite(value):
    """NaN/inf (e.g. sub-model disagreement with --k 1) become null: diagnostics.json stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


# --------------------------------------------------------------------------- outputs


def labels(runs: list[dict]) -> list[str]:
    """Short names: a run directory's name for .../RUN/checkpoint, else the directory's own name."""
    names = []
    for run in runs:
        parts = Path(run["checkpoint"]).resolve().parts
        names.append(parts[-2] if parts[-1] in ("checkpoint", "model") and len(parts) > 1 else parts[-1])
    return names if len(set(names)) == len(names) else [f"{i + 1}:{n}" for i, n in enumerate(names)]


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def format_table(runs: list[dict]) -> str:
    names = labels(runs)
    width = max(len(k) for k in MEASURE_KEYS) + 2
    col = max(12, *(len(n) + 2 for n in names))
    lines = [f"{'measure':<{width}}" + "".join(f"{n:>{col}}" for n in names)]
    for key in MEASURE_KEYS:
        lines.append(f"{key:<{width}}" + "".join(f"{_fmt(r['measures'][key]):>{col}}" for r in runs))
    sizes = [f"{r['n']}/{r['k']}/{r['seconds']:.0f}" for r in runs]
    lines.append(f"{'n / k / seconds':<{width}}" + "".join(f"{s:>{col}}" for s in sizes))
    return "\n".join(lines)


def write_csv(runs: list[dict], path: Path) -> None:
    head = ["checkpoint", "split", "n", "k", "seed", "dropout_hidden", "dropout_attention", *MEASURE_KEYS, "seconds"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(head)
        for r in runs:
            writer.writerow([r["checkpoint"], r["split"], r["n"], r["k"], r["seed"], r["dropout"]["hidden"],
                             r["dropout"]["attention"], *(r["measures"][k] for k in MEASURE_KEYS), r["seconds"]])


EXPLANATION = """\
How to read it (per title token over the reference titles + end token, teacher-forced, unless ROUGE-L x100):

- `nll_deterministic`, `nll_ensemble`, `nll_single_pass`: NLL of the model without dropout, of the MC-dropout
  ensemble (the K passes' probabilities averaged) and of one dropout pass (averaged over the K passes).
- `gap_kl_ensemble_deterministic` = KL(ensemble || deterministic), `gap_nll` = nll_deterministic - nll_ensemble:
  the article's train/test inconsistency. Its claim: R-Drop shrinks this gap.
- `submodel_sym_kl`: KL(P||Q) + KL(Q||P) between two dropout passes (pairs 1-2, 3-4, ...);
  `submodel_sym_kl_nontarget`: the same after removing the reference token and renormalising, the
  "non-target classes" that cross-entropy leaves free. The claim: R-Drop makes sub-models agree there too.
- `rouge_l_greedy_deterministic` vs `rouge_l_greedy_ensemble`: greedy titles of the deterministic model vs
  greedy decoding from the ensemble's averaged probabilities (K replicas per abstract with the KV cache;
  each replica is a sub-model whose masks for already-cached positions stay fixed).
- `acc_teacher_forced` vs `acc_free_running`: argmax given the gold prefix == gold token, vs the greedy
  title's token t == gold token t. The difference is the exposure-bias signal (random replacement's story).
- `nll_corrupt_r`: NLL of the reference title when each gold prefix token is replaced with probability r by a
  token of the example's own sequence (r = 0 is nll_deterministic). `rouge_l_corrupt_r`: the first
  floor(len/2) title tokens (corrupted with probability r) are forced, the model continues greedily, and the
  continuation is scored against the reference's remaining characters only (so r = 0 is not the plain
  greedy ROUGE-L). The corrupted positions are nested across r (one generator per r, same seed).
"""


def write_markdown(runs: list[dict], path: Path) -> None:
    names = labels(runs)
    r0 = runs[0]
    lines = ["# Diagnostics: dropout consistency and exposure bias", "",
             f"Split `{r0['split']}`, n = {r0['n']}, K = {r0['k']} dropout passes, seed {r0['seed']}.", "",
             "| measure | " + " | ".join(names) + " |", "|---|" + "---:|" * len(runs)]
    for key in MEASURE_KEYS:
        lines.append(f"| {key} | " + " | ".join(_fmt(r["measures"][key]) for r in runs) + " |")
    rates = [f"{r['dropout']['hidden']:g}/{r['dropout']['attention']:g}" for r in runs]
    lines.append("| dropout hidden/attention | " + " | ".join(rates) + " |")
    lines.append("| seconds | " + " | ".join(f"{r['seconds']:.0f}" for r in runs) + " |")
    lines += ["", EXPLANATION, "Checkpoints:", ""]
    lines += [f"- {name}: `{r['checkpoint']}`" for name, r in zip(names, runs)]
    lines += ["", "![accuracy by position and robustness](diagnostics.png)", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, nll, rouge) = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, r, color in zip(labels(runs), runs, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10):
        curves = r["curves"]
        for kind, style in (("teacher_forced", "-"), ("free_running", "--")):
            values = [float("nan") if v is None else v for v in curves["accuracy_by_position"][kind]]
            acc.plot(range(len(values)), values, style, color=color, label=f"{name} ({kind.replace('_', ' ')})")
        rates = [p["r"] for p in curves["robustness"]]
        nll.plot(rates, [p["nll"] for p in curves["robustness"]], "o-", color=color, label=name)
        rouge.plot(rates, [p["rouge_l"] for p in curves["robustness"]], "o-", color=color, label=name)
    acc.set(title="token accuracy by position", xlabel="title position", ylabel="accuracy")
    nll.set(title="NLL given a corrupted prefix", xlabel="replacement rate r", ylabel="NLL per token")
    rouge.set(title="ROUGE-L of the continuation after a corrupted half", xlabel="replacement rate r",
              ylabel="ROUGE-L")
    for ax in (acc, nll, rouge):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no version/time stamps: same input, same file
    plt.close(fig)


def write_outputs(runs: list[dict], out_dir: Path) -> list[Path]:
    """The four outputs, each written to a temporary file first and all renamed into place together."""
    paths = [out_dir / name for name in OUTPUTS]
    with replacing(*paths) as (as_json, as_csv, as_markdown, as_plot):
        as_json.write_text(json.dumps({"runs": runs}, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                           encoding="utf-8")
        write_csv(runs, as_csv)
        write_markdown(runs, as_markdown)
        write_plot(runs, as_plot)
    return paths


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, data = parse_args(argv)
        found = check_checkpoints(args.checkpoints)
        split, examples = load_split(data, args.max_examples, args.val_size)
        runs = []
        for ckpt in found:
            print(f"diagnosing {ckpt.given} on {split} (n={len(examples)}, K={args.k})", file=sys.stderr)
            runs.append(finite(run_checkpoint(ckpt, split, examples, args)))
        out_dir = args.out_dir or Path(args.checkpoints[0]).resolve().parent / "diagnostics"
        paths = write_outputs(runs, out_dir)
    except (DiagnoseError, DataError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except (OSError, ValueError, RuntimeError) as e:  # a checkpoint that loads but does not fit, and the like
        print(f"error: {type(e).__name__}: {' '.join(str(e).split())[:500]}", file=sys.stderr)
        return 1
    print(format_table(runs))
    print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_grad_enabled(False)
    sys.exit(main())
