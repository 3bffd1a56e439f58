"""Decoding settings' effect on one checkpoint: dev scores for several beam-search settings.

    python scripts/sweep_decoding.py CHECKPOINT [CHECKPOINT ...] [--data ../shared/data/csl/dev.tsv] [--out FILE.md]
                                     [--setting beam_size=8,no_repeat_ngram=3 ...]

Same weights, same abstracts, one row per setting (beam size, length penalty, n-gram blocking);
prints a markdown table of ROUGE-1/2/L, BLEU, mean title length and seconds. With several
checkpoints (e.g. runs of one preset), each setting is also averaged over them, which separates a
decoding lever from one run's luck. --setting (repeatable) replaces the built-in list.
"""
from __future__ import annotations

import argparse
import sys
import time

from seq2seq_rdrop.data import read_examples
from seq2seq_rdrop.generation import TitleGenerator
from seq2seq_rdrop.metrics import METRIC_NAMES, chars, score_corpus
from seq2seq_rdrop.reporting.decoding_tables import finish_report, mean_cells

SETTINGS = [  # (label, decoding options)
    ("greedy (beam 1)", {"beam_size": 1}),
    ("beam 3", {"beam_size": 3}),
    ("beam 5", {"beam_size": 5}),
    ("beam 3, length penalty 0.6", {"beam_size": 3, "length_penalty": 0.6}),
    ("beam 3, length penalty 1.5", {"beam_size": 3, "length_penalty": 1.5}),
    ("beam 3, no repeated 2-gram", {"beam_size": 3, "no_repeat_ngram": 2}),
    ("beam 3, no repeated 3-gram", {"beam_size": 3, "no_repeat_ngram": 3}),
    ("beam 5, no repeated 3-gram", {"beam_size": 5, "no_repeat_ngram": 3}),
    ("beam 3, no repeated 3-gram, length penalty 1.5", {"beam_size": 3, "no_repeat_ngram": 3, "length_penalty": 1.5}),
]


DECODE_OPTIONS = {"beam_size": int, "length_penalty": float, "no_repeat_ngram": int, "min_len": int, "max_len": int}


def parse_setting(text: str) -> tuple[str, dict]:
    """'beam_size=8,no_repeat_ngram=3' -> (label, options); unknown names are refused, naming the allowed ones."""
    options = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name.strip() not in DECODE_OPTIONS or not value:
            raise SystemExit(f"--setting {text!r}: {item!r} is not NAME=VALUE with NAME one of {', '.join(DECODE_OPTIONS)}")
        options[name.strip()] = DECODE_OPTIONS[name.strip()](value)
    return text, options


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    parser.add_argument("--data", default="../shared/data/csl/dev.tsv")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    parser.add_argument("--setting", action="append", default=None, metavar="NAME=VALUE[,NAME=VALUE]",
                        help=f"a decoding setting to score (repeatable; names: {', '.join(DECODE_OPTIONS)})")
    args = parser.parse_args()
    settings = [parse_setting(text) for text in args.setting] if args.setting else SETTINGS
    examples = read_examples(args.data)
    abstracts, references = [e.abstract for e in examples], [e.title for e in examples]
    lines = [f"data `{args.data}` ({len(examples)} pairs), max 32 tokens", "",
             "| checkpoint | setting | " + " | ".join(METRIC_NAMES) + " | mean title chars | seconds |",
             "|---|---|" + "---|" * (len(METRIC_NAMES) + 2)]
    all_scores = {label: [] for label, _ in settings}
    for checkpoint in args.checkpoints:
        generator = TitleGenerator.from_pretrained(checkpoint)
        for label, options in settings:
            start = time.perf_counter()
            titles = generator.generate(abstracts, **options)
            seconds = time.perf_counter() - start
            scores = score_corpus(references, titles)
            scores["chars"] = sum(len(chars(t)) for t in titles) / len(titles)
            all_scores[label].append(scores)
            lines.append(f"| `{checkpoint}` | {label} | " + " | ".join(f"{scores[m]:.2f}" for m in METRIC_NAMES)
                         + f" | {scores['chars']:.1f} | {seconds:.1f} |")
            print(lines[-1], flush=True)
    if len(args.checkpoints) > 1:
        for label, runs in all_scores.items():
            lines.append(f"| mean of {len(runs)} | {label} | " + mean_cells(runs)
                         + f" | {sum(r['chars'] for r in runs) / len(runs):.1f} | |")
    return finish_report(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
