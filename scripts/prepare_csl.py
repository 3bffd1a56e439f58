"""Turn public CSL releases into train.tsv / dev.tsv / test.tsv for `python train.py data.dir=DIR`.

    python scripts/prepare_csl.py SRC [SRC ...] --out DIR [--dev-size 1000] [--test-size 1000]
                                  [--discipline 工学 ...] [--seed 0] [--strict]

SRC files may be any mix of the layouts the training reader detects (seq2seq_rdrop/data.py):
title<TAB>abstract (CLGE `csl`), 'to title'<TAB>abstract<TAB>title (CSL benchmark `ts`),
title<TAB>abstract<TAB>keywords<TAB>discipline<TAB>category (the full CSL release), JSON lines with
"title" and "abst"/"abstract" (csl_title_public; an optional "discipline" field is read too).

What it does, in order:
  1. reads every pair (a malformed line is skipped and counted; --strict stops at it, naming file and line),
  2. normalises whitespace (every run of whitespace, tabs, newlines and full-width spaces included,
     becomes one space; ends stripped) and drops pairs whose title or abstract is then empty,
  3. with --discipline (repeatable), keeps the pairs labelled so: the full release's 4th or 5th column
     (the 13 fields such as 工学, or the 67 disciplines such as 计算机科学与技术; either matches),
     a JSON line's "discipline" or "category"; pairs from layouts without labels are dropped then,
     and counted,
  4. drops duplicates, first occurrence kept (files in the order given, lines in file order): a pair
     whose title, or whose abstract, matches one already kept. Matching ignores case, width (NFKC),
     whitespace and punctuation, so the same paper copied into two releases is caught. Hence no title
     and no abstract occurs in two splits (checked again after splitting),
  5. shuffles with --seed and cuts test (first --test-size), dev (next --dev-size), train (the rest),
  6. writes DIR/train.tsv, dev.tsv, test.tsv (title<TAB>abstract, UTF-8, no header) and
     DIR/stats.json (sources, counts, what was dropped and why, length percentiles in characters,
     disciplines per split).
The same sources, options and seed write byte-identical files. Stdlib only (no torch): seconds for
the full 396k-paper release.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from seq2seq_rdrop.data import FORMATS_HELP, DataError, _parse_line, data_lines, detect_layout

log = logging.getLogger("prepare_csl")

SPLITS = ("train", "dev", "test")
NO_DISCIPLINE = "(not given)"  # a pair whose layout carries no label
PERCENTILES = (5, 50, 95, 99)


@dataclass
class Pair:
    title: str
    abstract: str
    labels: tuple[str, ...] = ()  # the full release's columns 4 and 5 (discipline, category), when given


def normalise(text: str) -> str:
    """Every run of whitespace (str.isspace: tabs, newlines, U+3000, U+00A0 ...) -> one space; ends stripped."""
    return " ".join(text.split())


def match_key(text: str) -> bytes:
    """What two copies of one title (or abstract) share: NFKC, case-folded, letters and digits only
    (CJK characters are letters). A 16-byte digest, so 400k abstracts cost ~20 MB of keys."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(ch for ch in folded if ch.isalnum())
    return hashlib.blake2b(kept.encode("utf-8"), digest_size=16).digest()


def _labels(line: str, layout: str) -> tuple[str, ...]:
    """The field labels a line carries: the full release's columns 4 and 5, a JSON line's
    "discipline"/"category" fields; () for the layouts without any."""
    if layout == "tsv5":
        values = line.split("\t")[3:5]
    elif layout == "jsonl":
        obj = json.loads(line)
        values = [obj.get(k) for k in ("discipline", "category")]
    else:
        return ()
    return tuple(normalise(str(v)) if v is not None else "" for v in values)


