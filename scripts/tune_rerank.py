"""Choose decode.rerank's weights (seq2seq_rdrop/rerank.py) on a validation split the checkpoints never saw.

    python scripts/tune_rerank.py CHECKPOINT [CHECKPOINT ...] [--data ../shared/data/csl/train.tsv] [--last 300]
                                  [--beam-size 16] [--no-repeat-ngram 3] [--max-len N]
                                  [--features lp logp len mbr rule span sel]
                                  [--trials 2000] [--seed 0] [--out FILE.md]

The pairs: the last --last pairs of --data, by default the validation split of a run trained with
data.val_size=300 (+experiment=compare_converged); a checkpoint that trained on them is refused (its
train_config.yaml says data.val_size). Each checkpoint decodes its n-best (beam --beam-size, all of it
returned), the weights that maximise the mean ROUGE-L F1 of the picks over all checkpoints' lists together are
found by random search, and the table shows beam search's top 1, the re-ranked pick and the oracle (the
candidate closest to the reference: a bound) on these pairs. Use the printed setting as
`decode.rerank={...}` (generate.py, train.py, serve.py) or in a config (rerank: {rule: 1, ...}).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from seq2seq_rdrop.data import read_examples
from seq2seq_rdrop.decoding import generate
from seq2seq_rdrop.generation import TitleGenerator
from seq2seq_rdrop.metrics import METRIC_NAMES, rouge_l, score_corpus
from seq2seq_rdrop.reporting.decoding_tables import finish_report
from seq2seq_rdrop.rerank import FEATURES, NO_RERANK, features, format_weights, order_of, tune_weights
from seq2seq_rdrop.tokenizer import decode_ids


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    parser.add_argument("--data", default="../shared/data/csl/train.tsv")
    parser.add_argument("--last", type=int, default=300, help="the last N pairs of --data (the validation split)")
    parser.add_argument("--beam-size", type=int, default=16)
    parser.add_argument("--no-repeat-ngram", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=None, help="title tokens at most (default: the checkpoint's)")
    parser.add_argument("--features", nargs="+", choices=FEATURES, default=list(FEATURES),
                        help="sel needs checkpoints trained with selector=FILE (it is 0 otherwise)")
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    if args.last < 1 or args.beam_size < 2:
        parser.error("--last must be >= 1 and --beam-size >= 2 (a list to re-rank)")
    return args


def unseen_by(checkpoint: str, last: int) -> str | None:
    """Why `checkpoint` may have trained on the last `last` training pairs, or None when it left them out."""
    config = Path(checkpoint) / "train_config.yaml"
    if not config.is_file():
        return f"{config} is missing: cannot tell which pairs it trained on"
    val_size = OmegaConf.select(OmegaConf.load(config), "data.val_size", default=0) or 0
    return None if val_size >= last else f"{config}: data.val_size={val_size} < --last {last}: it trained on them"


def nbest_lists(checkpoint: str, examples, args) -> tuple[list, list, list]:
    """(features, gains, titles) of each example's n-best from `checkpoint`."""
    generator = TitleGenerator.from_pretrained(checkpoint)
    options = dict(generator.decode, beam_size=args.beam_size, num_return=args.beam_size,
                   no_repeat_ngram=args.no_repeat_ngram, rerank=NO_RERANK)
    options["max_len"] = args.max_len or options["max_len"]
    abstracts = [e.abstract for e in examples]
    rows = generate(generator.model, generator.tokenizer, abstracts, options, max_source_len=generator.max_source_len,
                    device=generator.device, progress=True)
    selector = getattr(generator.model, "content_selector", None)  # the sel feature's spans (selector.py)
    selected = selector.spans(abstracts) if selector else [()] * len(abstracts)
    feats, gains, titles = [], [], []
    for row, example, spans in zip(rows, examples, selected):
        texts = [decode_ids(generator.tokenizer, h.tokens) for h in row]
        feats.append(features(texts, [h.score for h in row], [h.log_prob for h in row], example.abstract, spans))
        gains.append([rouge_l(example.title, t) for t in texts])
        titles.append((texts, row))
    return feats, gains, titles


def table_rows(checkpoint: str, examples, titles, gains, feats, weights) -> list[str]:
    references = [e.title for e in examples]
    picks = {
        "top 1 (beam search)": [texts[0] for texts, _ in titles],
        "re-ranked": [texts[order_of(weights, texts, rows)[0]] for (texts, _), rows in zip(titles, feats)],
        "oracle (a bound)": [texts[max(range(len(g)), key=g.__getitem__)] for (texts, _), g in zip(titles, gains)],
    }
    rows = []
    for label, chosen in picks.items():
        scores = score_corpus(references, chosen)
        rows.append(f"| `{checkpoint}` | {label} | " + " | ".join(f"{scores[m]:.2f}" for m in METRIC_NAMES) + " |")
    return rows


def main(argv=None) -> int:
    args = arguments(argv)
    for checkpoint in args.checkpoints:
        if (reason := unseen_by(checkpoint, args.last)) is not None:
            print(f"error: {reason}", file=sys.stderr)
            return 2
    examples = read_examples(args.data)[-args.last:]
    decoded = {c: nbest_lists(c, examples, args) for c in args.checkpoints}
    weights = tune_weights([f for c in decoded for f in decoded[c][0]], [g for c in decoded for g in decoded[c][1]],
                           use=args.features, trials=args.trials, seed=args.seed)
    setting = format_weights(weights)
    lines = [f"data: the last {len(examples)} pairs of `{args.data}`; n-best of beam {args.beam_size}, no repeated "
             f"{args.no_repeat_ngram}-gram; features {', '.join(args.features)}; {args.trials} trials, seed {args.seed}",
             "", f"chosen: `decode.rerank={setting}`", "",
             "| checkpoint | pick | " + " | ".join(METRIC_NAMES) + " |", "|---|---|" + "---|" * len(METRIC_NAMES)]
    for checkpoint, (feats, gains, titles) in decoded.items():
        lines += table_rows(checkpoint, examples, titles, gains, feats, weights)
    return finish_report(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
