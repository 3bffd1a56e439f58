"""Dev scores, title shape and the paired difference of re-ranked titles against beam search's top 1.

    python docs/experiments/2026-12-03_rerank_compare.py --pair TOP1.tsv RERANKED.tsv [--pair ...]
                                                         [--data ../shared/data/csl/dev.tsv] [--show 8]

TOP1.tsv: a run's predictions_dev_beam16.tsv (reference<TAB>title); RERANKED.tsv: generate.py's output
(abstract_id<TAB>title<TAB>score) for the same checkpoint and dev file with decode.rerank. Each --pair is one
checkpoint (one training run); the difference is bootstrapped over runs and examples
(reporting.statistics.hierarchical_bootstrap) when several pairs are given. --show N prints N examples
whose title changed, with the reference.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from seq2seq_rdrop.data import read_examples
from seq2seq_rdrop.metrics import score_corpus, score_examples, title_shape
from seq2seq_rdrop.reporting.statistics import hierarchical_bootstrap


def column(path: Path, index: int) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return [row[index] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", nargs=2, type=Path, action="append", required=True, metavar=("TOP1", "RERANKED"))
    parser.add_argument("--data", default="../shared/data/csl/dev.tsv")
    parser.add_argument("--show", type=int, default=0)
    args = parser.parse_args()
    references = [e.title for e in read_examples(args.data)]
    diffs = []
    for top_file, reranked_file in args.pair:
        top, reranked = column(top_file, 1), column(reranked_file, 1)
        assert len(top) == len(reranked) == len(references), (top_file, reranked_file)
        for label, titles in (("top 1", top), ("re-ranked", reranked)):
            scores, shape = score_corpus(references, titles), title_shape(titles, references)
            print(f"{reranked_file.name} {label:<10} R-1 {scores['rouge-1']:.2f} R-2 {scores['rouge-2']:.2f} "
                  f"R-L {scores['rouge-l']:.2f} BLEU {scores['bleu']:.2f} | length {shape['length']:.1f} "
                  f"(refs {shape['reference_length']:.1f}) 基于 {shape['starts_jiyu']:.2f} "
                  f"(refs {shape['reference_starts_jiyu']:.2f}) unbalanced {shape['unbalanced_brackets']:.3f} "
                  f"repetitive {shape['repetitive']:.3f}")
        diffs.append(np.array(score_examples(references, reranked)["rouge-l"])
                     - np.array(score_examples(references, top)["rouge-l"]))
        changed = [i for i in range(len(top)) if top[i] != reranked[i]]
        print(f"  {len(changed)} of {len(top)} titles changed")
        for i in changed[:args.show]:
            print(f"  ref {references[i]} | top {top[i]} | re-ranked {reranked[i]}")
    summary = hierarchical_bootstrap(np.stack(diffs), n_boot=2000, seed=0)
    print(f"dev R-L re-ranked - top 1 over {len(diffs)} run(s): {summary['delta']:+.2f} "
          f"[{summary['ci_low']:+.2f}, {summary['ci_high']:+.2f}], p {summary['p_value']:.4f}")


if __name__ == "__main__":
    main()
