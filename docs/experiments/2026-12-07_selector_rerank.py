"""The content selector (seq2seq_rdrop/selector.py) as a re-ranking feature, as extra candidates, and jieba word
boundaries as a constraint, measured offline on dumped n-best lists (issue 40).

    python docs/experiments/2026-12-07_selector_rerank.py spans SELECTOR.pt --split val|dev --out FILE.json
    python docs/experiments/2026-12-07_selector_rerank.py score CHECKPOINT --spans FILE.json --split val|dev --out FILE.json
    python docs/experiments/2026-12-07_selector_rerank.py rerank NAME [--nbest-dir outputs/tmp/nbest] [--trials 2000]
    python docs/experiments/2026-12-07_selector_rerank.py standalone NAME [--nbest-dir outputs/tmp/nbest]

standalone: the selector's top span taken as the title (no generator), beside the rule.
spans: the selector's 5 most likely spans of each abstract (text, probability) and the seconds it took.
score: the checkpoint's teacher-forced sum log p (end token included) of each abstract's 3 most likely spans,
so that they can join the n-best as candidates. rerank: NAME_{val,dev}.json are 2026-12-03_nbest_dump.py's
lists, NAME_{val,dev}.spans.json and (optional) NAME_{val,dev}.spanscores.json the two files above. Every
weight is chosen on the validation split (the last 300 pairs of train.tsv, which neither the checkpoint nor
the selector trained on); dev is only scored: R-L of the picks, the difference to beam search's top 1 and to
the preset's weights with a paired bootstrap over dev examples (95% interval), and the well-formedness rates of
the picks beside the references' (word_shape_flags: quick checks for this experiment; the project's shared
rates live in metrics, issue 40 item 3).
"""
from __future__ import annotations

import argparse
import json
import re
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from seq2seq_rdrop.data import read_examples
from seq2seq_rdrop.metrics import rouge_l, score_corpus
from seq2seq_rdrop.rerank import FEATURES, features, parse_weights, tune_weights, well_formed

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "csl"
TOP_SPANS = 5      # spans of the selector in the sel feature
SPAN_CANDIDATES = 3  # of which join the n-best as candidates (score)


def split_examples(split: str) -> list:
    return read_examples(DATA / "dev.tsv") if split == "dev" else read_examples(DATA / "train.tsv")[-300:]


# ------------------------------------------------------------------------------ well-formedness (quick checks)

LATIN = re.compile(r"[A-Za-z]+")
REPEATED_PIECE = re.compile(r"([A-Za-z]{2,}|[\u4e00-\u9fff]{2,})\1")


@lru_cache(maxsize=4096)
def _word_edges(abstract: str) -> tuple[frozenset, frozenset]:
    """(positions where a jieba word of the abstract starts, positions where one ends (exclusive))."""
    from seq2seq_rdrop.selector import segment

    starts, ends, i = set(), set(), 0
    for w in segment(abstract):
        starts.add(i)
        i += len(w)
        ends.add(i)
    return frozenset(starts), frozenset(ends)


def word_shape_flags(title: str, abstract: str) -> dict[str, bool]:
    """latin_cut: a Latin word of the title occurs in the abstract only inside a longer Latin word (Spon for
    Sponge); start_inside / end_inside: the title's opening (closing) piece, its longest prefix (suffix) of at
    least 2 characters found in the abstract, starts (ends) inside a jieba word there, at every occurrence;
    repeated_piece: a piece of 2+ letters or Chinese characters twice in a row (wififi)."""
    a_low, t_low = abstract.lower(), title.lower()
    abstract_words = {w.lower() for w in LATIN.findall(abstract)}
    latin_cut = any(w.lower() not in abstract_words and w.lower() in a_low for w in LATIN.findall(title))
    starts, ends = _word_edges(abstract)
    start_inside = end_inside = False
    prefix = next((t_low[:k] for k in range(len(t_low), 1, -1) if t_low[:k] in a_low), None)
    if prefix:
        places = [m.start() for m in re.finditer(re.escape(prefix), a_low)]
        start_inside = all(p not in starts for p in places)
    suffix = next((t_low[-k:] for k in range(len(t_low), 1, -1) if t_low[-k:] in a_low), None)
    if suffix:
        places = [m.end() for m in re.finditer(re.escape(suffix), a_low)]
        end_inside = all(p not in ends for p in places)
    return {"latin_cut": latin_cut, "start_inside": start_inside, "end_inside": end_inside,
            "repeated_piece": bool(REPEATED_PIECE.search(title))}


def shape_rates(titles, abstracts) -> dict[str, float]:
    flags = [word_shape_flags(t, a) for t, a in zip(titles, abstracts)]
    return {k: float(np.mean([f[k] for f in flags])) for k in flags[0]}


def word_shaped(title: str, abstract: str, checks=("latin_cut", "start_inside", "end_inside", "repeated_piece")) -> bool:
    flags = word_shape_flags(title, abstract)
    return not any(flags[c] for c in checks)