def read_source(path: Path, strict: bool, source_stats: dict) -> list[Pair]:
    """Every pair in `path` (layout detected from its first non-empty line), whitespace normalised."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    pairs: list[Pair] = []
    layout = None
    lines = bad = 0
    for lineno, line in data_lines(path):
        try:
            if isinstance(line, DataError):
                raise line
            lines += 1
            if layout is None:
                layout = detect_layout(line)  # a one-column file (titles only) is refused here
            abstract, title = _parse_line(line, layout)
            labels = _labels(line, layout)
        except DataError as e:
            if strict or layout is None:
                raise DataError(f"{path}:{lineno}: {e}") from None
            bad += 1
            if bad <= 5:
                log.warning("%s:%d: skipped: %s", path, lineno, e)
            continue
        pairs.append(Pair(normalise(title or ""), normalise(abstract), labels))
    if layout is None:
        raise DataError(f"{path}: no pairs. {FORMATS_HELP}")
    if bad:
        log.warning("%s: skipped %d malformed line(s) of %d", path, bad, lines)
    source_stats.update(layout=layout, lines=lines, pairs=len(pairs), bad_lines=bad)
    return pairs


def clean(pairs: list[Pair], disciplines: set[str], dropped: Counter) -> list[Pair]:
    """Steps 2-4: drop empty, other-discipline and duplicate pairs (first occurrence kept). Linear:
    one hash-set lookup per title and per abstract."""
    titles: set[bytes] = set()
    abstracts: set[bytes] = set()
    kept: list[Pair] = []
    for p in pairs:
        if not p.title:
            dropped["empty_title"] += 1
            continue
        if not p.abstract:
            dropped["empty_abstract"] += 1
            continue
        if disciplines:
            if not any(p.labels):
                dropped["no_discipline"] += 1
                continue
            if not disciplines.intersection(p.labels):
                dropped["other_discipline"] += 1
                continue
        title_key, abstract_key = match_key(p.title), match_key(p.abstract)
        seen_title, seen_abstract = title_key in titles, abstract_key in abstracts
        if seen_title or seen_abstract:
            dropped["duplicate_pair" if seen_title and seen_abstract
                    else "duplicate_title" if seen_title else "duplicate_abstract"] += 1
            continue
        titles.add(title_key)
        abstracts.add(abstract_key)
        kept.append(p)
    return kept


def split(pairs: list[Pair], dev_size: int, test_size: int, seed: int) -> dict[str, list[Pair]]:
    if dev_size < 0 or test_size < 0:
        raise ValueError("--dev-size and --test-size must be >= 0")
    if dev_size + test_size >= len(pairs):
        raise ValueError(f"{len(pairs)} pairs left after cleaning: --dev-size {dev_size} + --test-size {test_size} "
                         f"would leave no training pairs")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    shuffled = [pairs[i] for i in order]
    return {"test": shuffled[:test_size], "dev": shuffled[test_size:test_size + dev_size],
            "train": shuffled[test_size + dev_size:]}


def drop_cross_split(splits: dict[str, list[Pair]], dropped: Counter) -> None:
    """Drop from dev and test (in place) any pair whose title or abstract matches one of another split.
    After clean()'s dedup nothing matches; this is the guarantee, kept explicit and counted."""
    for name in ("dev", "test"):
        others = [p for other in SPLITS if other != name for p in splits[other]]
        other_keys = {match_key(p.title) for p in others} | {match_key(p.abstract) for p in others}
        kept = [p for p in splits[name] if match_key(p.title) not in other_keys
                and match_key(p.abstract) not in other_keys]
        dropped["cross_split"] += len(splits[name]) - len(kept)
        splits[name] = kept


