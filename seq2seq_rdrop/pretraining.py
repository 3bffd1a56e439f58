"""In-domain self-supervised pretraining on text we are allowed to train on.

Two objectives turn unlabelled text into (source, target) pairs that the ordinary training loop
(training.py) fits exactly like abstract -> title pairs, so the pretrained checkpoint is a normal
model directory that `train.py model.pretrained=PATH` starts from:

- title denoising (titles_only.txt and the training titles): the source is the title with spans
  deleted and chunks reordered, set between sentences taken from training abstracts; the target
  is the clean title. Teaches the title "language" and copying the right characters in order,
  from 3x more titles than the labelled pairs hold.
- gap sentences (training abstracts, PEGASUS-style): one sentence of an abstract is removed and
  is the target; the rest of the abstract is the source. Teaches short summaries of abstract text.

Dev text is never used. The training file's last `exclude_last` pairs (the held-out test split
of `data.holdout_test`) and, before them, the `data.val_size` pairs of the validation split are left out too. Pretraining chooses its checkpoint on a held-out part
of the pseudo pairs, never on CSL dev. With `train_titles=N` (semi-supervised runs, whose labelled
pairs are the first N) only the first N training pairs' titles are read: the other titles are
withheld, also where a copy sits in the title-only file; every training abstract is still used.
"""
from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path

from .data import Example, read_examples

log = logging.getLogger(__name__)

SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")


def split_sentences(text: str, min_chars: int = 4) -> list[str]:
    """Split at Chinese/ASCII sentence ends, keeping the punctuation; drop fragments under min_chars."""
    return [s.strip() for s in SENTENCE_END.split(text) if len(s.strip()) >= min_chars]


def read_lines(path: Path) -> list[str]:
    """One text per non-empty line (titles_only.txt), read by data.py's reader: bad lines name file and line."""
    return [e.abstract for e in read_examples(path, require_title=False, allow_text=True)]


def noisy_title(title: str, rng: random.Random, delete_ratio: float, shuffle_prob: float) -> str:
    """Delete short spans (about `delete_ratio` of the characters) and, with `shuffle_prob`,
    swap the order of two chunks, so the model must rebuild the title rather than copy it verbatim."""
    chars = list(title)
    to_delete = int(round(delete_ratio * len(chars)))
    while to_delete > 0 and len(chars) > 2:
        span = min(to_delete, rng.randint(1, 3), len(chars) - 2)
        start = rng.randrange(0, len(chars) - span + 1)
        del chars[start:start + span]
        to_delete -= span
    if len(chars) >= 4 and rng.random() < shuffle_prob:
        cut = rng.randrange(1, len(chars))
        chars = chars[cut:] + chars[:cut]
    return "".join(chars)


def title_denoising_pairs(titles: list[str], context_sentences: list[str], rng: random.Random,
                          delete_ratio: float = 0.2, shuffle_prob: float = 0.3, context_prob: float = 0.7) -> list[Example]:
    """(noisy title set between abstract sentences) -> title."""
    pairs = []
    for title in titles:
        parts = [noisy_title(title, rng, delete_ratio, shuffle_prob) + "。"]
        if context_sentences and rng.random() < context_prob:
            parts.insert(0, rng.choice(context_sentences))
        if context_sentences and rng.random() < context_prob:
            parts.append(rng.choice(context_sentences))
        pairs.append(Example(abstract="".join(parts), title=title, line=0))
    return pairs


def gap_sentence_pairs(abstracts: list[str], rng: random.Random, per_abstract: int = 2,
                       min_len: int = 8, max_len: int = 48) -> list[Example]:
    """(abstract without one sentence) -> that sentence, for up to `per_abstract` sentences each."""
    pairs = []
    for abstract in abstracts:
        sentences = split_sentences(abstract)
        candidates = [i for i, s in enumerate(sentences) if min_len <= len(s) <= max_len]
        if len(sentences) < 2 or not candidates:
            continue
        for i in rng.sample(candidates, min(per_abstract, len(candidates))):
            rest = "".join(s for j, s in enumerate(sentences) if j != i)
            pairs.append(Example(abstract=rest, title=sentences[i].rstrip("。！？；!?;"), line=0))
    return pairs


def build_pretraining_pairs(train_examples: list[Example], titles: list[str], seed: int, title_denoise: bool = True,
                            gap_sentence: bool = True, title_copies: int = 1, gap_per_abstract: int = 2,
                            delete_ratio: float = 0.2, shuffle_prob: float = 0.3,
                            context_prob: float = 0.7, train_titles: int | None = None) -> list[Example]:
    """All pseudo pairs, shuffled. `titles` holds title-only text (already filtered against dev and the
    withheld titles); of the training pairs' titles only the first `train_titles` are used (None: all)."""
    if not (title_denoise or gap_sentence):
        raise ValueError("pretrain: enable at least one of pretrain.title_denoise, pretrain.gap_sentence")
    rng = random.Random(seed)
    abstracts = [e.abstract for e in train_examples]
    pairs: list[Example] = []
    if title_denoise:
        context = [s for a in abstracts for s in split_sentences(a)]
        all_titles = titles + [e.title for e in train_examples[:train_titles]]
        for _ in range(title_copies):  # each copy draws fresh noise
            pairs += title_denoising_pairs(all_titles, context, rng, delete_ratio, shuffle_prob, context_prob)
    if gap_sentence:
        pairs += gap_sentence_pairs(abstracts, rng, per_abstract=gap_per_abstract)
    rng.shuffle(pairs)
    return pairs