# ------------------------------------------------------------------------------ spans and their scores


def spans(args) -> None:
    from seq2seq_rdrop.selector import Selector

    examples = split_examples(args.split)
    selector = Selector.load(args.selector)
    start = time.perf_counter()
    result = selector.spans([e.abstract for e in examples], top=TOP_SPANS)
    seconds = time.perf_counter() - start
    Path(args.out).write_text(json.dumps({"seconds": seconds, "spans": result}, ensure_ascii=False))
    print(f"{args.out}: {len(result)} abstracts in {seconds:.1f} s")


def score(args) -> None:
    import torch

    from seq2seq_rdrop.generation import TitleGenerator
    from seq2seq_rdrop.tokenizer import encode_text

    generator = TitleGenerator.from_pretrained(args.checkpoint)
    model, tok = generator.model.eval(), generator.tokenizer
    examples = split_examples(args.split)
    span_lists = json.loads(Path(args.spans).read_text())["spans"]
    jobs = [(i, text) for i, row in enumerate(span_lists) for text, _ in row[:SPAN_CANDIDATES]]
    out = [[] for _ in examples]
    start = time.perf_counter()
    with torch.no_grad():
        for k in range(0, len(jobs), 32):
            chunk = jobs[k:k + 32]
            built = [model.build_example(encode_text(tok, examples[i].abstract, generator.max_source_len),
                                         encode_text(tok, text, 31)) for i, text in chunk]
            batch = model.collate(built)
            log_probs = model(batch)
            target = batch["tgt_out"]
            picked = log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1) * (target != model.pad_id)
            for (i, text), total, (_, _, tgt_out) in zip(chunk, picked.sum(1).tolist(), built):
                out[i].append([text, total, len(tgt_out) - 1])
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False))
    print(f"{args.out}: {len(jobs)} spans scored in {time.perf_counter() - start:.1f} s")


# ------------------------------------------------------------------------------ re-ranking offline


def lists(nbest_dir: Path, name: str, split: str, with_spans: bool):
    """(examples, per-abstract candidates [(title, score, log p)], features, ROUGE-L gains)."""
    examples = split_examples(split)
    nbests = json.loads((nbest_dir / f"{name}_{split}.json").read_text())["nbest"]
    selected = json.loads((nbest_dir / f"{name}_{split}.spans.json").read_text())["spans"]
    extra = json.loads((nbest_dir / f"{name}_{split}.spanscores.json").read_text()) if with_spans else None
    cands_all, feats, gains = [], [], []
    for i, (row, e) in enumerate(zip(nbests, examples)):
        cands = [(t, lp / (n + 1), lp) for t, lp, n in row]
        if extra:
            seen = {t.lower() for t, _, _ in cands}
            cands += [(t, lp / (n + 1), lp) for t, lp, n in extra[i] if t.lower() not in seen]
        texts = [t.lower() for t, _, _ in cands]
        feats.append(np.array(features(texts, [c[1] for c in cands], [c[2] for c in cands], e.abstract,
                                       [(s, p) for s, p in selected[i]])))
        gains.append(np.array([rouge_l(e.title, t) for t in texts]))
        cands_all.append([t for t, _, _ in cands])
    return examples, cands_all, feats, gains


def pick(weights: dict, cands, feats, examples, shape_checks=None) -> list[str]:
    w = np.array([weights.get(f, 0.0) for f in FEATURES])
    picks = []
    for c, f, e in zip(cands, feats, examples):
        total = f @ w
        def key(i):
            bad = not well_formed(c[i].lower())
            if shape_checks:
                bad = bad or not word_shaped(c[i], e.abstract, shape_checks)
            return (bad, -total[i])
        picks.append(c[min(range(len(c)), key=key)])
    return picks


def bootstrap(a, b, n=2000, seed=0) -> tuple[float, float, float]:
    """mean(b - a) and its 95% interval, dev examples resampled."""
    d = np.asarray(b) - np.asarray(a)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n, len(d)))].mean(1)
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def per_example(refs, picks):
    return [100 * rouge_l(r, p) for r, p in zip(refs, picks)]


