"""Decoding settings' effect on one checkpoint: dev scores for several beam-search settings.

    python scripts/decode_levers.py CHECKPOINT [--data ../shared/data/csl/dev.tsv] [--out FILE.md]

Same weights, same abstracts, one row per setting (beam size, length penalty, n-gram blocking);
prints a markdown table of ROUGE-1/2/L, BLEU, mean title length and seconds.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seq2seq_rdrop.data import read_examples  # noqa: E402
from seq2seq_rdrop.generation import TitleGenerator  # noqa: E402
from seq2seq_rdrop.metrics import METRIC_NAMES, chars, score_corpus  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--data", default="../shared/data/csl/dev.tsv")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    examples = read_examples(args.data)
    generator = TitleGenerator.from_pretrained(args.checkpoint)
    abstracts, references = [e.abstract for e in examples], [e.title for e in examples]
    lines = [f"checkpoint `{args.checkpoint}`, data `{args.data}` ({len(examples)} pairs), max 32 tokens", "",
             "| setting | " + " | ".join(METRIC_NAMES) + " | mean title chars | seconds |",
             "|---|" + "---|" * (len(METRIC_NAMES) + 2)]
    for label, options in SETTINGS:
        start = time.perf_counter()
        titles = generator.generate(abstracts, **options)
        seconds = time.perf_counter() - start
        scores = score_corpus(references, titles)
        length = sum(len(chars(t)) for t in titles) / len(titles)
        lines.append(f"| {label} | " + " | ".join(f"{scores[m]:.2f}" for m in METRIC_NAMES)
                     + f" | {length:.1f} | {seconds:.1f} |")
        print(lines[-1], flush=True)
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(f"command: `python {' '.join(sys.argv)}`\n\n" + report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
