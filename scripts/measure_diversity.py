"""How different are the n titles that beam search's n-best, diverse beam search and sampling give one abstract,
and how good is the best of them? One checkpoint, the dev split.

    python scripts/measure_diversity.py CHECKPOINT [--n 5] [--limit N] [--data FILE] [--out FILE.md]
                                        [--diversity-penalty 1.0] [--top-p 0.9] [--seed 0] [--max-len N]
                                        [--batch-size 32]

Each setting gives every abstract n titles (decode.num_return=n):
- beam n-best: beam search with n beams, its n best finished titles;
- diverse beam: n groups of one beam, each group's scores lowered by --diversity-penalty per earlier group
  that chose the same token at the same step (Hugging Face's num_beam_groups / diversity_penalty);
- sampling: n titles drawn with nucleus sampling (--top-p), seed --seed.
The other decoding options (max_len unless --max-len, no_repeat_ngram, length_penalty, max_source_len) are
the checkpoint's own (TitleGenerator.from_pretrained).

Columns, each a mean over the abstracts:
- distinct-2: distinct character 2-gram types / character 2-gram tokens over the abstract's n titles
  (metrics.distinct_ngrams; characters as metrics.chars: lower case, whitespace dropped; a title of k
  characters holds k - 1 2-grams; n titles without any 2-gram count 0). 1.0: no 2-gram occurs twice
  among them; n copies of one title score at most 1/n;
- distinct titles: how many of the n titles differ (as strings);
- top-1 R-L: character ROUGE-L F1 (x100, metrics.score_pair) of the first title (the best scored);
- oracle R-L: the best of the n titles' ROUGE-L against the reference (what a perfect re-ranker would reach).

--data defaults to data.dev_file in the data directory train.py would use (data.dir: $CSL_DATA_DIR, else
data/csl, else ../shared/data/csl); --limit N keeps its first N pairs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import yaml

from seq2seq_rdrop.data import read_examples, resolve_data_dir
from seq2seq_rdrop.generation import TitleGenerator
from seq2seq_rdrop.metrics import distinct_ngrams, score_pair
from seq2seq_rdrop.reporting.decoding_tables import finish_report

DATA_CONFIG = Path(__file__).resolve().parent.parent / "conf" / "data" / "csl.yaml"  # data.dir and data.dev_file
COLUMNS = ("setting", "distinct-2", "distinct titles", "top-1 R-L", "oracle R-L", "seconds")


def default_dev_file() -> Path:
    data = yaml.safe_load(DATA_CONFIG.read_text(encoding="utf-8"))
    return resolve_data_dir(data["dir"]) / data["dev_file"]


def settings(n: int, diversity_penalty: float, top_p: float, seed: int) -> list[tuple[str, dict]]:
    """(label, decoding options) of the three ways to get n titles per abstract."""
    return [(f"beam {n}, {n}-best", {"beam_size": n}),
            (f"diverse beam: {n} groups of 1, diversity_penalty {diversity_penalty:g}",
             {"beam_size": n, "beam_groups": n, "diversity_penalty": diversity_penalty}),
            (f"sampling: top_p {top_p:g}, seed {seed}", {"strategy": "sample", "top_p": top_p, "seed": seed})]


def measure(generator: TitleGenerator, abstracts, references, options: dict, batch_size: int) -> dict:
    """The table's columns for one setting (see the module docstring)."""
    start = time.perf_counter()
    titles = [[title for title, _ in row] for row in generator.hypotheses(abstracts, batch_size=batch_size, **options)]
    seconds = time.perf_counter() - start
    rouge_l = [[score_pair(ref, t)["rouge-l"] for t in row] for ref, row in zip(references, titles)]
    count = len(titles)
    return {"distinct-2": sum(distinct_ngrams(row) for row in titles) / count,
            "distinct titles": sum(len(set(row)) for row in titles) / count,
            "top-1 R-L": sum(row[0] for row in rouge_l) / count,
            "oracle R-L": sum(max(row) for row in rouge_l) / count,
            "seconds": seconds}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--n", type=int, default=5, help="titles per abstract (default 5)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N dev pairs (default: all)")
    parser.add_argument("--data", default=None, help="pairs with reference titles (default: the dev split)")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    parser.add_argument("--diversity-penalty", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-len", type=int, default=None, help="title tokens at most (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=32, help="abstracts decoded together (default 32)")
    args = parser.parse_args(argv)
    for name in ("n", "limit", "batch_size", "max_len"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    data = Path(args.data) if args.data else default_dev_file()
    examples = [e for e in read_examples(data) if e.title][:args.limit]
    abstracts, references = [e.abstract for e in examples], [e.title for e in examples]
    generator = TitleGenerator.from_pretrained(args.checkpoint, max_len=args.max_len)
    lines = [f"checkpoint `{args.checkpoint}`, data `{os.path.relpath(data)}` ({len(examples)} pairs), {args.n} titles per abstract; "
             f"max_len {generator.decode['max_len']}, other decoding options the checkpoint's: no_repeat_ngram "
             f"{generator.decode['no_repeat_ngram']}, length_penalty {generator.decode['length_penalty']}", "",
             f"| {' | '.join(COLUMNS)} |", f"|{'---|' * len(COLUMNS)}"]
    for label, options in settings(args.n, args.diversity_penalty, args.top_p, args.seed):
        scores = measure(generator, abstracts, references, {**options, "num_return": args.n}, args.batch_size)
        lines.append(f"| {label} | {scores['distinct-2']:.3f} | {scores['distinct titles']:.2f} | "
                     f"{scores['top-1 R-L']:.2f} | {scores['oracle R-L']:.2f} | {scores['seconds']:.1f} |")
        print(lines[-1], flush=True)
    return finish_report(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
