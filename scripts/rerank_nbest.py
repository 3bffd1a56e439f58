"""Can a better choice among beam search's n-best titles raise dev scores? One decoding pass per checkpoint.

    python scripts/rerank_nbest.py CHECKPOINT [CHECKPOINT ...] [--data ../shared/data/csl/dev.tsv]
                                   [--beam-size 16] [--no-repeat-ngram 3] [--max-len 32] [--out FILE.md]

Beam search keeps the `beam_size` best finished titles of each abstract. This script scores several
ways of picking one of them, on the same n-best lists:
- top 1: what beam search returns (highest mean token log-probability);
- length penalty L: sum log p / (tokens + 1) ** L, the n-best re-ranked with another length penalty;
- MBR: minimum Bayes risk, the candidate with the highest expected character ROUGE-L F1 against the
  other candidates (uniformly weighted, or weighted by softmax(sum log p / T));
- oracle: the candidate closest to the reference (an upper bound for any re-ranker, not a method).
Prints a markdown table of ROUGE-1/2/L and BLEU per checkpoint and their mean over checkpoints.
"""
from __future__ import annotations

import argparse
import functools
import math
import sys
import time

from rouge_score import rouge_scorer

from seq2seq_rdrop.data import read_examples
from seq2seq_rdrop.decoding import generate
from seq2seq_rdrop.generation import TitleGenerator
from seq2seq_rdrop.metrics import METRIC_NAMES, CharTokenizer, score_corpus
from seq2seq_rdrop.reporting.decoding_tables import finish_report, mean_cells
from seq2seq_rdrop.tokenizer import decode_ids

_ROUGE_L = rouge_scorer.RougeScorer(["rougeL"], tokenizer=CharTokenizer())


@functools.lru_cache(maxsize=1 << 16)
def rouge_l(reference: str, title: str) -> float:
    """Character ROUGE-L F1 (x100) alone, as metrics.score_pair computes it; cached, since the MBR picks
    all compare the same candidate pairs and BLEU and ROUGE-1/2 are not needed for them."""
    return 100.0 * _ROUGE_L.score(reference, title)["rougeL"].fmeasure


def mbr_pick(candidates: list[tuple[str, float]], temperature: float | None = None) -> str:
    """The candidate title with the highest expected ROUGE-L F1 against the others.

    candidates: (title, sum of log-probabilities). Each other candidate weighs softmax(log p / temperature),
    or the same when temperature is None. Ties go to the earlier (better-ranked) candidate."""
    if len(candidates) == 1:
        return candidates[0][0]
    if temperature is None:
        weights = [1.0] * len(candidates)
    else:
        top = max(lp for _, lp in candidates)
        weights = [math.exp((lp - top) / temperature) for _, lp in candidates]
    best, best_gain = candidates[0][0], -1.0
    for i, (title, _) in enumerate(candidates):
        others = [(weights[j], candidates[j][0]) for j in range(len(candidates)) if j != i]
        gain = sum(w * rouge_l(other, title) for w, other in others) / sum(w for w, _ in others)
        if gain > best_gain:
            best, best_gain = title, gain
    return best


def pickers(beam_size: int):
    """(label, function from (n-best [(title, sum log p, tokens)], reference) to a title)."""
    def by_length_penalty(penalty):
        return lambda nbest, ref: max(nbest, key=lambda h: h[1] / (h[2] + 1) ** penalty)[0]

    def mbr(k, temperature):
        return lambda nbest, ref: mbr_pick([(t, lp) for t, lp, _ in nbest[:k]], temperature)

    out = [("top 1 (beam search)", lambda nbest, ref: nbest[0][0])]
    out += [(f"length penalty {p}", by_length_penalty(p)) for p in (0.8, 1.2, 1.5)]
    out += [(f"MBR over {beam_size}, uniform", mbr(beam_size, None))]
    out += [(f"MBR over {k}, softmax(log p / 3)", mbr(k, 3.0)) for k in sorted({min(8, beam_size), beam_size})]
    out += [("oracle (closest to the reference; a bound)",
             lambda nbest, ref: max(nbest, key=lambda h: rouge_l(ref, h[0]))[0])]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    parser.add_argument("--data", default="../shared/data/csl/dev.tsv")
    parser.add_argument("--beam-size", type=int, default=16)
    parser.add_argument("--no-repeat-ngram", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=32, help="title tokens at most")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    examples = read_examples(args.data)
    abstracts, references = [e.abstract for e in examples], [e.title for e in examples]
    choices = pickers(args.beam_size)
    lines = [f"data `{args.data}` ({len(examples)} pairs); n-best of beam {args.beam_size}, "
             f"no repeated {args.no_repeat_ngram}-gram, max {args.max_len} tokens", "",
             "| checkpoint | pick | " + " | ".join(METRIC_NAMES) + " |", "|---|---|" + "---|" * len(METRIC_NAMES)]
    results = {label: [] for label, _ in choices}
    for checkpoint in args.checkpoints:
        generator = TitleGenerator.from_pretrained(checkpoint)
        options = dict(generator.decode, beam_size=args.beam_size, num_return=args.beam_size,
                       no_repeat_ngram=args.no_repeat_ngram, max_len=args.max_len)
        start = time.perf_counter()
        hyps = generate(generator.model, generator.tokenizer, abstracts, options, batch_size=32,
                        max_source_len=generator.max_source_len, device=generator.device, progress=False)
        print(f"{checkpoint}: decoded in {time.perf_counter() - start:.0f} s", flush=True)
        nbests = [[(decode_ids(generator.tokenizer, h.tokens), h.log_prob, len(h.tokens)) for h in row] for row in hyps]
        for label, pick in choices:
            scores = score_corpus(references, [pick(nbest, ref) for nbest, ref in zip(nbests, references)])
            results[label].append(scores)
            lines.append(f"| `{checkpoint}` | {label} | " + " | ".join(f"{scores[m]:.2f}" for m in METRIC_NAMES) + " |")
            print(lines[-1], flush=True)
    if len(args.checkpoints) > 1:
        for label, runs in results.items():
            lines.append(f"| mean of {len(runs)} | {label} | " + mean_cells(runs) + " |")
    return finish_report(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