def rerank(args) -> None:
    preset = parse_weights(OmegaConf.load(REPO / "conf/decode/beam.yaml").rerank)
    rows = {}
    for with_spans in (False, True):
        if with_spans and not (args.nbest_dir / f"{args.name}_val.spanscores.json").is_file():
            continue
        val = lists(args.nbest_dir, args.name, "val", with_spans)
        dev = lists(args.nbest_dir, args.name, "dev", with_spans)
        tag = " + span candidates" if with_spans else ""
        settings = {"top 1 (beam search)": {"lp": 1.0}} if not with_spans else {}
        if not with_spans:
            settings["preset weights (with rule)"] = preset
        for label, use in [("tuned: lp logp len mbr span rule", ["lp", "logp", "len", "mbr", "span", "rule"]),
                           ("tuned: no rule, no sel", ["lp", "logp", "len", "mbr", "span"]),
                           ("tuned: sel replaces rule", ["lp", "logp", "len", "mbr", "span", "sel"]),
                           ("tuned: sel and rule", ["lp", "logp", "len", "mbr", "span", "rule", "sel"])]:
            settings[label + tag] = tune_weights(val[2], val[3], use=use, trials=args.trials)
        for label, weights in settings.items():
            for checks in (None, ("latin_cut", "start_inside", "end_inside", "repeated_piece")):
                full = label + (" + word-shaped first" if checks else "")
                rows[full] = {"weights": weights,
                              "val": pick(weights, val[1], val[2], val[0], checks),
                              "dev": pick(weights, dev[1], dev[2], dev[0], checks)}
        rows[f"oracle{tag}"] = {"weights": {}, "val": [c[int(np.argmax(g))] for c, g in zip(val[1], val[3])],
                                "dev": [c[int(np.argmax(g))] for c, g in zip(dev[1], dev[3])]}
        refs_val, refs_dev = [e.title for e in val[0]], [e.title for e in dev[0]]
        abstracts_dev = [e.abstract for e in dev[0]]
    top1 = per_example(refs_dev, rows["top 1 (beam search)"]["dev"])
    preset_dev = per_example(refs_dev, rows["preset weights (with rule)"]["dev"])
    print(f"| setting | val R-L | dev R-L | dev minus top 1 | dev minus preset weights | latin_cut | start_inside | "
          f"end_inside | repeated_piece | weights |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, row in rows.items():
        dev_scores = per_example(refs_dev, row["dev"])
        d1, d2 = bootstrap(top1, dev_scores), bootstrap(preset_dev, dev_scores)
        rates = shape_rates(row["dev"], abstracts_dev)
        print(f"| {label} | {score_corpus(refs_val, row['val'])['rouge-l']:.2f} | {np.mean(dev_scores):.2f} | "
              f"{d1[0]:+.2f} [{d1[1]:+.2f}, {d1[2]:+.2f}] | {d2[0]:+.2f} [{d2[1]:+.2f}, {d2[2]:+.2f}] | "
              + " | ".join(f"{rates[k]:.3f}" for k in rates)
              + " | " + ",".join(f"{k}:{v:.3g}" for k, v in row["weights"].items()) + " |")
    ref_rates = shape_rates(refs_dev, abstracts_dev)
    print("| references | | | | | " + " | ".join(f"{ref_rates[k]:.3f}" for k in ref_rates) + " | |")
    if args.dump_picks:
        Path(args.dump_picks).write_text(json.dumps({k: v["dev"] for k, v in rows.items()}, ensure_ascii=False))


def standalone(args) -> None:
    """The selector's top span as the title, beside the one-line rule, with the well-formedness rates."""
    from seq2seq_rdrop.metrics import rule_title

    for split in ("val", "dev"):
        examples = split_examples(split)
        refs, abstracts = [e.title for e in examples], [e.abstract for e in examples]
        selected = json.loads((args.nbest_dir / f"{args.name}_{split}.spans.json").read_text())["spans"]
        top = [row[0][0] if row else "" for row in selected]
        rule = [rule_title(a) for a in abstracts]
        d = bootstrap(per_example(refs, rule), per_example(refs, top))
        print(f"{split}: selector's top span R-L {score_corpus(refs, top)['rouge-l']:.2f}, rule "
              f"{score_corpus(refs, rule)['rouge-l']:.2f}, difference {d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}]; "
              f"length {np.mean([len(t) for t in top]):.1f} (references {np.mean([len(t) for t in refs]):.1f})")
        for label, titles in (("top span", top), ("rule", rule), ("references", refs)):
            print(f"  {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in shape_rates(titles, abstracts).items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("spans")
    s.add_argument("selector")
    s.add_argument("--split", choices=("val", "dev"), required=True)
    s.add_argument("--out", required=True)
    c = sub.add_parser("score")
    c.add_argument("checkpoint")
    c.add_argument("--spans", required=True)
    c.add_argument("--split", choices=("val", "dev"), required=True)
    c.add_argument("--out", required=True)
    r = sub.add_parser("rerank")
    r.add_argument("name")
    r.add_argument("--nbest-dir", type=Path, default=Path("outputs/tmp/nbest"))
    r.add_argument("--trials", type=int, default=2000)
    r.add_argument("--dump-picks", default=None, help="write the dev picks here (never commit: titles)")
    a = sub.add_parser("standalone")
    a.add_argument("name")
    a.add_argument("--nbest-dir", type=Path, default=Path("outputs/tmp/nbest"))
    args = parser.parse_args()
    {"spans": spans, "score": score, "rerank": rerank, "standalone": standalone}[args.command](args)


if __name__ == "__main__":
    main()
