"""Titles for new abstracts: the `TitleGenerator` API, and the input/output helpers of generate.py.

    from seq2seq_rdrop import TitleGenerator
    gen = TitleGenerator.from_pretrained("outputs/runs/.../checkpoint")
    gen.generate(["摘要……"], beam_size=3)                    # ["标题"]
    gen.generate(["摘要……"], return_scores=True)              # [("标题", -0.41)]
    gen.generate(["摘要……"], beam_size=4, num_return=2)       # [["标题", "另一个标题"]]
    gen.generate(["摘要……"], strategy="sample", top_p=0.9, num_return=5, seed=1)   # five sampled titles
    gen.generate(["摘要……"], beam_size=5, beam_groups=5, diversity_penalty=1.0, num_return=5)  # diverse beams

A score is the hypothesis' length-normalised log-probability, what beam search ranks by
(sum of token log-probs / length ** length_penalty); higher is better. With diversity_penalty or
repetition_penalty the log-probs summed are the penalised ones (as Hugging Face's sequence scores).

Decoding settings and max_source_len are the checkpoint's own (its generation_config.json: what the
training run was scored with), unless given; titles keep the abstract's case where their words occur in
it (`keep_case`; the model itself writes lower case).

torch and transformers are imported only when a model is loaded, so that reading and checking an
input file (and the errors generate.py reports about it) stay fast.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from .checkpoints import (CheckpointError, check_checkpoint_dir, check_tokenizer_fits, loading_checkpoint,
                          read_generation_config)
from .data import FORMATS_HELP, DataError, Example, iter_examples
from .decode_options import DEFAULT_DECODE, LATER_DECODE_DEFAULTS
from .decode_options import check as check_decode
from .decode_options import check_fits as check_decode_fits
from .errors import ConfigError, one_line, show

log = logging.getLogger(__name__)

# where a checkpoint does not say (conf/data/csl.yaml and conf/generate.yaml repeat them; tests/test_generate.py
# asserts that they agree); the decoding options' defaults: decode_options.DEFAULT_DECODE
DEFAULT_MAX_SOURCE_LEN = 128
DEFAULT_BATCH_SIZE = 32


class GenerationError(ValueError):
    """A problem with a checkpoint, an input or an option; the message is one line."""


# --------------------------------------------------------------------------------------- options


def decode_options(overrides: dict | None = None, base: dict | None = None) -> dict:
    """DEFAULT_DECODE (or `base`) updated with `overrides` (None values ignored), checked."""
    opts = dict(DEFAULT_DECODE if base is None else base)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_DECODE:
            raise GenerationError(f"unknown decoding option {key!r}; known: {', '.join(DEFAULT_DECODE)}")
        if value is not None:
            opts[key] = value
    try:
        return check_decode(opts)
    except ConfigError as e:
        raise GenerationError(str(e)) from None


@dataclass
class CheckpointSettings:
    """What a checkpoint says about generating with it, and where that came from."""

    decode: dict  # every option of DEFAULT_DECODE
    max_source_len: int
    source: str  # the file read, or "defaults"
    defaulted: tuple[str, ...] = ()  # what nothing in the checkpoint said: the built-in default is used


def checkpoint_settings(path: str | Path) -> CheckpointSettings:
    """The decoding options and max_source_len a checkpoint was scored with (_saved_settings), checked:
    a bad value in the checkpoint's files is a GenerationError naming the file, not the user's options."""
    settings = _saved_settings(Path(path))
    try:
        check_decode(dict(settings.decode))
        if isinstance(settings.max_source_len, bool) or not isinstance(settings.max_source_len, int) \
                or settings.max_source_len < 1:
            raise ConfigError(f"data.max_source_len={show(settings.max_source_len)}: a positive integer is required")
    except ConfigError as e:
        raise GenerationError(f"checkpoint directory {path} cannot be loaded ({Path(settings.source).name}: "
                              f"{e})") from None
    return settings


def _saved_settings(path: Path) -> CheckpointSettings:
    """Its generation_config.json; else (older checkpoints, a run's state/model) the run's config,
    train_config.yaml or the run's config_resolved.yaml, read as written (an ${...} interpolation in it is
    never resolved); else the defaults, which `defaulted` lists."""
    try:
        saved = read_generation_config(path)
    except CheckpointError as e:
        raise GenerationError(str(e)) from None
    if saved is not None:
        decode, max_source_len = saved
        defaulted = () if max_source_len else ("max_source_len",)
        return CheckpointSettings({**DEFAULT_DECODE, **decode}, max_source_len or DEFAULT_MAX_SOURCE_LEN,
                                  str(path / "generation_config.json"), defaulted)
    candidates = [path / "train_config.yaml"]
    if path.name == "model" and path.parent.name in ("state", ".state.old"):
        candidates.append(path.parent.parent / "config_resolved.yaml")
    config_file = next((c for c in candidates if c.is_file()), None)
    if config_file is not None:
        from omegaconf import OmegaConf

        try:
            run_cfg = OmegaConf.to_container(OmegaConf.load(config_file), resolve=False)
        except Exception:  # an unreadable config only loses the settings, not the run
            log.warning("%s: unreadable", config_file)
            run_cfg = None
        if isinstance(run_cfg, dict):
            decode = {k: v for k, v in (run_cfg.get("decode") or {}).items() if k in DEFAULT_DECODE and v is not None}
            max_source_len = (run_cfg.get("data") or {}).get("max_source_len")
            defaulted = _unsaid(decode) + (() if max_source_len else ("max_source_len",))
            return CheckpointSettings({**DEFAULT_DECODE, **decode}, max_source_len or DEFAULT_MAX_SOURCE_LEN,
                                      str(config_file), defaulted)
    return CheckpointSettings(dict(DEFAULT_DECODE), DEFAULT_MAX_SOURCE_LEN, "defaults",
                              (*_unsaid({}), "max_source_len"))


def _unsaid(decode: dict) -> tuple[str, ...]:
    """The options a checkpoint's `decode` does not give whose default may differ from how its run decoded."""
    return tuple(k for k in DEFAULT_DECODE if k not in decode and k not in LATER_DECODE_DEFAULTS)


