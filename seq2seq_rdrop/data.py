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
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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


# the data files a run reads, by option (data.train_file ...): what config_checks checks and run_config hashes
DATA_FILES = ("train_file", "dev_file", "test_file", "unlabeled_file")
READ_BLOCK = 1 << 16  # bytes of a line read at a time when its columns are cut (column_limit)
MAX_COLUMNS = 64  # a line cut by column_limit with more tab-separated columns than this is a bad line


def column_limit(*max_tokens: int) -> int:
    """Characters of a column (title, abstract) worth keeping when the model reads at most max(max_tokens)
    tokens of it: far more than those tokens can span (a token of CSL text is 1 to 4 characters; the margin
    covers long Latin words read as [UNK]), so normal data are read whole, while a 5 MB line is never held."""
    return 64 * max(max_tokens) + 4096


def regular_file_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as a data file ("no such file", "is a directory", "is a FIFO, not a regular
    file" ...; links followed), or None when it is a regular file. A FIFO or a device such as /dev/zero would
    make a reader wait forever or never reach the end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as e:
        return e.strerror or str(e)
    if stat.S_ISREG(mode):
        return None
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "a special file")
    return f"is {kind}, not a regular file"


def _cut_line(f, first: bytes, limit_bytes: int) -> bytes | DataError:
    """The line that began with `first` (a block without its end, or longer than limit_bytes), read a block at a
    time with each tab-separated column cut to `limit_bytes` (at a character boundary): the rest is read and
    dropped, never held. A DataError for more than MAX_COLUMNS columns, or for a JSON line that had to be cut
    (it cannot be parsed in part)."""
    columns, current, chunk, cut = [], bytearray(), first, False
    while chunk:
        for n, piece in enumerate(chunk.split(b"\t")):
            if n:  # a tab ends the current column
                columns.append(bytes(current))
                current = bytearray()
            room = limit_bytes - len(current)
            cut = cut or len(piece.rstrip(b"\r\n")) > room
            current += piece[:max(room, 0)]
        if chunk.endswith(b"\n") or len(columns) >= MAX_COLUMNS:
            break
        chunk = f.readline(READ_BLOCK)
    while chunk and not chunk.endswith(b"\n"):  # the rest of a line of too many columns
        chunk = f.readline(READ_BLOCK)
    if len(columns) >= MAX_COLUMNS:
        return DataError(f"more than {MAX_COLUMNS} tab-separated columns")
    if cut and first.lstrip(b"\xef\xbb\xbf \t").startswith(b"{"):
        return DataError(f"a JSON line with a field of more than {limit_bytes} bytes (more than the model reads; "
                         "JSON cannot be cut without reading it whole)")
    columns.append(bytes(current))
    return b"\t".join(_whole_characters(c.rstrip(b"\r\n"), limit_bytes) for c in columns)


def _whole_characters(column: bytes, limit_bytes: int) -> bytes:
    """A column cut at limit_bytes, less the start of a UTF-8 character the cut split."""
    if len(column) < limit_bytes:
        return column
    end = len(column)
    while end > 0 and len(column) - end < 4 and (column[end - 1] & 0xC0) == 0x80:
        end -= 1  # continuation bytes of a character cut short
    if end > 0 and column[end - 1] >= 0xC0:
        lead = column[end - 1]
        need = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        if len(column) - (end - 1) < need:
            return column[: end - 1]
    return column


def data_lines(path: Path, max_chars: int | None = None) -> Iterator[tuple[int, str | DataError]]:
    """(line number, text) of each non-blank line of `path`, read as bytes so that one bad line does not stop
    the rest; a line that is not UTF-8 comes as its DataError, which the reader raises or skips as it does its
    other bad lines (iter_examples here, scripts/prepare_csl.py). max_chars: each tab-separated column of a
    longer line is cut to that many characters as it is read (column_limit); None: lines are read whole."""
    limit_bytes = None if max_chars is None else 4 * max_chars  # UTF-8: at most 4 bytes a character
    with open(path, "rb") as f:
        lineno = 0
        while True:
            raw = f.readline() if limit_bytes is None else f.readline(READ_BLOCK)
            if not raw:
                return
            lineno += 1
            if limit_bytes is not None and ((len(raw) == READ_BLOCK and not raw.endswith(b"\n"))
                                            or len(raw) > limit_bytes):
                raw = _cut_line(f, raw, limit_bytes)
                if isinstance(raw, DataError):
                    yield lineno, raw
                    continue
            try:
                line = decode_line(raw)
            except DataError as e:
                yield lineno, e
                continue
            if max_chars is not None:
                line = "\t".join(column[:max_chars] for column in line.split("\t"))
            if line.strip():  # blank lines separate nothing; ignore them
                yield lineno, line


