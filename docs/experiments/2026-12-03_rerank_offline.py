"""Re-rank dumped dev n-best lists (2026-12-03_nbest_dump.py) with the project's rerank_order, without decoding.

    python docs/experiments/2026-12-03_rerank_offline.py NAME [NAME ...] [--nbest-dir outputs/tmp/nbest]

Uses the preset's weights (conf/experiment/quality.yaml) and the dumped lists' sum log p / (tokens + 1) as the
search's score (what beam search ranks a finished title by at length penalty 1). Prints dev ROUGE-L and the
shares of titles with unbalanced brackets or copied boilerplate.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf

from seq2seq_rdrop.data import read_examples
from seq2seq_rdrop.metrics import score_corpus, title_shape
from seq2seq_rdrop.rerank import parse_weights, rerank_order

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+")
    parser.add_argument("--nbest-dir", type=Path, default=Path("outputs/tmp/nbest"))
    args = parser.parse_args()
    weights = parse_weights(OmegaConf.load(REPO / "conf/experiment/quality.yaml").decode.rerank)
    dev = read_examples(REPO.parent / "shared/data/csl/dev.tsv")
    references = [e.title for e in dev]
    for name in args.names:
        rows = json.loads((args.nbest_dir / f"{name}_dev.json").read_text())["nbest"]
        picks = []
        for row, example in zip(rows, dev):
            order = rerank_order(weights, [t.lower() for t, _, _ in row], [lp / (n + 1) for _, lp, n in row],
                                 [lp for _, lp, _ in row], example.abstract)
            picks.append(row[order[0]][0])
        scores, shape = score_corpus(references, picks), title_shape(picks, references)
        print(f"{name}: dev R-L {scores['rouge-l']:.2f}, unbalanced brackets {shape['unbalanced_brackets']:.3f}, "
              f"boilerplate {shape['boilerplate']:.3f}, length {shape['length']:.1f}")


if __name__ == "__main__":
    main()
