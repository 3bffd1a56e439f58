"""Re-rank beam-search n-best lists with a few features, the weights chosen on the validation split.

    python docs/experiments/2026-12-03_nbest_rerank.py NAME [NAME ...] --nbest-dir outputs/tmp/nbest
                                                       [--val-size 300] [--trials 3000] [--seed 0]

NAME_val.json and NAME_dev.json come from 2026-12-03_nbest_dump.py. Features of a candidate title t
of abstract a (each list's features are standardised within the list before weighting):
- lp: the beam's own score, sum log p / (tokens + 1);
- logp: sum log p; len: characters;
- mbr: expected character ROUGE-L F1 of t against the list's other candidates, weighted by
  softmax(sum log p / 3) (minimum Bayes risk);
- rule: ROUGE-L F1 of t against the one-line rule's title of a (metrics.rule_title);
- span: the longest substring t shares with a, over len(t) (how much of t is one copied span).
A weight vector is chosen by random search on the validation split (mean R-L of the picks, weights of
the same random draws for every NAME when several are given: the mean over them is maximised), then
applied unchanged to dev. Prints ROUGE-1/2/L and BLEU of top-1, the re-ranked pick and the oracle on
both splits, with a paired bootstrap of dev R-L (re-ranked - top 1) over examples.
"""
from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

import numpy as np

from seq2seq_rdrop.data import read_examples
from seq2seq_rdrop.metrics import rule_title, score_corpus, score_examples

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "csl"
FEATURES = ("lp", "logp", "len", "mbr", "rule", "span")


def lcs(a: str, b: str) -> int:
    row = [0] * (len(b) + 1)
    for ch in a:
        prev = 0
        for j, bj in enumerate(b, 1):
            prev, row[j] = row[j], prev + 1 if ch == bj else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(reference: str, title: str) -> float:
    reference, title = reference.lower(), title.lower()
    common = lcs(reference, title)
    return 0.0 if common == 0 else 2 * common / (len(reference) + len(title))


def longest_shared_span(title: str, abstract: str) -> int:
    best = 0
    for i in range(len(title)):
        for j in range(i + best + 1, len(title) + 1):
            if title[i:j] in abstract:
                best = j - i
            else:
                break
    return best


def features(nbest: list, abstract: str) -> np.ndarray:
    titles = [t for t, _, _ in nbest]
    logps = np.array([lp for _, lp, _ in nbest])
    weights = np.exp((logps - logps.max()) / 3.0)
    rule = rule_title(abstract)
    rows = []
    for i, (title, logp, tokens) in enumerate(nbest):
        others = [j for j in range(len(nbest)) if j != i]
        mbr = sum(weights[j] * rouge_l(titles[j], title) for j in others) / max(sum(weights[j] for j in others), 1e-9)
        rows.append([logp / (tokens + 1), logp, len(title), mbr, rouge_l(rule, title),
                     longest_shared_span(title, abstract) / max(len(title), 1)])
    x = np.array(rows)
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


def load(nbest_dir: Path, name: str, split: str, val_size: int):
    examples = read_examples(DATA / "dev.tsv") if split == "dev" else read_examples(DATA / "train.tsv")[-val_size:]
    nbests = json.loads((nbest_dir / f"{name}_{split}.json").read_text())["nbest"]
    assert len(nbests) == len(examples)
    cache = nbest_dir / f"{name}_{split}.features.npz"  # features and gains, computed once
    if cache.is_file():
        stored = np.load(cache)
        return examples, nbests, list(stored["feats"]), list(stored["gains"])
    feats = [features(n, e.abstract) for n, e in zip(nbests, examples)]
    gains = [np.array([rouge_l(e.title, t) for t, _, _ in n]) for n, e in zip(nbests, examples)]
    if len({len(n) for n in nbests}) == 1:
        np.savez(cache, feats=np.stack(feats), gains=np.stack(gains))
    return examples, nbests, feats, gains


ACTIVE = np.ones(len(FEATURES))  # 0 for a feature left out (--features)


def picks(feats, w) -> list[int]:
    return [int(np.argmax(f @ (w * ACTIVE))) for f in feats]


def mean_gain(feats, gains, w) -> float:
    return float(np.mean([g[i] for g, i in zip(gains, picks(feats, w))]))


def search(splits, trials: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    best_w = np.eye(len(FEATURES))[0] if ACTIVE[0] else ACTIVE.copy()
    best = np.mean([mean_gain(f, g, best_w) for _, _, f, g in splits])
    for _ in range(trials):
        w = rng.normal(size=len(FEATURES)) if rng.random() < 0.5 else best_w + 0.3 * rng.normal(size=len(FEATURES))
        score = np.mean([mean_gain(f, g, w) for _, _, f, g in splits])
        if score > best:
            best, best_w = score, w
    best_w = best_w * ACTIVE
    return best_w / np.abs(best_w).max()


def report(label: str, examples, nbests, chosen: list[int]) -> dict:
    titles = [n[i][0] for n, i in zip(nbests, chosen)]
    scores = score_corpus([e.title for e in examples], titles)
    print(f"  {label:<12}" + "  ".join(f"{k} {v:6.2f}" for k, v in scores.items()))
    return scores


def paired_bootstrap(examples, nbests, a: list[int], b: list[int], seed: int = 0, draws: int = 2000):
    refs = [e.title for e in examples]
    ra = np.array(score_examples(refs, [n[i][0] for n, i in zip(nbests, a)])["rouge-l"])
    rb = np.array(score_examples(refs, [n[i][0] for n, i in zip(nbests, b)])["rouge-l"])
    d = rb - ra
    rng = np.random.default_rng(seed)
    means = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(draws)]
    return d.mean(), np.percentile(means, 2.5), np.percentile(means, 97.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+")
    parser.add_argument("--nbest-dir", type=Path, default=Path("outputs/tmp/nbest"))
    parser.add_argument("--val-size", type=int, default=300)
    parser.add_argument("--trials", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", nargs="+", choices=FEATURES, default=list(FEATURES),
                        help="the features used (the others get weight 0)")
    args = parser.parse_args()
    global ACTIVE
    ACTIVE = np.array([f in args.features for f in FEATURES], dtype=float)
    val = [load(args.nbest_dir, n, "val", args.val_size) for n in args.names]
    w = search(val, args.trials, args.seed)
    print("weights chosen on val:", dict(zip(FEATURES, np.round(w, 3))))
    for name, val_split in zip(args.names, val):
        for split, (examples, nbests, feats, gains) in (("val", val_split),
                                                        ("dev", load(args.nbest_dir, name, "dev", args.val_size))):
            print(f"{name} {split} ({len(examples)} pairs)")
            top = [0] * len(nbests)
            report("top 1", examples, nbests, top)
            chosen = picks(feats, w)
            report("re-ranked", examples, nbests, chosen)
            report("oracle", examples, nbests, [int(np.argmax(g)) for g in gains])
            if split == "dev":
                delta, low, high = paired_bootstrap(examples, nbests, top, chosen)
                print(f"  dev R-L re-ranked - top 1: {delta:+.2f} [{low:+.2f}, {high:+.2f}] (examples resampled)")


if __name__ == "__main__":
    main()
