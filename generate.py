"""Titles for abstracts with a trained checkpoint.

    python generate.py checkpoint=outputs/runs/.../checkpoint input=abstracts.txt > titles.tsv
    cat abstracts.txt | python generate.py checkpoint=... input=-
    python generate.py checkpoint=... input=dev.tsv evaluate=true output=titles.jsonl output_format=jsonl
    python generate.py checkpoint=... input=abstracts.txt decode.beam_size=5 decode.num_return=3
    python generate.py checkpoint=... input=abstracts.txt decode.strategy=sample decode.top_p=0.9 decode.num_return=5
    python generate.py checkpoint=... input=abstracts.txt decode.beam_size=5 decode.beam_groups=5 \
        decode.diversity_penalty=1.0 decode.num_return=5

Writes abstract_id<TAB>title<TAB>score (abstract_id = the input line number; n-best: one line per
hypothesis, best first), or JSON lines with output_format=jsonl. stdout carries only the titles:
warnings, errors, the progress bar and (when titles go to stdout) the evaluate=true table go to
stderr. Decoding follows the checkpoint's generation_config.json unless decode.* says otherwise;
titles keep the abstract's case (keep_case). output=PATH is checked writable before decoding,
never replaces a symlink, FIFO or device node, and never lands in the checkpoint directory. Exit status: 0
done, 1 bad checkpoint, input or output, 2 bad option. Options: conf/generate.yaml, `python generate.py --help`.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from seq2seq_rdrop import cli
from seq2seq_rdrop.decode_options import RELATION_WORDS

EXIT_INPUT, EXIT_USAGE = 1, 2
OUTPUT_FORMATS = ("tsv", "jsonl")
OPTIONS = ("checkpoint", "input", "output", "output_format", "batch_size", "evaluate", "skip_bad_lines",
           "keep_case", "max_source_len", "device", "progress", "decode")  # the keys of conf/generate.yaml
DECODE_GROUP_EXTRAS = ("batch_size",)  # keys of conf/decode/*.yaml that generation does not use (training's)
CHUNK_BATCHES = 16  # batches read, decoded and written together: memory is bounded by the chunk, not the input


class UsageError(ValueError):
    """A bad option value (exit status 2)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C is: the same clean-up runs (no temporary output file left behind)."""


def _raise_terminated(signum, frame):
    raise Terminated()


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"


def _check_options(cfg: DictConfig) -> None:
    """Options that can be checked without reading anything: one clear message each."""
    unknown = sorted(set(cfg.keys()) - set(OPTIONS))  # keys added with +key=value
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r} (python generate.py --help lists the options)")
    for key in ("checkpoint", "input"):
        if OmegaConf.is_missing(cfg, key) or cfg[key] in (None, ""):
            raise UsageError(f"{key}=... is required: python generate.py checkpoint=PATH input=FILE (or input=- for stdin)")
    if cfg.output_format not in OUTPUT_FORMATS:
        raise UsageError(f"output_format={cfg.output_format!r}: allowed values are {', '.join(OUTPUT_FORMATS)}")
    for key in ("batch_size", "max_source_len"):
        value = cfg[key]
        if value is None and key == "max_source_len":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{key}={value!r}: a positive integer is required")
    for key in ("evaluate", "skip_bad_lines", "keep_case"):
        if not isinstance(cfg[key], bool):
            raise UsageError(f"{key}={cfg[key]!r}: true or false")
    if cfg.progress not in ("auto", True, False):
        raise UsageError(f"progress={cfg.progress!r}: auto, true or false")


def run(cfg: DictConfig, stdin=None, stdout=None, stderr=None) -> dict | None:
    """Everything generate.py does, for a composed config. Raises UsageError (bad option) or
    GenerationError (bad checkpoint or input); returns the evaluation scores when evaluate=true."""
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(_LevelFormatter())
    handler.setLevel(logging.WARNING)
    ours = logging.getLogger("seq2seq_rdrop")
    ours.addHandler(handler)
    old_level = ours.level
    if ours.getEffectiveLevel() > logging.WARNING:  # warnings must show even if someone silenced them
        ours.setLevel(logging.WARNING)
    try:
        return _run(cfg, stdin, stdout, stderr)
    finally:
        ours.removeHandler(handler)
        ours.setLevel(old_level)


def _run(cfg: DictConfig, stdin, stdout, stderr) -> dict | None:
    from seq2seq_rdrop.checkpoints import CheckpointError, check_checkpoint_dir
    from seq2seq_rdrop.generation import GenerationError, OutputFile, checkpoint_settings, decode_options, stream_input

    # --- cheap checks first: options, checkpoint directory and its settings, input, output -------
    _check_options(cfg)
    overrides = {k: v for k, v in OmegaConf.to_container(cfg.decode, resolve=True).items()
                 if k not in DECODE_GROUP_EXTRAS}  # None: the checkpoint's
    try:
        decode_options(overrides)  # unknown keys and malformed values, whatever the checkpoint says
    except GenerationError as e:
        if not any(relation in str(e) for relation in RELATION_WORDS):  # judged with the checkpoint's settings below
            raise UsageError(str(e)) from None
    try:
        checkpoint = check_checkpoint_dir(cfg.checkpoint)
    except (FileNotFoundError, CheckpointError) as e:
        raise GenerationError(str(e)) from None
    try:
        decode = decode_options(overrides, base=checkpoint_settings(checkpoint).decode)
    except GenerationError as e:
        if "cannot be loaded" in str(e):
            raise
        raise UsageError(str(e)) from None
    with stream_input(cfg.input, skip_bad_lines=cfg.skip_bad_lines, stdin=stdin) as (n_lines, examples):
        output = None if cfg.output in (None, "", "-") else OutputFile.open(str(cfg.output), input_path=str(cfg.input),
                                                                                checkpoint=checkpoint)
        try:
            return _generate(cfg, checkpoint, overrides, decode, (n_lines, examples), output, stdout, stderr)
        finally:
            if output is not None:
                output.discard()  # a temporary file left by a failure or an interrupt


def _chunks(examples, size: int):
    chunk = []
    for example in examples:
        chunk.append(example)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _generate(cfg, checkpoint, overrides, decode, counted_examples, output, stdout, stderr) -> dict | None:
    """Read, decode and write CHUNK_BATCHES batches at a time: titles (and progress) from the first chunk
    on, memory bounded whatever the input's size; a regular output file is renamed into place at the end."""
    from tqdm.auto import tqdm

    from seq2seq_rdrop.generation import GenerationError, TitleGenerator, jsonl_lines, tsv_lines

    generator = TitleGenerator.from_pretrained(checkpoint, device=cfg.device, max_source_len=cfg.max_source_len,
                                               keep_case=cfg.keep_case, **overrides)
    n_lines, examples = counted_examples
    progress = cfg.progress if cfg.progress != "auto" else n_lines > cfg.batch_size and stderr.isatty()
    bar = tqdm(total=n_lines, desc="titles", unit="abstract", file=stderr, disable=not progress, dynamic_ncols=True)
    scored, truncated, n_read = [], 0, 0  # scored (evaluate=true): (example, [best (title, score)])
    for n_chunk, chunk in enumerate(_chunks(examples, cfg.batch_size * CHUNK_BATCHES)):
        if n_chunk == 0 and cfg.evaluate and not any(ex.title for ex in chunk):
            raise GenerationError("evaluate=true but the input holds no reference titles "
                                  "(use title<TAB>abstract lines or JSON lines with a \"title\")")
        results = generator.hypotheses([ex.abstract for ex in chunk], batch_size=cfg.batch_size, warn_truncated=False)
        truncated += generator.last_truncated
        lines = (jsonl_lines(chunk, results, n_best=decode["num_return"] > 1) if cfg.output_format == "jsonl"
                 else tsv_lines(chunk, results))
        _emit(lines, output, stdout)
        # evaluate=true keeps each reference and best title, not the abstract
        scored += [(replace(ex, abstract=""), row[:1]) for ex, row in zip(chunk, results) if cfg.evaluate]
        n_read += len(chunk)
        bar.update(len(chunk))
    bar.close()
    if truncated:
        logging.getLogger("seq2seq_rdrop.generation").warning(
            "%d of %d abstract(s) longer than max_source_len=%d tokens were truncated", truncated, n_read,
            generator.max_source_len)
    if output is not None:
        output.commit()
    return _evaluate(cfg, decode, scored, stdout if output is not None else stderr) if cfg.evaluate else None