def length_stats(texts: list[str]) -> dict:
    if not texts:
        return {}
    lengths = sorted(len(t) for t in texts)
    stats = {"mean": round(sum(lengths) / len(lengths), 1)}
    for q in PERCENTILES:  # nearest rank
        stats[f"p{q}"] = lengths[min(len(lengths) - 1, max(0, -(-q * len(lengths) // 100) - 1))]
    stats["max"] = lengths[-1]
    return stats


def _label_counts(pairs: list[Pair], column: int) -> dict[str, int]:
    counts = Counter((p.labels[column] if len(p.labels) > column else "") or NO_DISCIPLINE for p in pairs)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def write_tsv(path: Path, pairs: list[Pair]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for p in pairs:
            f.write(f"{p.title}\t{p.abstract}\n")


def prepare(sources: list[str], out: Path, dev_size: int = 1000, test_size: int = 1000,
            disciplines: list[str] | None = None, seed: int = 0, strict: bool = False) -> dict:
    """Steps 1-6; returns stats.json's content."""
    wanted = {normalise(d) for d in disciplines or []}
    source_stats, pairs = [], []
    for src in sources:
        entry = {"file": str(src)}
        pairs += read_source(Path(src), strict, entry)
        source_stats.append(entry)
    dropped = Counter({k: 0 for k in ("bad_line", "empty_title", "empty_abstract", "no_discipline", "other_discipline",
                                      "duplicate_title", "duplicate_abstract", "duplicate_pair", "cross_split")})
    dropped["bad_line"] = sum(s["bad_lines"] for s in source_stats)
    read = len(pairs)
    labels_seen = Counter(label for p in pairs for label in p.labels if label) if wanted else None
    pairs = clean(pairs, wanted, dropped)
    if wanted and not pairs:
        common = ", ".join(label for label, _ in sorted(labels_seen.items(), key=lambda kv: (-kv[1], kv[0]))[:15])
        common = common or "none: no source names one"
        raise ValueError(f"no pair matches --discipline {' '.join(sorted(wanted))}; labels in the sources: {common}")
    if dropped["no_discipline"]:
        log.warning("--discipline: dropped %d pair(s) from sources whose layout names no discipline",
                    dropped["no_discipline"])
    splits = split(pairs, dev_size, test_size, seed)
    drop_cross_split(splits, dropped)
    out.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        write_tsv(out / f"{name}.tsv", splits[name])
    stats = {
        "command_options": {"dev_size": dev_size, "test_size": test_size, "discipline": sorted(wanted),
                            "seed": seed, "strict": strict},
        "sources": source_stats,
        "pairs_read": read,
        "dropped": dict(dropped),
        "splits": {name: len(splits[name]) for name in SPLITS},
        "lengths_chars": {name: {"title": length_stats([p.title for p in splits[name]]),
                                 "abstract": length_stats([p.abstract for p in splits[name]])} for name in SPLITS},
        "disciplines": {name: _label_counts(splits[name], 0) for name in SPLITS},
        "categories": {name: _label_counts(splits[name], 1) for name in SPLITS},
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=FORMATS_HELP)
    parser.add_argument("sources", nargs="+", metavar="SRC", help="pair files in any of the layouts above")
    parser.add_argument("--out", required=True, type=Path, help="directory for train/dev/test.tsv and stats.json")
    parser.add_argument("--dev-size", type=int, default=1000, help="dev pairs (default 1000)")
    parser.add_argument("--test-size", type=int, default=1000, help="test pairs (default 1000)")
    parser.add_argument("--discipline", action="append", default=[],
                        help="keep pairs labelled so only (the full release's column 4 or 5: a field such as 工学 "
                             "or a discipline such as 计算机科学与技术); repeatable")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    parser.add_argument("--strict", action="store_true", help="stop at the first malformed line instead of skipping it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        stats = prepare(args.sources, args.out, args.dev_size, args.test_size, args.discipline, args.seed, args.strict)
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"prepare_csl: {e}", file=sys.stderr)
        return 2
    dropped = {k: v for k, v in stats["dropped"].items() if v}
    print(f"read {stats['pairs_read']} pairs from {len(args.sources)} file(s); dropped {dropped or 'none'}")
    print(f"wrote {args.out}/: " + ", ".join(f"{name}.tsv {n}" for name, n in stats["splits"].items())
          + "; stats.json")
    print(f"train with: python train.py data.dir={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