def checkpoint_max_source_len(path: str | Path) -> int | None:
    """max_source_len the checkpoint was trained and scored with, if it says (checkpoint_settings)."""
    settings = checkpoint_settings(path)
    return None if "max_source_len" in settings.defaulted else settings.max_source_len


def warn_about_defaults(path, settings: CheckpointSettings, given: dict) -> None:
    """One warning naming the settings that fall back to built-in defaults (not given, not in the checkpoint)."""
    fallen = [k for k in settings.defaulted if given.get(k) is None]
    if not fallen:
        if settings.source != "defaults" and not settings.source.endswith("generation_config.json"):
            log.info("%s: no generation_config.json; settings from %s", path, settings.source)
        return
    values = {**settings.decode, "max_source_len": settings.max_source_len}
    where = "has no generation_config.json" + ("" if settings.source == "defaults" else f" and {settings.source} lacks them")
    log.warning("checkpoint %s %s: using the defaults %s (set them as the model was trained, e.g. "
                "max_source_len=N decode.beam_size=K)", path, where,
                ", ".join(f"{'' if k == 'max_source_len' else 'decode.'}{k}={show(values[k])}" for k in fallen))


# --------------------------------------------------------------------------------------- the API


class TitleGenerator:
    """A trained title model with its tokenizer, ready to title raw abstracts."""

    def __init__(self, model, tokenizer, device="cpu", max_source_len: int = DEFAULT_MAX_SOURCE_LEN,
                 decode: dict | None = None, keep_case: bool = True):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        if not isinstance(max_source_len, int) or isinstance(max_source_len, bool) or max_source_len < 1:
            raise GenerationError(f"max_source_len={max_source_len!r}: a positive integer is required")
        self.max_source_len = max_source_len
        self.decode = decode_options(decode)
        self.keep_case = bool(keep_case)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto", max_source_len: int | None = None,
                        keep_case: bool = True, **decode) -> "TitleGenerator":
        """Load a checkpoint directory (a training run's checkpoint/ or state/model).
        max_source_len and the decoding options (keyword arguments beam_size=..., max_len=...; None or left
        out = the checkpoint's): what is given, else what the checkpoint was scored with (generation_config.json,
        else the run's train_config.yaml), else the defaults, with a warning naming them.
        keep_case: titles take the abstract's case where their words occur in it (MRI, IPv6)."""
        try:
            path = check_checkpoint_dir(path)
        except (FileNotFoundError, CheckpointError) as e:
            raise GenerationError(str(e)) from None
        settings = checkpoint_settings(path)
        given = {**decode, "max_source_len": max_source_len}
        decode = decode_options(decode, base=settings.decode)  # option errors before the (slow) model load
        warn_about_defaults(path, settings, given)
        if max_source_len is None:
            max_source_len = settings.max_source_len

        from transformers.utils import logging as hf_logging

        from .distributed import pick_device
        from .models import load_model
        from .tokenizer import load_tokenizer

        try:
            torch_device = pick_device(device, option="device")
        except (ValueError, RuntimeError) as e:
            raise GenerationError(str(e)) from None

        was_enabled = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar for a small local checkpoint
        try:
            with loading_checkpoint(path):
                tokenizer = load_tokenizer(path)
                model = load_model(path, tokenizer)
                check_tokenizer_fits(tokenizer, model)
        except CheckpointError as e:
            raise GenerationError(str(e)) from None
        finally:
            if was_enabled:
                hf_logging.enable_progress_bar()
        return cls(model, tokenizer, torch_device, max_source_len, decode, keep_case=keep_case)

    def options(self, **decode) -> dict:
        """The decoding options hypotheses() uses for these keyword overrides (None: as loaded), checked as
        hypotheses() checks them: GenerationError with generate.py's one-line message. The server checks a
        request with it before queueing it."""
        opts = decode_options(decode, base=self.decode)
        self._check_positions(opts["max_len"])
        return opts

    def _check_positions(self, max_len: int) -> None:
        """A clear error instead of an index error deep in the model when the lengths cannot fit (the family's
        check_positions)."""
        try:
            self.model.check_positions(self.max_source_len, max_len)
        except ValueError as e:
            raise GenerationError(str(e)) from None

    def count_truncated(self, abstracts: Sequence[str]) -> int:
        """How many abstracts are longer than max_source_len tokens (they are cut to it)."""
        return sum(n > self.max_source_len for n in self._lengths(abstracts))

    def _lengths(self, abstracts: Sequence[str]) -> list[int]:
        """Token counts, up to max_source_len + 1 (one more: cut): never a long abstract tokenized whole."""
        from .tokenizer import encode_text

        return [len(encode_text(self.tokenizer, a, self.max_source_len + 1)) for a in abstracts]

    def hypotheses(self, abstracts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False,
                   keep_case: bool | None = None, warn_truncated: bool = True, **decode) -> list[list[tuple[str, float]]]:
        """For each abstract its decode.num_return best (title, score) pairs, best first.
        Over-long abstracts are truncated, with one warning for the whole call (warn_truncated=False: none;
        self.last_truncated counts them). keep_case: None = as set at loading (default true: words of the
        abstract keep its case in the title)."""
        from .decoding import generate, phase
        from .tokenizer import decode_ids, restore_case

        keep_case = self.keep_case if keep_case is None else bool(keep_case)
        opts = decode_options(decode, base=self.decode)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise GenerationError(f"batch_size={batch_size!r}: a positive integer is required")
        abstracts = checked_abstracts(abstracts)
        self.last_truncated = 0
        if not abstracts:
            return []
        self._check_positions(opts["max_len"])
        with phase("tokenize"):
            lengths = self._lengths(abstracts)
        try:
            check_decode_fits(self.model, opts, min(batch_size, len(abstracts)),
                              min(max(lengths), self.max_source_len) + 2, self.device)
        except ValueError as e:
            raise GenerationError(str(e)) from None
        truncated = self.last_truncated = sum(n > self.max_source_len for n in lengths)
        if truncated and warn_truncated:
            log.warning("%d of %d abstract(s) longer than max_source_len=%d tokens were truncated",
                        truncated, len(abstracts), self.max_source_len)
        hyps = generate(self.model, self.tokenizer, abstracts, opts, batch_size=batch_size,
                        max_source_len=self.max_source_len, device=self.device, progress=progress)

        def title(tokens, abstract):
            text = decode_ids(self.tokenizer, tokens)
            return restore_case(text, abstract) if keep_case else text

        with phase("detokenize"):
            return [[(title(h.tokens, abstract), float(h.score)) for h in row] for row, abstract in zip(hyps, abstracts)]

    def generate(self, abstracts: str | Sequence[str], beam_size: int | None = None, num_return: int | None = None,
                 return_scores: bool = False, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False,
                 keep_case: bool | None = None, **decode):
        """Titles for `abstracts` (a list, or one string for one result).

        Each result is a title (str), or a (title, score) pair with return_scores=True; with
        num_return > 1 it is a list of those, best first. Other keyword arguments are decoding
        options (None or left out: the checkpoint's): max_len, min_len, length_penalty, no_repeat_ngram,
        use_cache, repetition_penalty; strategy="sample" with temperature, top_k, top_p, seed (num_return
        samples, best scored first); beam_groups and diversity_penalty (diverse beam search)."""
        single = isinstance(abstracts, str)
        rows = self.hypotheses([abstracts] if single else abstracts, batch_size=batch_size, progress=progress,
                               keep_case=keep_case, beam_size=beam_size, num_return=num_return, **decode)
        n_best = decode_options({**decode, "beam_size": beam_size, "num_return": num_return},
                                base=self.decode)["num_return"]
        results = []
        for row in rows:
            items = row if return_scores else [title for title, _ in row]
            results.append(list(items) if n_best > 1 else items[0])
        return results[0] if single else results

    __call__ = generate


