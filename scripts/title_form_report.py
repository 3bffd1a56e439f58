"""Well-formedness rates and word-level ROUGE of titles for a dev file, beside the references' own rates.

    python scripts/title_form_report.py DEV_TSV [PREDICTIONS_TSV ...]

Rows: the reference titles, the no-training titles (the one-line rule, metrics.rule_title; the abstract's
first 20 characters) and each PREDICTIONS_TSV (`reference<TAB>prediction` per line, in DEV_TSV's order, as runs
write predictions_dev*.tsv). Columns: character ROUGE-L, word-level ROUGE-1/2/L (jieba words, secondary), mean
length, starting with 基于, and the share of titles failing each check of seq2seq_rdrop.title_form, each
title against its own abstract. A markdown table on stdout; no training, no model.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seq2seq_rdrop.data import DataError, read_examples
from seq2seq_rdrop.metrics import LEAD_CHARS, WORD_METRIC_NAMES, rule_title, score_corpus, title_shape, word_rouge
from seq2seq_rdrop.reporting.formatting import table
from seq2seq_rdrop.reporting.runs import read_predictions
from seq2seq_rdrop.title_form import FORM_LABELS


def predictions_for(path: Path, titles: list[str]) -> list[str]:
    """The predictions of a `reference<TAB>prediction` file whose references are the dev titles, in order."""
    references, predictions = read_predictions(path)
    if len(references) != len(titles):
        raise DataError(f"{path}: {len(references)} lines, but the dev file has {len(titles)} pairs")
    for line, (reference, title) in enumerate(zip(references, titles), start=1):
        if reference.split() != title.replace("\t", " ").split():
            raise DataError(f"{path}:{line}: reference {reference!r} is not the dev file's title {title!r}")
    return predictions


def row(name: str, predictions: list[str], titles: list[str], abstracts: list[str]) -> list[str]:
    shape = title_shape(predictions, titles, abstracts)
    words = word_rouge(titles, predictions)
    return [name, f"{score_corpus(titles, predictions)['rouge-l']:.2f}",
            *(f"{words[m]:.2f}" for m in WORD_METRIC_NAMES), f"{shape['length']:.1f}", f"{shape['starts_jiyu']:.1%}",
            *(f"{shape[k]:.1%}" for k in FORM_LABELS)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dev", type=Path, help="title<TAB>abstract pairs (e.g. ../shared/data/csl/dev.tsv)")
    ap.add_argument("predictions", type=Path, nargs="*", help="reference<TAB>prediction files in the dev file's order")
    args = ap.parse_args(argv)
    try:
        dev = read_examples(args.dev)
        titles, abstracts = [e.title for e in dev], [e.abstract for e in dev]
        rows = [row("references", titles, titles, abstracts),
                row("the one-line rule", [rule_title(a) for a in abstracts], titles, abstracts),
                row(f"the first {LEAD_CHARS} characters", [a[:LEAD_CHARS] for a in abstracts], titles, abstracts)]
        rows += [row(str(path), predictions_for(path, titles), titles, abstracts) for path in args.predictions]
    except (DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.dev}: {len(dev)} pairs; rates are shares of titles, each title checked against its own abstract\n")
    print("\n".join(table(["titles", "R-L (characters)", "word R-1", "word R-2", "word R-L (secondary)", "length",
                           "starting with 基于", *FORM_LABELS.values()], rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
