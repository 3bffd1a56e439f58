"""Train the from-scratch quality preset, budgeted in optimizer steps, and print what it reached.

    python scripts/run_quality_preset.py [--pretrain-steps 600] [--selector-epochs 10] [--max-minutes M]
                                         [--pretrain-override K=V ...] [train.py overrides ...]

First runs `python pretrain.py trainer.max_steps=<--pretrain-steps>` (self-supervised pretraining on
titles_only.txt and the training split, into RUN_DIR/pretrain/; 0 = no pretraining; seed=S given for the
fine-tuning applies to it too unless --pretrain-override names one), then fine-tunes from its checkpoint
with `python train.py +experiment=quality` (trainer.max_steps there). --selector-epochs N > 0 first trains the
content selector (scripts/train_selector.py, N passes over the training pairs, into RUN_DIR/selector.pt) and
hands it to the fine-tuning (selector=...): it travels in the checkpoint, its spans join the n-best
(decode.span_candidates) and feed decode.rerank's sel feature (+experiment=quality's weights); 0 = none. The same command with the same
--run-dir continues a stopped run where it stopped (trainer.resume=true) and skips what is finished.
Steps, not minutes: the same seed gives the same model on a fast or a slow machine. It prints dev ROUGE-1/2/L and BLEU, the
no-training floors beside them, and the wall-clock minutes the whole command took. --max-minutes M is an
optional cap on the fine-tuning (trainer.max_minutes; then a slower machine gets fewer steps).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(command: list[str]) -> int:
    print("command:", " ".join(command), flush=True)
    return subprocess.run([sys.executable, *command], cwd=REPO).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=None, help="hydra.run.dir (default outputs/runs/quality_<time>)")
    parser.add_argument("--pretrain-steps", type=int, default=600,
                        help="optimizer steps of pretrain.py first (default 600; 0 = no pretraining)")
    parser.add_argument("--selector-epochs", type=int, default=10,
                        help="passes of the content selector's training first (default 10; 0: no selector)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="optional cap on the fine-tuning's minutes (trainer.max_minutes); default: none")
    parser.add_argument("--pretrain-override", action="append", default=[], metavar="KEY=VALUE",
                        help="an override for pretrain.py (repeatable)")
    args, overrides = parser.parse_known_args()
    run_dir = Path(args.run_dir or f"outputs/runs/quality_{time.strftime('%Y%m%d_%H%M%S')}")
    start = time.perf_counter()
    if args.pretrain_steps > 0:
        pretrain_dir = run_dir / "pretrain"
        code = pretrain(pretrain_dir, args.pretrain_steps, with_seed(args.pretrain_override, overrides))
        if code != 0:
            print(f"pretrain.py failed (exit {code})", file=sys.stderr)
            return code
        overrides = [f"model.pretrained={pretrain_dir / 'checkpoint'}", *overrides]
    if args.selector_epochs > 0:
        selector = run_dir / "selector.pt"
        if not (REPO / selector).is_file():  # else: trained by an earlier call
            code = run(["scripts/train_selector.py", "--out", str(selector), "--epochs", str(args.selector_epochs),
                        *selector_options(overrides)])
            if code != 0:
                print(f"train_selector.py failed (exit {code})", file=sys.stderr)
                return code
        overrides = [f"selector={selector}", *overrides]
    else:  # no selector at all, not train.py's own (conf/train.yaml's selector_epochs)
        overrides = ["selector_epochs=0", *overrides]
    if args.max_minutes is not None:
        overrides = [f"trainer.max_minutes={args.max_minutes:g}", *overrides]
    if not (REPO / run_dir / "metrics.json").is_file():  # else: finished by an earlier call
        code = run(["train.py", "+experiment=quality", f"hydra.run.dir={run_dir}", "trainer.resume=true", *overrides])
        if code != 0:
            print(f"train.py failed (exit {code}) after {(time.perf_counter() - start) / 60:.1f} min", file=sys.stderr)
            return code
    print_result(json.loads((REPO / run_dir / "metrics.json").read_text()), (time.perf_counter() - start) / 60)
    return 0


def pretrain(pretrain_dir: Path, steps: int, overrides: list[str]) -> int:
    """pretrain.py into pretrain_dir; continues a stopped one, skips a finished one (the same command again
    picks up where a killed run stopped)."""
    if (REPO / pretrain_dir / "metrics.json").is_file():
        print(f"pretraining: {pretrain_dir} is finished; fine-tuning from it", flush=True)
        return 0
    return run(["pretrain.py", f"trainer.max_steps={steps}", f"hydra.run.dir={pretrain_dir}", "trainer.resume=true",
                *overrides])


def with_seed(pretrain_overrides: list[str], overrides: list[str]) -> list[str]:
    """pretrain.py's overrides, with the fine-tuning's seed=S when they name none: one seed makes one model."""
    if any(o.startswith("seed=") for o in pretrain_overrides):
        return pretrain_overrides
    return [*(o for o in overrides if o.startswith("seed=")), *pretrain_overrides]


def selector_options(overrides: list[str]) -> list[str]:
    """train_selector.py's options from the fine-tuning's: --seed (seed=S: one seed makes one model), --val-size
    (data.val_size=N: the validation pairs stay unseen; default 0), --holdout-test/--holdout-offset
    (data.holdout_test/holdout_offset: the held-out test pairs stay unseen too) and --data (data.dir=DIR)."""
    given = dict(o.split("=", 1) for o in overrides if "=" in o)
    held_out = [given.get(f"data.holdout_{key}") for key in ("test", "offset")]
    return ["--seed", given.get("seed", "0"), "--val-size", given.get("data.val_size", "0"),
            *(["--holdout-test", held_out[0], "--holdout-offset", held_out[1] or "0"]
              if held_out[0] not in (None, "null", "0") else []),
            *(["--data", given["data.dir"]] if given.get("data.dir") not in (None, "null") else [])]


def print_result(metrics: dict, minutes: float) -> None:
    dev, lead, rule = metrics["dev"], metrics["dev_lead"], metrics["dev_rule"]
    print(f"\nmachine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores")
    print(f"dev ({dev['n']} examples), kept step {metrics['kept_step']}, {metrics['steps']} of "
          f"{metrics['total_steps']} steps trained:")
    print("  ROUGE-1 {:.2f}  ROUGE-2 {:.2f}  ROUGE-L {:.2f}  BLEU {:.2f}".format(
        dev["rouge-1"], dev["rouge-2"], dev["rouge-l"], dev["bleu"]))
    print(f"no training: the first 20 characters ROUGE-L {lead['rouge-l']:.2f}, the one-line rule "
          f"{rule['rouge-l']:.2f} (the model minus the rule: {dev['rouge-l'] - rule['rouge-l']:+.2f})")
    print(f"minutes used: {minutes:.1f} (train {metrics['train_seconds'] / 60:.1f}, "
          f"dev evaluation {metrics['eval_seconds'] / 60:.1f})")


if __name__ == "__main__":
    sys.exit(main())
