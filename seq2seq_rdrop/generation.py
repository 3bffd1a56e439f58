"""Titles for new abstracts: the `TitleGenerator` API, and the input/output helpers of generate.py.

    from seq2seq_rdrop import TitleGenerator
    gen = TitleGenerator.from_pretrained("outputs/runs/.../checkpoint")
    gen.generate(["摘要……"], beam_size=3)                    # ["标题"]
    gen.generate(["摘要……"], return_scores=True)              # [("标题", -0.41)]
    gen.generate(["摘要……"], beam_size=4, num_return=2)       # [["标题", "另一个标题"]]

A score is the hypothesis' length-normalised log-probability, what beam search ranks by
(sum of token log-probs / length ** length_penalty); higher is better.

torch and transformers are imported only when a model is loaded, so that reading and checking an
input file (and the errors generate.py reports about it) stay fast.
"""
from __future__ import annotations

import json
import logging
import math
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Sequence

from .checkpoints import check_checkpoint_dir
from .data import DataError, Example, read_examples

log = logging.getLogger(__name__)

# The decoding options and their defaults, what training's dev evaluation and generate.py use. Their home is
# here: conf/ is not installed with the package. conf/decode/beam.yaml mirrors them (plus training's
# decode.batch_size), conf/generate.yaml and conf/data/csl.yaml the two below; tests/test_generate.py
# asserts that they agree.
DEFAULT_DECODE = {"beam_size": 16, "max_len": 32, "min_len": 1, "length_penalty": 1.0, "no_repeat_ngram": 3,
                  "num_return": 1, "use_cache": True}
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
    for key in ("beam_size", "max_len", "min_len", "no_repeat_ngram", "num_return"):
        value = opts[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise GenerationError(f"decode.{key}={value!r}: an integer is required")
    if opts["beam_size"] < 1 or opts["max_len"] < 1 or opts["num_return"] < 1:
        raise GenerationError("decode.beam_size, decode.max_len and decode.num_return must be at least 1")
    if opts["min_len"] < 0 or opts["no_repeat_ngram"] < 0:
        raise GenerationError("decode.min_len and decode.no_repeat_ngram must not be negative")
    if opts["num_return"] > opts["beam_size"]:
        raise GenerationError(f"decode.num_return={opts['num_return']} cannot exceed "
                              f"decode.beam_size={opts['beam_size']}")
    if isinstance(opts["length_penalty"], bool) or not isinstance(opts["length_penalty"], (int, float)):
        raise GenerationError(f"decode.length_penalty={opts['length_penalty']!r}: a number is required")
    if not isinstance(opts["use_cache"], bool):
        raise GenerationError(f"decode.use_cache={opts['use_cache']!r}: true or false")
    return opts


def checkpoint_max_source_len(path: str | Path) -> int | None:
    """data.max_source_len of the run that wrote the checkpoint, if known: checkpoint/train_config.yaml,
    or for a run's state/model the run's config_resolved.yaml."""
    path = Path(path)
    candidates = [path / "train_config.yaml"]
    if path.name == "model" and path.parent.name == "state":
        candidates.append(path.parent.parent / "config_resolved.yaml")
    config_file = next((c for c in candidates if c.is_file()), None)
    if config_file is None:
        return None
    from omegaconf import OmegaConf

    try:
        value = OmegaConf.select(OmegaConf.load(config_file), "data.max_source_len")
    except Exception:  # an unreadable config only loses the default, not the run
        log.warning("%s: unreadable; using max_source_len=%d", config_file, DEFAULT_MAX_SOURCE_LEN)
        return None
    return int(value) if value else None


# --------------------------------------------------------------------------------------- the API


class TitleGenerator:
    """A trained title model with its tokenizer, ready to title raw abstracts."""

    def __init__(self, model, tokenizer, device="cpu", max_source_len: int = DEFAULT_MAX_SOURCE_LEN,
                 decode: dict | None = None):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        if not isinstance(max_source_len, int) or isinstance(max_source_len, bool) or max_source_len < 1:
            raise GenerationError(f"max_source_len={max_source_len!r}: a positive integer is required")
        self.max_source_len = max_source_len
        self.decode = decode_options(decode)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto", max_source_len: int | None = None,
                        **decode) -> "TitleGenerator":
        """Load a checkpoint directory (a training run's checkpoint/ or state/model).
        max_source_len: abstract tokens kept; None = the training run's data.max_source_len, else 256.
        Keyword arguments set default decoding options (beam_size=..., max_len=...)."""
        try:
            path = check_checkpoint_dir(path)
        except FileNotFoundError as e:
            raise GenerationError(str(e)) from None
        if max_source_len is None:
            max_source_len = checkpoint_max_source_len(path) or DEFAULT_MAX_SOURCE_LEN
        decode = decode_options(decode)  # option errors before the (slow) model load

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
            tokenizer = load_tokenizer(path)
            model = load_model(path, tokenizer)
        except (OSError, ValueError, KeyError) as e:
            raise GenerationError(f"checkpoint directory {path} cannot be loaded: {_one_line(e)}") from None
        finally:
            if was_enabled:
                hf_logging.enable_progress_bar()
        return cls(model, tokenizer, torch_device, max_source_len, decode)

    def _check_positions(self, max_len: int) -> None:
        """A clear error instead of an index error deep in the model when the lengths cannot fit."""
        positions = getattr(self.model, "max_positions", None)
        if not positions:
            return
        if getattr(self.model, "family", None) == "unilm":  # abstract and title share one sequence
            if self.max_source_len + 2 + max_len > positions:
                raise GenerationError(
                    f"max_source_len={self.max_source_len} + decode.max_len={max_len} (+2 special tokens) "
                    f"exceed the model's {positions} positions: lower max_source_len or decode.max_len")
        elif self.max_source_len + 2 > positions or max_len + 1 > positions:  # encoder-decoder
            raise GenerationError(
                f"max_source_len={self.max_source_len} (+2 special tokens) or decode.max_len={max_len} (+1) "
                f"exceed the model's {positions} positions")

    def count_truncated(self, abstracts: Sequence[str]) -> int:
        """How many abstracts are longer than max_source_len tokens (they are cut to it)."""
        from .tokenizer import encode_text

        return sum(len(encode_text(self.tokenizer, a)) > self.max_source_len for a in abstracts)

    def hypotheses(self, abstracts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False,
                   **decode) -> list[list[tuple[str, float]]]:
        """For each abstract its decode.num_return best (title, score) pairs, best first.
        Over-long abstracts are truncated, with one warning for the whole call."""
        from .decoding import generate
        from .tokenizer import decode_ids

        opts = decode_options(decode, base=self.decode)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise GenerationError(f"batch_size={batch_size!r}: a positive integer is required")
        abstracts = list(abstracts)
        for i, text in enumerate(abstracts):
            if not isinstance(text, str) or not text.strip():
                raise GenerationError(f"abstract {i + 1} is {'empty' if isinstance(text, str) else type(text).__name__}:"
                                      " every abstract must be non-empty text")
        if not abstracts:
            return []
        self._check_positions(opts["max_len"])
        truncated = self.count_truncated(abstracts)
        if truncated:
            log.warning("%d of %d abstract(s) longer than max_source_len=%d tokens were truncated",
                        truncated, len(abstracts), self.max_source_len)
        hyps = generate(self.model, self.tokenizer, abstracts, opts, batch_size=batch_size,
                        max_source_len=self.max_source_len, device=self.device, progress=progress)
        return [[(decode_ids(self.tokenizer, h.tokens), float(h.score)) for h in row] for row in hyps]

    def generate(self, abstracts: str | Sequence[str], beam_size: int | None = None, num_return: int | None = None,
                 return_scores: bool = False, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False,
                 **decode):
        """Titles for `abstracts` (a list, or one string for one result).

        Each result is a title (str), or a (title, score) pair with return_scores=True; with
        num_return > 1 it is a list of those, best first. Other keyword arguments are decoding
        options: max_len, min_len, length_penalty, no_repeat_ngram, use_cache."""
        single = isinstance(abstracts, str)
        rows = self.hypotheses([abstracts] if single else abstracts, batch_size=batch_size, progress=progress,
                               beam_size=beam_size, num_return=num_return, **decode)
        n_best = decode_options({"beam_size": beam_size, "num_return": num_return}, base=self.decode)["num_return"]
        results = []
        for row in rows:
            items = row if return_scores else [title for title, _ in row]
            results.append(list(items) if n_best > 1 else items[0])
        return results[0] if single else results

    __call__ = generate


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


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
    """Abstracts (and reference titles, when the layout has them) from a file, or from stdin for "-".

    Layouts: one abstract per line, or any layout training reads (title<TAB>abstract, the CSL
    benchmark and release TSVs, JSON lines). Example.line is the 1-based line number. Blank lines
    are skipped with one warning counting them; a malformed line is an error naming it, or with
    skip_bad_lines a warning, the lines around it still read."""
    if str(source) == "-":
        data = (stdin if stdin is not None else sys.stdin.buffer).read()
        with tempfile.TemporaryDirectory(prefix="generate-") as tmp:
            path = Path(tmp) / "stdin"
            path.write_bytes(data)
            with _renamed_in_logs(logging.getLogger("seq2seq_rdrop.data"), str(path), "<stdin>"):
                try:
                    return _read_file(path, skip_bad_lines, name="<stdin>")
                except GenerationError as e:
                    raise GenerationError(str(e).replace(str(path), "<stdin>")) from None
    path = Path(source)
    if path.is_dir():
        raise GenerationError(f"input {path} is a directory, not a file")
    if not path.exists():
        raise GenerationError(f"input {path}: no such file")
    if not path.is_file():
        raise GenerationError(f"input {path} is not a regular file (use input=- to read stdin)")
    return _read_file(path, skip_bad_lines, name=str(path))


def _read_file(path: Path, skip_bad_lines: bool, name: str) -> list[Example]:
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
    try:
        return read_examples(path, skip_bad_lines=skip_bad_lines, require_title=False, allow_text=True)
    except DataError as e:
        message = str(e).replace("data.skip_bad_lines=true", "skip_bad_lines=true")
        raise GenerationError(_one_line(message)) from None


# --------------------------------------------------------------------------------------- output


def _clean(text: str) -> str:
    return " ".join(text.replace("\t", " ").split())


def _tsv_score(score: float) -> str:
    return f"{score:.4f}" if math.isfinite(score) else str(score)


def _json_score(score: float) -> float | None:
    return round(score, 6) if math.isfinite(score) else None  # JSON has no -Infinity


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
        obj = {"abstract_id": ex.line, "title": title, "score": _json_score(score)}
        if n_best:
            obj["nbest"] = [{"title": t, "score": _json_score(s)} for t, s in row]
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