def write_pairs(path: Path, pairs: list[Example]) -> None:
    """title<TAB>abstract, the layout read_examples reads back."""
    def clean(s: str) -> str:
        return s.replace("\t", " ").replace("\n", " ")

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:  # line by line: no copy of the whole file in memory
        for p in pairs:
            f.write(f"{clean(p.title)}\t{clean(p.abstract)}\n")


def prepare(cfg, data_dir: Path, out_dir: Path) -> tuple[Path, int, int]:
    """Write the pseudo pairs as out_dir/train.tsv and out_dir/heldout.tsv; return (dir, n_train, n_heldout)."""
    pretrain_cfg = cfg.pretrain
    train_examples = read_examples(data_dir / cfg.data.train_file, skip_bad_lines=cfg.data.skip_bad_lines,
                                   header=cfg.data.get("header", "auto"))
    # the held-out test pairs and the validation split (data.val_size) stay unseen
    withheld = int(pretrain_cfg.exclude_last or 0) + int(cfg.data.get("val_size") or 0)
    if withheld:
        train_examples = train_examples[:-withheld]
    unseen_titles: set[str] = set()
    if cfg.data.dev_file and (data_dir / cfg.data.dev_file).is_file():
        dev = read_examples(data_dir / cfg.data.dev_file, skip_bad_lines=True)
        unseen_titles = {e.title for e in dev}
    train_titles = pretrain_cfg.get("train_titles")
    if train_titles is not None:  # the unlabelled pairs' titles stay unseen, in the title-only file too
        unseen_titles |= {e.title for e in train_examples[train_titles:]}
    titles: list[str] = []
    if pretrain_cfg.titles_file:
        titles_path = data_dir / pretrain_cfg.titles_file
        if not titles_path.is_file():
            raise FileNotFoundError(f"pretrain.titles_file={pretrain_cfg.titles_file}: {titles_path} does not exist "
                                    f"(set pretrain.titles_file=null to pretrain on the training split only)")
        titles = read_lines(titles_path)
        leaked = [t for t in titles if t in unseen_titles]
        if leaked:  # never pretrain on dev text, even if a copy of it sits in the title-only file
            log.warning("pretrain: dropped %d title(s) that also appear in dev (or are withheld: "
                        "pretrain.train_titles)", len(leaked))
            titles = [t for t in titles if t not in unseen_titles]
    pairs = build_pretraining_pairs(
        train_examples, titles, seed=cfg.seed, title_denoise=pretrain_cfg.title_denoise,
        gap_sentence=pretrain_cfg.gap_sentence, title_copies=pretrain_cfg.title_copies,
        gap_per_abstract=pretrain_cfg.gap_per_abstract, delete_ratio=pretrain_cfg.delete_ratio,
        shuffle_prob=pretrain_cfg.shuffle_prob, context_prob=pretrain_cfg.context_prob, train_titles=train_titles)
    heldout = min(int(pretrain_cfg.heldout), len(pairs) // 10)
    if heldout < 1:
        raise ValueError(f"pretrain: only {len(pairs)} pseudo pairs, too few to hold any out")
    write_pairs(out_dir / "train.tsv", pairs[heldout:])
    write_pairs(out_dir / "heldout.tsv", pairs[:heldout])
    log.info("pretrain: %d pseudo pairs (%d held out for checkpoint selection) from %d titles and %d abstracts",
             len(pairs), heldout, len(titles) + len(train_examples[:train_titles]), len(train_examples))
    return out_dir, len(pairs) - heldout, heldout


def pretrain(cfg, out_dir) -> dict:
    """Build the pseudo pairs into out_dir/pretrain_data/ and train on them with the ordinary loop.
    The best model (chosen on held-out pseudo pairs) lands in out_dir/checkpoint/."""
    from .config_checks import validate
    from .run_dir import owned_run_dir

    validate(cfg)  # every option, before the pseudo pairs are built (config_checks.py)
    out_dir = Path(out_dir)
    # the directory is claimed before the pseudo pairs are written into it (train() re-enters the claim)
    with owned_run_dir(out_dir, cfg.trainer.resume, bool(cfg.trainer.get("overwrite"))):
        return _pretrain(cfg, out_dir)


def _pretrain(cfg, out_dir: Path) -> dict:
    from omegaconf import OmegaConf, open_dict

    from .data import resolve_data_dir
    from .training import train

    data_dir, n_train, n_heldout = prepare(cfg, resolve_data_dir(cfg.data.dir), out_dir / "pretrain_data")
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # exclude_last etc. resolved first
    with open_dict(cfg):
        cfg.data.update(dir=str(data_dir), train_file="train.tsv", dev_file="heldout.tsv", test_file=None,
                        holdout_test=0, val_size=0, unlabeled_file=None)
    metrics = train(cfg, out_dir)
    if metrics:
        # metrics.json's "dev" is the held-out pseudo pairs here; say so, with what was built
        metrics["pretrain"] = {"pairs": n_train, "heldout": n_heldout, "dev_means": "held-out pseudo pairs",
                               **OmegaConf.to_container(cfg.pretrain)}
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
        print(f"('dev' above = {n_heldout} held-out pseudo pairs, not CSL dev)\n"
              f"pretrained on {n_train} pseudo pairs; fine-tune with:\n"
              f"  python train.py model.pretrained={out_dir / 'checkpoint'}")
    return metrics