def checked_abstracts(abstracts) -> list[str]:
    """`abstracts` as a list of non-empty strings, or GenerationError naming what is not: the argument
    itself (None, a mapping, bytes, a number), or the position and type of an abstract that is not text."""
    if isinstance(abstracts, (bytes, bytearray, dict)) or not hasattr(abstracts, "__iter__") \
            or hasattr(abstracts, "keys"):
        raise GenerationError(f"abstracts must be a string or a list of strings, not {type(abstracts).__name__}")
    abstracts = list(abstracts)
    for i, text in enumerate(abstracts):
        if not isinstance(text, str) or not text.strip():
            raise GenerationError(f"abstract {i + 1} is {'empty' if isinstance(text, str) else type(text).__name__}:"
                                  " every abstract must be non-empty text")
        problem = not_text(text)
        if problem:
            raise GenerationError(f"abstract {i + 1} {problem}")
    return abstracts


def not_text(text: str) -> str | None:
    """What keeps `text` from being text the tokenizer takes, or None. A Python string can hold a lone surrogate
    (U+D800..U+DFFF: JSON's "\\ud800" escape, or bytes read with errors="surrogateescape"), which is no Unicode
    character: the tokenizer raises a TypeError deep inside on it. Every other code point encodes (the tokenizer
    maps what it does not know to [UNK])."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return (f"holds U+{ord(text[e.start]):04X} at character {e.start + 1}, a lone surrogate code point that is "
                "not text: send the abstract as valid Unicode (UTF-8)")
    return None



# --------------------------------------------------------------------------------------- input


@contextmanager
def _renamed_in_logs(logger: logging.Logger, old: str, new: str):
    """Messages of `logger` show `new` where they would show the temporary path `old`."""

    def rename(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if old in message:
            record.msg, record.args = message.replace(old, new), ()
        return True

    logger.addFilter(rename)
    try:
        yield
    finally:
        logger.removeFilter(rename)


def read_input(source: str | Path, skip_bad_lines: bool = False, stdin: IO[bytes] | None = None) -> list[Example]:
    """Every example of stream_input at once (small inputs, tests)."""
    with stream_input(source, skip_bad_lines, stdin) as (_, examples):
        return list(examples)


@contextmanager
def stream_input(source: str | Path, skip_bad_lines: bool = False, stdin: IO[bytes] | None = None):
    """(number of non-blank lines, iterator of the Examples) of a file, or of stdin for "-" (copied to a
    temporary file in blocks, so memory stays bounded). The examples are read one by one as iterated.

    Layouts: one abstract per line, or any layout training reads (title<TAB>abstract, the CSL
    benchmark and release TSVs, JSON lines); a header line is skipped. Example.line is the 1-based
    line number. Blank lines are skipped with one warning counting them; a malformed line is an error
    naming it, or with skip_bad_lines a warning, the lines around it still read."""
    if str(source) != "-":
        path = _input_path(source)
        yield _count_lines(path, str(path)), _examples(path, skip_bad_lines, str(path))
        return
    with tempfile.TemporaryDirectory(prefix="generate-") as tmp:
        path = Path(tmp) / "stdin"
        with open(path, "wb") as f:
            shutil.copyfileobj(stdin if stdin is not None else sys.stdin.buffer, f, 1 << 20)
        with _renamed_in_logs(logging.getLogger("seq2seq_rdrop.data"), str(path), "<stdin>"):
            yield _count_lines(path, "<stdin>"), _examples(path, skip_bad_lines, "<stdin>")


def _input_path(source) -> Path:
    path = Path(source)
    if path.is_dir():
        raise GenerationError(f"input {path} is a directory, not a file")
    if not path.exists():
        raise GenerationError(f"input {path}: no such file")
    if not path.is_file():
        raise GenerationError(f"input {path} is not a regular file (use input=- to read stdin)")
    return path


def _count_lines(path: Path, name: str) -> int:
    """Non-blank lines (the progress bar's total); an input of blank lines only is an error."""
    blank = lines = 0
    with open(path, "rb") as f:
        for raw in f:
            lines += 1
            if not raw.decode("utf-8", errors="replace").lstrip("\ufeff").strip():
                blank += 1
    if lines == blank:
        raise GenerationError(f"input {name} is empty: no abstracts to title")
    if blank:
        log.warning("%s: skipped %d blank line(s)", name, blank)
    return lines - blank


def _examples(path: Path, skip_bad_lines: bool, name: str) -> Iterator[Example]:
    """iter_examples, its errors as GenerationError naming the input (<stdin> for the temporary copy)."""
    found = False
    try:
        for example in iter_examples(path, skip_bad_lines=skip_bad_lines, require_title=False, allow_text=True):
            problem = not_text(example.abstract)
            if problem:  # checked here, where the line is known, not at decoding
                if not skip_bad_lines:
                    raise GenerationError(f"input {name} line {example.line}: the abstract {problem} "
                                          "(skip_bad_lines=true skips such lines)")
                log.warning("%s line %d: skipped: the abstract %s", name, example.line, problem)
                continue
            found = True
            yield example
    except DataError as e:
        message = str(e).replace("data.skip_bad_lines=true", "skip_bad_lines=true").replace(str(path), name)
        raise GenerationError(one_line(message)) from None
    if not found:
        raise GenerationError(f"input {name}: no usable examples. {FORMATS_HELP}")


# --------------------------------------------------------------------------------------- output


def _check_outside_checkpoint(given: str, checkpoint: Path) -> None:
    """GenerationError when output=`given` would write into the checkpoint directory or over a file it holds
    (through a symbolic link, or a checkpoint's file that is itself a link to a file elsewhere)."""
    target = Path(os.path.realpath(given))
    home = Path(os.path.realpath(checkpoint))
    if target == home or home in target.parents:
        raise GenerationError(f"output={given} is inside the checkpoint directory {checkpoint}; give a path outside it")
    if not target.exists():
        return
    for entry in sorted(checkpoint.iterdir()):
        try:
            same = os.path.samefile(entry, target)  # follows links on both sides; hard links too
        except OSError:
            continue
        if same:
            raise GenerationError(f"output={given} is the checkpoint's file {entry}; give another path")


class OutputFile:
    """generate.py's output=PATH, checked before decoding and written after it.

    A regular file (or a new one) is written to a temporary file beside it, created by `open` (so an
    unwritable place fails before decoding), then renamed over it: never half-written, and its permission
    bits kept. Through a symbolic link, the file it points to is written; a FIFO or a device node is
    written directly, never replaced. Failures raise GenerationError (one line) and leave no temporary
    file behind."""

    def __init__(self, given: str, target: Path, direct: bool):
        self.given, self.target, self.direct = given, target, direct
        self.tmp: Path | None = None
        self._fd: int | None = None
        self._file = None  # open from the first append to commit

    @classmethod
    def open(cls, given: str, input_path: str | None = None, checkpoint: str | Path | None = None) -> "OutputFile":
        """`checkpoint`: the directory the titles are decoded with, which the output may not land in."""
        path = Path(given)
        if checkpoint is not None:
            _check_outside_checkpoint(given, Path(checkpoint))
        try:
            info = os.stat(path)  # follows symbolic links
        except FileNotFoundError:
            info = None
        except OSError as e:  # a loop of links, a parent that is a file ...
            raise GenerationError(f"cannot write output={given}: {_os_reason(e, path)}") from None
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise GenerationError(f"output={given} is a directory; give a file path")
        if input_path not in (None, "", "-") and info is not None and Path(input_path).exists():
            try:
                same = os.path.samefile(path, input_path)
            except OSError:
                same = False
            if same:
                raise GenerationError(f"output={given} is the input file; give another path")
        if info is not None and not stat.S_ISREG(info.st_mode):  # FIFO, device node, socket
            if stat.S_ISSOCK(info.st_mode):
                raise GenerationError(f"output={given} is a socket; give a file path")
            if not os.access(path, os.W_OK):
                raise GenerationError(f"cannot write output={given}: permission denied")
            return cls(given, path, direct=True)
        target = Path(os.path.realpath(path)) if path.is_symlink() else path
        if info is not None and not os.access(target, os.W_OK):
            raise GenerationError(f"cannot write output={given}: the file is not writable")
        out = cls(given, target, direct=False)
        out._create_tmp(mode=stat.S_IMODE(info.st_mode) if info is not None else None,
                        make_parents=not path.is_symlink())
        return out

    def _create_tmp(self, mode: int | None, make_parents: bool) -> None:
        parent = self.target.parent
        try:
            if make_parents:
                parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=parent)
        except OSError as e:
            raise GenerationError(f"cannot write output={self.given}: {_os_reason(e, parent)}") from None
        self._fd, self.tmp = fd, Path(tmp)
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        try:
            os.chmod(self.tmp, mode)
        except OSError:
            pass

    def write(self, lines: Iterable[str]) -> None:
        """All of `lines`, then (regular files) the rename into place; on failure nothing is replaced."""
        self.append(lines)
        self.commit()

    def append(self, lines: Iterable[str]) -> None:
        """More lines: into the temporary file (a regular file), or straight to a FIFO or device."""
        try:
            if self._file is None:
                if self.direct:
                    self._file = open(self.target, "w", encoding="utf-8", newline="\n")
                else:
                    fd, self._fd = self._fd, None
                    self._file = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
            _write_all(self._file, lines)
        except OSError as e:
            self._fail(e)

    def commit(self) -> None:
        """Everything appended is written: a regular file is synced and renamed into place."""
        self.append(())
        try:
            self._file.flush()
            if not self.direct:
                os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            if not self.direct:
                os.replace(self.tmp, self.target)
                self.tmp = None
        except OSError as e:
            self._fail(e)

    def _fail(self, e: OSError):
        self.discard()
        raise GenerationError(f"cannot write output={self.given}: {_os_reason(e, self.target)}") from None

    def discard(self) -> None:
        """Remove the temporary file (decoding failed or was interrupted)."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        if self.tmp is not None:
            try:
                self.tmp.unlink()
            except FileNotFoundError:
                pass
            self.tmp = None


def _write_all(f, lines: Iterable[str]) -> None:
    for line in lines:
        f.write(line)


def _os_reason(e: OSError, path: Path) -> str:
    """The reason of a failed write, naming the file that stands where a directory should be."""
    if isinstance(e, (FileExistsError, NotADirectoryError)):
        for candidate in [path, *path.parents]:
            if candidate.exists():
                if not candidate.is_dir():
                    return f"{candidate} is a file, not a directory"
                break
    return e.strerror or one_line(e)


def _clean(text: str) -> str:
    return " ".join(text.replace("\t", " ").split())


def _tsv_score(score: float) -> str:
    return f"{score:.4f}" if math.isfinite(score) else str(score)


def json_score(score: float) -> float | None:
    """A score as JSON can hold it: rounded, None for -inf (JSON has no -Infinity)."""
    return round(score, 6) if math.isfinite(score) else None


def tsv_lines(examples: Sequence[Example], results: Sequence[Sequence[tuple[str, float]]]) -> Iterable[str]:
    """abstract_id<TAB>title<TAB>score, one line per hypothesis (n-best: several lines per abstract)."""
    for ex, row in zip(examples, results):
        for title, score in row:
            yield f"{ex.line}\t{_clean(title)}\t{_tsv_score(score)}\n"


def jsonl_lines(examples: Sequence[Example], results: Sequence[Sequence[tuple[str, float]]],
                n_best: bool = False) -> Iterable[str]:
    """One object per abstract: abstract_id, title, score (the best hypothesis); with n_best also
    `nbest`, the list of {title, score}, best first."""
    for ex, row in zip(examples, results):
        title, score = row[0]
        obj = {"abstract_id": ex.line, "title": title, "score": json_score(score)}
        if n_best:
            obj["nbest"] = [{"title": t, "score": json_score(s)} for t, s in row]
        yield json.dumps(obj, ensure_ascii=False) + "\n"


def score_titles(examples: Sequence[Example], results: Sequence[Sequence[tuple[str, float]]]) -> dict:
    """ROUGE-1/2/L and BLEU of the best titles against the examples' references (those that have one),
    with the metric code training uses."""
    from .metrics import score_corpus

    pairs = [(ex.title, row[0][0]) for ex, row in zip(examples, results) if ex.title]
    if not pairs:
        raise GenerationError("evaluate=true but the input holds no reference titles "
                              "(use title<TAB>abstract lines or JSON lines with a \"title\")")
    return score_corpus([r for r, _ in pairs], [p for _, p in pairs])
