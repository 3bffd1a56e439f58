"""Train the from-scratch quality preset within a time budget and print what it reached.

    python scripts/run_quality_preset.py [--minutes 30] [--pretrain-minutes 14] [--reserve-minutes 2.5]
                                         [--pretrain-override K=V ...] [train.py overrides ...]

With --pretrain-minutes P > 0, first runs `python pretrain.py trainer.max_minutes=<P - 0.5>`
(self-supervised pretraining on titles_only.txt and the training split, into RUN_DIR/pretrain/),
then fine-tunes from its checkpoint. Then runs `python train.py +experiment=quality
trainer.max_minutes=<budget - P - R>` (R = --reserve-minutes, default 2.5, is kept for start-up and the
final evaluation, which starts when max_minutes is spent: a beam-16 pass over dev takes ~1.5 min on 2
cores), and prints dev ROUGE-1/2/L and BLEU of the best checkpoint and the wall-clock
minutes the whole command used, pretraining included.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="the whole budget, training + evaluation")
    parser.add_argument("--run-dir", default=None, help="hydra.run.dir (default outputs/runs/quality_<time>)")
    parser.add_argument("--pretrain-minutes", type=float, default=14.0,
                        help="minutes of the budget spent in pretrain.py first (default 14; 0 = no pretraining)")
    parser.add_argument("--reserve-minutes", type=float, default=2.5,
                        help="minutes kept for start-up and the final dev evaluation (default 2.5)")
    parser.add_argument("--pretrain-override", action="append", default=[], metavar="KEY=VALUE",
                        help="an override for pretrain.py (repeatable)")
    args, overrides = parser.parse_known_args()
    run_dir = Path(args.run_dir or f"outputs/runs/quality_{time.strftime('%Y%m%d_%H%M%S')}")
    start = time.perf_counter()
    train_minutes = args.minutes - args.reserve_minutes
    if args.pretrain_minutes > 0:
        pretrain_dir = run_dir / "pretrain"
        command = [sys.executable, "pretrain.py", f"trainer.max_minutes={args.pretrain_minutes - 0.5:g}",
                   f"hydra.run.dir={pretrain_dir}", *args.pretrain_override]
        print("command:", " ".join(command[1:]), flush=True)
        proc = subprocess.run(command, cwd=REPO)
        if proc.returncode != 0:
            print(f"pretrain.py failed (exit {proc.returncode})", file=sys.stderr)
            return proc.returncode
        overrides = [f"model.pretrained={pretrain_dir / 'checkpoint'}", *overrides]
        train_minutes = max(train_minutes - (time.perf_counter() - start) / 60, 0.05)
    command = [sys.executable, "train.py", "+experiment=quality", f"trainer.max_minutes={train_minutes:.2f}",
               f"hydra.run.dir={run_dir}", *overrides]
    print("command:", " ".join(command[1:]), flush=True)
    proc = subprocess.run(command, cwd=REPO)
    minutes = (time.perf_counter() - start) / 60
    if proc.returncode != 0:
        print(f"train.py failed (exit {proc.returncode}) after {minutes:.1f} min", file=sys.stderr)
        return proc.returncode
    metrics = json.loads((REPO / run_dir / "metrics.json").read_text())
    dev = metrics["dev"]
    print(f"\nmachine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores")
    print(f"dev ({dev['n']} examples), best step {metrics['best_step']} of {metrics['total_steps']} planned:")
    print("  ROUGE-1 {:.2f}  ROUGE-2 {:.2f}  ROUGE-L {:.2f}  BLEU {:.2f}".format(
        dev["rouge-1"], dev["rouge-2"], dev["rouge-l"], dev["bleu"]))
    print(f"minutes used: {minutes:.1f} of {args.minutes:g} (train {metrics['train_seconds'] / 60:.1f}, "
          f"dev evaluation {metrics['eval_seconds'] / 60:.1f})")
    print(f"within budget: {'yes' if minutes <= args.minutes else 'no'}; target dev ROUGE-L >= 45: "
          f"{'met' if dev['rouge-l'] >= 45 else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
