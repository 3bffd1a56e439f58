"""Write a checkpoint's beam-search n-best lists for the validation split or dev, for re-ranking studies.

    python docs/experiments/2026-12-03_nbest_dump.py CHECKPOINT --split val|dev --out FILE.json
                                                     [--beam-size 16] [--no-repeat-ngram 3] [--val-size 300]

val: the last --val-size pairs of train.tsv (the converged protocol's validation split, as
splits.carve_validation cuts it); dev: dev.tsv. The file holds, per abstract in data order, the
candidates as [title (case restored, as users see it), sum of token log-probabilities, tokens]; no
abstract or reference is written (the data stay in ../shared), so re-rankers read those from the data.
Decoding options are the checkpoint's, with the beam size and n-gram blocking given here (the quality
preset's and the comparison's beam16 by default) and num_return = beam size.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from seq2seq_rdrop.data import read_examples
from seq2seq_rdrop.decoding import generate
from seq2seq_rdrop.generation import TitleGenerator
from seq2seq_rdrop.tokenizer import decode_ids, restore_case

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "csl"


def split_examples(split: str, val_size: int) -> list:
    if split == "dev":
        return read_examples(DATA / "dev.tsv")
    return read_examples(DATA / "train.tsv")[-val_size:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--split", choices=("val", "dev"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--beam-size", type=int, default=16)
    parser.add_argument("--no-repeat-ngram", type=int, default=3)
    parser.add_argument("--val-size", type=int, default=300)
    args = parser.parse_args()
    examples = split_examples(args.split, args.val_size)
    generator = TitleGenerator.from_pretrained(args.checkpoint)
    options = dict(generator.decode, beam_size=args.beam_size, num_return=args.beam_size,
                   no_repeat_ngram=args.no_repeat_ngram)
    start = time.perf_counter()
    abstracts = [e.abstract for e in examples]
    hyps = generate(generator.model, generator.tokenizer, abstracts, options, batch_size=32,
                    max_source_len=generator.max_source_len, device=generator.device, progress=False)
    nbests = [[[restore_case(decode_ids(generator.tokenizer, h.tokens), a), h.log_prob, len(h.tokens)]
               for h in row] for row, a in zip(hyps, abstracts)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"checkpoint": args.checkpoint, "split": args.split, "options": options,
                                    "seconds": round(time.perf_counter() - start, 1), "nbest": nbests},
                                   ensure_ascii=False))
    print(f"{args.out}: {len(nbests)} n-best lists in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
