"""Train the content selector (seq2seq_rdrop/selector.py) and score its top span as a title.

    python scripts/train_selector.py --out FILE.pt [--data DIR] [--val-size 300]
                                     [--holdout-test 300 --holdout-offset 400]
                                     [--epochs 6] [--seed 0] [--tag-weight 1] [--no-words] [--score dev]

Trains on train.tsv minus its last --val-size pairs (data.val_size's validation split, left out so that
re-ranking weights can be chosen on it; the epoch kept is the one whose top span scores best there) and
minus the held-out test pairs of --holdout-test/--holdout-offset (data.holdout_test's split, cut as train.py
cuts it, so a held-out figure is of pairs neither model saw), with
titles_only.txt in the word lexicon. Prints the training
seconds and, on the validation split (and dev with --score dev), the ROUGE-L of the selector's most likely
span taken as the title, of the best span (the oracle: chosen with the reference in hand) and of the
one-line rule, and the seconds the selector took to read them.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from seq2seq_rdrop.data import read_examples, resolve_data_dir
from seq2seq_rdrop.metrics import rule_title, score_corpus
from seq2seq_rdrop.selector import MAX_ABSTRACT, Selector, best_span, train_selector
from seq2seq_rdrop.splits import carve_holdout, carve_validation


def main(argv=None) -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 0)) or torch.get_num_threads())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=None,
                        help="the data folder (default: as data.dir=null: $CSL_DATA_DIR, data/csl, ../shared/data/csl)")
    parser.add_argument("--val-size", type=int, default=300)
    parser.add_argument("--holdout-test", type=int, default=0,
                        help="pairs held out as a test split (data.holdout_test; left out of training)")
    parser.add_argument("--holdout-offset", type=int, default=0,
                        help="pairs after the held-out ones at the file's end (data.holdout_offset)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag-weight", type=float, default=1.0, help="weight of the per-character tag loss")
    parser.add_argument("--no-words", action="store_true", help="without jieba's words (the ablation)")
    parser.add_argument("--score", nargs="*", default=[], choices=["dev"], help="also score these splits")
    args = parser.parse_args(argv)
    if min(args.val_size, args.holdout_test, args.holdout_offset) < 0 or args.epochs < 1:
        parser.error("--val-size, --holdout-test and --holdout-offset must be >= 0 and --epochs >= 1")
    args.data = Path(resolve_data_dir(args.data))
    train, val = selector_splits(args.data / "train.tsv", args.val_size, args.holdout_test, args.holdout_offset)
    titles_file = args.data / "titles_only.txt"
    extra = titles_file.read_text(encoding="utf-8").split("\n") if titles_file.is_file() else []
    start = time.perf_counter()
    selector = train_selector([(e.abstract, e.title) for e in train], [t for t in extra if t.strip()],
                              epochs=args.epochs, seed=args.seed, tag_weight=args.tag_weight,
                              val_pairs=[(e.abstract, e.title) for e in val], words=not args.no_words)
    print(f"trained on {len(train)} pairs in {time.perf_counter() - start:.0f} s")
    selector.save(args.out)
    splits = {"val": val, **({"dev": read_examples(args.data / "dev.tsv")} if "dev" in args.score else {})}
    for name, examples in splits.items():
        if examples:
            report(name, Selector.load(args.out), examples)


def selector_splits(train_file: Path, val_size: int, holdout_test: int = 0, holdout_offset: int = 0):
    """(train, val) pairs of train_file cut as seq2seq_rdrop.splits.load_splits cuts them for train.py: the
    held-out test pairs first, then the validation split from the end of what remains."""
    pairs = read_examples(train_file)
    if holdout_test:
        pairs, _ = carve_holdout(pairs, holdout_test, holdout_offset)
    train, val = carve_validation(pairs, val_size)
    return train, val or []


def report(name: str, selector: Selector, examples) -> None:
    abstracts, titles = [e.abstract for e in examples], [e.title for e in examples]
    start = time.perf_counter()
    top = [spans[0][0] if spans else "" for spans in selector.spans(abstracts, top=1)]
    seconds = time.perf_counter() - start
    oracle = [a[s:e] for a, t in zip(abstracts, titles) for s, e, _ in [best_span(a[:MAX_ABSTRACT], t)]]
    rows = {"selector's top span": top, "best span (oracle)": oracle, "one-line rule": [rule_title(a) for a in abstracts]}
    for label, predictions in rows.items():
        print(f"{name} ({len(examples)}): {label}: R-L {score_corpus(titles, predictions)['rouge-l']:.2f}")
    print(f"{name}: the selector read {len(examples)} abstracts in {seconds:.1f} s")


if __name__ == "__main__":
    main()
