"""Reading abstract/title pairs in the layouts CSL is published in, and batching them.

Layouts (detected from the file's first non-empty line):
- `tsv2`   : title<TAB>abstract                      (CLGE csl task files, ../shared/data/csl)
- `tsv3`   : to title<TAB>abstract<TAB>title          (CSL benchmark `ts` task; the first column is a task prefix)
- `tsv5`   : title<TAB>abstract<TAB>keywords<TAB>discipline<TAB>category   (full CSL release)
- `jsonl`  : {"title": ..., "abst" | "abstract": ...} per line  (csl_title_public)
- `text`   : one abstract per line, no title (generation input, data.unlabeled_file)
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LAYOUT_COLUMNS = {"tsv2": 2, "tsv3": 3, "tsv5": 5}
FORMATS_HELP = (
    "Formats read: title<TAB>abstract (.tsv), 'to title'<TAB>abstract<TAB>title (CSL benchmark), "
    "title<TAB>abstract<TAB>keywords<TAB>discipline<TAB>category (full CSL release), "
    'or JSON lines {"title": ..., "abst"/"abstract": ...}.'
)


class DataError(ValueError):
    """A malformed input line; the message names the file and line."""


@dataclass
class Example:
    abstract: str
    title: str | None  # None when the input carries no reference title
    line: int  # 1-based line number in its file, for messages and ids


def detect_layout(first_line: str, allow_text: bool = False) -> str:
    stripped = first_line.strip()
    if stripped.startswith("{"):
        return "jsonl"
    n_cols = len(first_line.rstrip("\r\n").split("\t"))
    for layout, cols in LAYOUT_COLUMNS.items():
        if n_cols == cols:
            return layout
    if n_cols == 1 and allow_text:
        return "text"
    raise DataError(f"cannot tell the layout from a line with {n_cols} tab-separated columns. {FORMATS_HELP}")


def _parse_line(line: str, layout: str) -> tuple[str, str | None]:
    """Return (abstract, title) or raise DataError with the reason (file/line are added by the caller)."""
    if layout == "jsonl":
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise DataError("a JSON line must be an object")
        abstract = obj.get("abst", obj.get("abstract"))
        if abstract is None:
            raise DataError("JSON object has no 'abst' or 'abstract' field")
        title = obj.get("title")
        return str(abstract), (None if title is None else str(title))
    if layout == "text":
        return line, None
    cols = line.split("\t")
    want = LAYOUT_COLUMNS[layout]
    if len(cols) != want:
        raise DataError(f"expected {want} tab-separated columns ({layout}), found {len(cols)}")
    if layout == "tsv3":
        return cols[1], cols[2]
    return cols[1], cols[0]  # tsv2 and tsv5 both start with title, abstract


def decode_line(raw: bytes) -> str:
    """One raw line -> its text without a byte-order mark and line end; DataError if it is not UTF-8."""
    try:
        return raw.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise DataError(f"undecodable bytes (not UTF-8) at byte {e.start}") from None


def read_examples(
    path: str | os.PathLike,
    skip_bad_lines: bool = False,
    require_title: bool = True,
    allow_text: bool = False,
) -> list[Example]:
    """Read every pair in `path`. A bad line raises DataError naming file and line,
    unless skip_bad_lines, in which case it is skipped and counted in the log."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file. {FORMATS_HELP}")
    examples: list[Example] = []
    layout = None
    skipped = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = decode_line(raw)
                if not line.strip():
                    continue  # blank lines separate nothing; ignore them
                if layout is None:
                    layout = detect_layout(line, allow_text=allow_text)
                abstract, title = _parse_line(line, layout)
                abstract = abstract.strip()
                title = None if title is None else title.strip()
                if not abstract:
                    raise DataError("empty abstract")
                if require_title and not title:
                    raise DataError("empty title")
            except DataError as e:
                if not skip_bad_lines:
                    raise DataError(f"{path}:{lineno}: {e} (set data.skip_bad_lines=true to skip such lines)") from None
                skipped += 1
                log.warning("%s:%d: skipped: %s", path, lineno, e)
                continue
            examples.append(Example(abstract=abstract, title=title, line=lineno))
    if skipped:
        log.warning("%s: skipped %d bad line(s), kept %d", path, skipped, len(examples))
    if not examples:
        raise DataError(f"{path}: no usable examples. {FORMATS_HELP}")
    log.info("%s: %d examples (layout %s)", path, len(examples), layout)
    return examples


def read_abstracts(path: str | os.PathLike, skip_bad_lines: bool = False) -> list[str]:
    """The abstracts of `path` alone (data.unlabeled_file): one per line, or any layout above, whose
    titles are dropped here, so no title of the file reaches training."""
    return [e.abstract for e in read_examples(path, skip_bad_lines=skip_bad_lines, require_title=False,
                                              allow_text=True)]


def resolve_data_dir(configured: str | None) -> Path:
    """data.dir if set, else $CSL_DATA_DIR, else data/csl, else ../shared/data/csl."""
    candidates = [configured] if configured else [os.environ.get("CSL_DATA_DIR"), "data/csl", "../shared/data/csl"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c).resolve()
    tried = ", ".join(str(c) for c in candidates if c)
    raise FileNotFoundError(
        f"no CSL data directory found (tried: {tried}). Put train.tsv and dev.tsv in data/csl/, "
        f"or set CSL_DATA_DIR, or pass data.dir=PATH. {FORMATS_HELP}"
    )
