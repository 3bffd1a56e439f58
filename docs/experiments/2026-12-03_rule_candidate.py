"""Would the one-line rule's title help as one more candidate of the n-best? (issue 31, re-ranking)

    python docs/experiments/2026-12-03_rule_candidate.py score CHECKPOINT --split val|dev --out FILE.json
    python docs/experiments/2026-12-03_rule_candidate.py rerank NAME [NAME ...] [--nbest-dir outputs/tmp/nbest]

score: the checkpoint's teacher-forced sum log p of each abstract's rule title (metrics.rule_title; end token
included) and its tokens, for the validation split (the last 300 pairs of train.tsv) or dev. rerank: for
each NAME, the dumped n-best lists (2026-12-03_nbest_dump.py, NAME_val.json / NAME_dev.json) with and without
the rule's title appended as a 17th candidate (NAME_val.rule.json / NAME_dev.rule.json from `score`); weights
chosen on validation (rerank.tune_weights over all NAMEs' lists), dev R-L of the picks, and the oracle.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from seq2seq_rdrop.data import read_examples
from seq2seq_rdrop.metrics import rouge_l, rule_title, score_corpus
from seq2seq_rdrop.rerank import FEATURES, features, tune_weights

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "csl"


def split_examples(split: str) -> list:
    return read_examples(DATA / "dev.tsv") if split == "dev" else read_examples(DATA / "train.tsv")[-300:]


def score(args) -> None:
    import torch

    from seq2seq_rdrop.generation import TitleGenerator
    from seq2seq_rdrop.tokenizer import encode_text

    generator = TitleGenerator.from_pretrained(args.checkpoint)
    model, tok = generator.model.eval(), generator.tokenizer
    out = []
    examples = split_examples(args.split)
    with torch.no_grad():
        for start in range(0, len(examples), 32):
            chunk = examples[start:start + 32]
            built = [model.build_example(encode_text(tok, e.abstract, generator.max_source_len),
                                         encode_text(tok, rule_title(e.abstract), 31)) for e in chunk]
            batch = model.collate(built)
            log_probs = model(batch)
            target = batch["tgt_out"]
            picked = log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1) * (target != model.pad_id)
            for row, (_, _, tgt_out) in zip(picked.sum(1).tolist(), built):
                out.append([row, len(tgt_out) - 1])
    Path(args.out).write_text(json.dumps(out))
    print(f"{args.out}: {len(out)} rule titles scored")


def lists(nbest_dir: Path, name: str, split: str, with_rule: bool):
    examples = split_examples(split)
    nbests = json.loads((nbest_dir / f"{name}_{split}.json").read_text())["nbest"]
    rules = json.loads((nbest_dir / f"{name}_{split}.rule.json").read_text())
    feats, gains, titles = [], [], []
    for row, (logp, n), e in zip(nbests, rules, examples):
        cands = [(t.lower(), lp, k) for t, lp, k in row]
        if with_rule:
            cands.append((rule_title(e.abstract).lower(), logp, n))
        texts = [t for t, _, _ in cands]
        feats.append(features(texts, [lp / (k + 1) for _, lp, k in cands], [lp for _, lp, _ in cands], e.abstract))
        gains.append([rouge_l(e.title, t) for t in texts])
        titles.append(texts)
    return examples, feats, gains, titles


def rerank(args) -> None:
    for with_rule in (False, True):
        val = [lists(args.nbest_dir, n, "val", with_rule) for n in args.names]
        weights = tune_weights([f for v in val for f in v[1]], [g for v in val for g in v[2]], trials=2000)
        print(f"rule candidate {with_rule}: weights {weights}")
        for name in args.names:
            examples, feats, gains, titles = lists(args.nbest_dir, name, "dev", with_rule)
            w = [weights.get(f, 0.0) for f in FEATURES]
            picks = [t[max(range(len(t)), key=lambda i: sum(a * b for a, b in zip(w, f[i])))]
                     for f, t in zip(feats, titles)]
            oracle = [t[max(range(len(t)), key=g.__getitem__)] for g, t in zip(gains, titles)]
            refs = [e.title for e in examples]
            print(f"  {name} dev R-L re-ranked {score_corpus(refs, picks)['rouge-l']:.2f}, "
                  f"oracle {score_corpus(refs, oracle)['rouge-l']:.2f}, "
                  f"rule title picked {sum(p == rule_title(e.abstract).lower() for p, e in zip(picks, examples))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score")
    s.add_argument("checkpoint")
    s.add_argument("--split", choices=("val", "dev"), required=True)
    s.add_argument("--out", required=True)
    r = sub.add_parser("rerank")
    r.add_argument("names", nargs="+")
    r.add_argument("--nbest-dir", type=Path, default=Path("outputs/tmp/nbest"))
    args = parser.parse_args()
    score(args) if args.command == "score" else rerank(args)


if __name__ == "__main__":
    main()