def _emit(lines, output, stdout) -> None:
    from seq2seq_rdrop.generation import GenerationError

    if output is not None:
        output.append(lines)
        return
    try:
        stdout.writelines(lines)
        stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise GenerationError(f"cannot write the titles to stdout: {e.strerror or e}") from None


def _evaluate(cfg, decode, scored, table_stream) -> dict:
    """ROUGE-1/2/L and BLEU of the best titles against the references, printed as a table."""
    from seq2seq_rdrop.generation import score_titles
    from seq2seq_rdrop.metrics import format_table

    examples = [ex for ex, _ in scored]
    scores = score_titles(examples, [row for _, row in scored])
    missing = len(examples) - scores["n"]
    if missing:
        logging.getLogger("seq2seq_rdrop.generation").warning(
            "%d of %d abstract(s) have no reference title and are not scored", missing, len(examples))
    search = f"beam {decode['beam_size']}" if decode["strategy"] == "beam" else f"sampling, seed {decode['seed']}"
    table = format_table({"input": scores}, title=f"{cfg.input}: {search}, best title scored:")
    print(table, file=table_stream, flush=True)
    return scores


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="generate")
def _hydra_main(cfg: DictConfig) -> None:
    from seq2seq_rdrop.generation import GenerationError

    # Report here: an exception leaving the task function would make Hydra print its own header first.
    try:
        run(cfg)
    except UsageError as e:
        print(f"error: {one_line_error(e)}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except GenerationError as e:
        print(f"error: {one_line_error(e)}", file=sys.stderr)
        sys.exit(EXIT_INPUT)
    except BrokenPipeError:  # e.g. `| head`: the reader is gone; nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_INPUT)


def one_line_error(e: BaseException) -> str:
    """A Hydra/OmegaConf/our exception as one readable line."""
    return cli.one_line_error(e, script="generate.py")


def main() -> int:
    """Run the Hydra app; turn every expected failure into one `error: ...` line on stderr."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from seq2seq_rdrop.generation import GenerationError

    previous_sigterm = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with cli.hydra_errors_raised():
            _hydra_main()
    except (UsageError, HydraException, OmegaConfBaseException) as e:
        print(f"error: {one_line_error(e)}", file=sys.stderr)
        return EXIT_USAGE
    except GenerationError as e:
        print(f"error: {one_line_error(e)}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt as e:
        print(f"error: interrupted{' (SIGTERM)' if isinstance(e, Terminated) else ''}", file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(e, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
