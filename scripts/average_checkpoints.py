"""Average the weights of a run's last N saved states into one checkpoint (as fairseq's
scripts/average_checkpoints.py does with --num-update-checkpoints).

    python train.py trainer.keep_last_states=5 trainer.save_every=50 hydra.run.dir=RUN_DIR ...
    python scripts/average_checkpoints.py RUN_DIR --last 5 [--out DIR]
    python generate.py checkpoint=RUN_DIR/checkpoint_avg5 input=abstracts.txt

The states are RUN_DIR/states/step_NNNNNNN/ (trainer.keep_last_states keeps them). Every floating-point
tensor is the plain mean of the N states' values; integer buffers are the newest state's. The output
(default RUN_DIR/checkpoint_avgN) is a checkpoint like RUN_DIR/checkpoint: HF files, tokenizer, and the
run's resolved config and generation settings (RUN_DIR/config_resolved.yaml), so `generate.py` decodes
it the way the run was scored. Exit status: 0 done, 1 bad input (one line `error: ...` on stderr).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from seq2seq_rdrop.checkpoints import save_model_checkpoint, state_copies
from seq2seq_rdrop.models import load_model
from seq2seq_rdrop.tokenizer import load_tokenizer


class AverageError(Exception):
    """Bad input: reported as one line on stderr, exit status 1."""


def pick_states(run_dir: Path, last: int) -> list[Path]:
    """The newest `last` state copies of run_dir, oldest first."""
    if last < 1:
        raise AverageError(f"--last {last}: allowed values are whole numbers >= 1")
    copies = state_copies(run_dir)
    if len(copies) < last:
        raise AverageError(f"{run_dir / 'states'} holds {len(copies)} saved state(s), --last asks for {last} "
                           f"(train with trainer.keep_last_states={last} and trainer.save_every > 0)")
    return copies[-last:]


def average_state_dicts(state_dicts: list[dict]) -> dict:
    """Mean of every floating-point tensor over the dicts (accumulated in float64); other tensors from the last."""
    averaged = {}
    for name, newest in state_dicts[-1].items():
        if newest.is_floating_point():
            total = sum(sd[name].double() for sd in state_dicts)
            averaged[name] = (total / len(state_dicts)).to(newest.dtype)
        else:
            averaged[name] = newest
    return averaged


def average_checkpoints(run_dir: Path, last: int, out: Path | None = None) -> Path:
    states = pick_states(run_dir, last)
    tokenizer = load_tokenizer(states[-1] / "model")
    models = [load_model(state / "model", tokenizer) for state in states]
    model = models[-1]
    model.load_state_dict(average_state_dicts([m.state_dict() for m in models]))
    config = run_dir / "config_resolved.yaml"
    cfg = OmegaConf.load(config) if config.is_file() else None
    out = out or run_dir / f"checkpoint_avg{last}"
    steps = [int(state.name.split("_")[1]) for state in states]
    save_model_checkpoint(out, model, tokenizer, cfg, extra={"averaged_steps": steps})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("--last", type=int, required=True, help="how many of the newest saved states to average")
    parser.add_argument("--out", type=Path, default=None, help="output checkpoint (default RUN_DIR/checkpoint_avgN)")
    args = parser.parse_args(argv)
    try:
        if not args.run_dir.is_dir():
            raise AverageError(f"run directory {args.run_dir} does not exist")
        out = average_checkpoints(args.run_dir, args.last, args.out)
    except AverageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"averaged the last {args.last} states of {args.run_dir} into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