HEADERS = ("auto", True, False)  # data.header: detect a header line, the first line is one, there is none
# column names a header line may use (lower case): a first line made only of these is a header, not a pair
HEADER_WORDS = {"title", "titles", "abstract", "abstracts", "abst", "text", "content", "summary", "source", "target",
                "keywords", "keyword", "kw", "discipline", "category", "task", "prefix", "id",
                "标题", "题目", "摘要", "关键词", "学科", "类别", "门类"}


def is_header_line(line: str) -> bool:
    """A tab-separated line whose every column is a known column name (title<TAB>abstract, 标题<TAB>摘要 ...)."""
    columns = [c.strip().lower() for c in line.split("\t")]
    return all(c in HEADER_WORDS for c in columns)


@dataclass
class LoadStats:
    """What reading a file skipped: malformed lines (skip_bad_lines) and the header line, if any."""

    skipped: int = 0
    header_line: int | None = None
    layout: str | None = None  # detect_layout's, from the first line read as data


def _example(line: str, layout: str, lineno: int, require_title: bool) -> Example:
    abstract, title = _parse_line(line, layout)
    abstract = abstract.strip()
    title = None if title is None else title.strip()
    if not abstract:
        raise DataError("empty abstract")
    if require_title and not title:
        raise DataError("empty title")
    return Example(abstract=abstract, title=title, line=lineno)


def iter_examples(path: str | os.PathLike, skip_bad_lines: bool = False, require_title: bool = True,
                  allow_text: bool = False, header="auto", stats: LoadStats | None = None,
                  max_chars: int | None = None) -> Iterator[Example]:
    """The pairs of `path` one by one (so a large file is never held whole). The first non-empty line is
    skipped as a header when `header` is true, or "auto" and it is_header_line. A bad line raises
    DataError naming file and line, unless skip_bad_lines: then it is skipped, counted in `stats` and logged.
    max_chars: columns cut to that many characters as they are read (data_lines)."""
    path, stats = Path(path), stats if stats is not None else LoadStats()
    problem = regular_file_problem(path)
    if problem == "no such file":
        raise FileNotFoundError(f"{path}: no such file. {FORMATS_HELP}")
    if problem:
        raise DataError(f"{path} {problem}: give a data file")
    layout = None
    for lineno, line in data_lines(path, max_chars):
        try:
            if isinstance(line, DataError):
                raise line
            if layout is None and (header is True or (header == "auto" and is_header_line(line))):
                stats.header_line = lineno
                log.info("%s:%d: header line skipped (data.header=%s)", path, lineno, header)
                header = False
                continue
            layout = stats.layout = layout or detect_layout(line, allow_text=allow_text)
            yield _example(line, layout, lineno, require_title)
        except DataError as e:
            if not skip_bad_lines:
                raise DataError(f"{path}:{lineno}: {e} (set data.skip_bad_lines=true to skip such lines)") from None
            stats.skipped += 1
            log.warning("%s:%d: skipped: %s", path, lineno, e)


def read_examples(path: str | os.PathLike, skip_bad_lines: bool = False, require_title: bool = True,
                  allow_text: bool = False, header="auto", max_chars: int | None = None) -> list[Example]:
    """Every pair of `path` (iter_examples), with a summary in the log: pairs kept, lines skipped, and the
    pairs that repeat an earlier one (title and abstract; kept, as the data have them)."""
    stats = LoadStats()
    examples = list(iter_examples(path, skip_bad_lines, require_title, allow_text, header, stats, max_chars))
    if stats.skipped:
        log.warning("%s: skipped %d bad line(s), kept %d", path, stats.skipped, len(examples))
    if not examples:
        raise DataError(f"{path}: no usable examples. {FORMATS_HELP}")
    duplicates = len(examples) - len({(e.title, e.abstract) for e in examples})
    log.info("%s: %d examples (layout %s%s), %d duplicate pair(s)", path, len(examples), stats.layout,
             ", header line skipped" if stats.header_line else "", duplicates)
    return examples


def read_abstracts(path: str | os.PathLike, skip_bad_lines: bool = False, header="auto",
                   max_chars: int | None = None) -> list[str]:
    """The abstracts of `path` alone (data.unlabeled_file): one per line, or any layout above, whose
    titles are dropped here, so no title of the file reaches training."""
    return [e.abstract for e in read_examples(path, skip_bad_lines=skip_bad_lines, require_title=False,
                                              allow_text=True, header=header, max_chars=max_chars)]


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
