"""Writing checkpoints so that a crash never leaves a half-written one behind, and reading them back
with one clear error for every kind of damage.

A checkpoint directory is first written under a temporary name beside its final place, then
swapped in with renames; the previous version is deleted only after the new one is in place.

A checkpoint carries what generation needs in its own Hugging Face files: `generation_config.json` holds the
decoding the run was scored with (its `decode` config), in transformers.GenerationConfig's fields, plus ours
under "seq2seq_rdrop": max_source_len, seed, and the options HF's generation mode would ignore or refuse
(decode_options.py maps them; this module reads and writes the file).
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from .decode_options import from_generation_config, to_generation_config
from .errors import one_line

log = logging.getLogger(__name__)

REQUIRED_FILES = ("config.json",)
GENERATION_CONFIG = "generation_config.json"
# the most a checkpoint's small files may weigh, checked (os.stat, links followed) before any is read: a
# config.json linked to a 1 GB file was read whole. The tokenizer's files hold a vocabulary (21,128 tokens of
# the Chinese BERTs: 0.1 MB as vocab.txt, 0.7 MB as tokenizer.json; 250,000 of multilingual ones: under 20 MB).
MiB = 2**20
SAFETENSORS_HEADER_LIMIT = 100_000_000
FILE_SIZE_LIMITS = {**dict.fromkeys(("config.json", GENERATION_CONFIG, "tokenizer_config.json",
                                     "special_tokens_map.json", "added_tokens.json", "train_config.yaml",
                                     "trainer_info.json"), 1 * MiB),
                    **dict.fromkeys(("tokenizer.json", "vocab.txt"), 64 * MiB)}


class CheckpointError(ValueError):
    """A checkpoint directory that is missing, incomplete or damaged; the message is one line."""


def atomic_write_dir(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp_dir) and atomically put tmp_dir at `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        if old.exists():
            shutil.rmtree(old)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_write_failure(e):
            raise OSError(f"cannot write {target}: {_write_failure_reason(e, target.parent)}; the previous "
                          "version, if any, is kept") from None
        raise
    return target


def _is_write_failure(e: BaseException) -> bool:
    """An OSError, or torch's serializer failing to write (on a full disk: "unexpected pos N vs M")."""
    text = str(e)
    return isinstance(e, OSError) or (isinstance(e, RuntimeError) and ("unexpected pos" in text
                                                                       or "PytorchStreamWriter" in text))


def _write_failure_reason(e: BaseException, directory: Path) -> str:
    """Why a write failed, with the space left on the directory's disk (a full disk is the usual cause)."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        free = None
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        cause = "no space left on the device"
    elif isinstance(e, OSError):
        cause = e.strerror or one_line(e)
    else:
        cause = f"the file was written incompletely ({one_line(e, 120)})"
    return cause + (f"; {free / 2**20:.0f} MiB free on its disk" if free is not None else "")


def recover_dir(target: str | Path) -> None:
    """Finish what a kill during atomic_write_dir left: if only the previous version survives
    (killed between the two renames), put it back; remove half-written temporary directories."""
    target = Path(target)
    old = target.with_name(f".{target.name}.old")
    if not target.exists() and old.exists():
        os.replace(old, target)
    for tmp in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


STATE_HISTORY = "states"  # RUN_DIR/states/step_NNNNNNN/: earlier state/ copies (trainer.keep_last_states)


def keep_state_copy(run_dir: str | Path, step: int, keep: int) -> list[Path]:
    """Copy run_dir/state/ to run_dir/states/step_NNNNNNN/ (atomically) and delete all but the newest
    `keep` copies; return the kept copies, oldest first."""
    run_dir = Path(run_dir)
    target = run_dir / STATE_HISTORY / f"step_{step:07d}"
    atomic_write_dir(target, lambda tmp: shutil.copytree(run_dir / "state", tmp, dirs_exist_ok=True))
    copies = state_copies(run_dir)
    for old in copies[:-keep]:
        shutil.rmtree(old)
    return copies[-keep:]


def state_copies(run_dir: str | Path) -> list[Path]:
    """run_dir/states/step_*/ that hold a saved model, oldest first (half-written .tmp dirs excluded)."""
    history = Path(run_dir) / STATE_HISTORY
    found = [d for d in history.glob("step_*") if (d / "model").is_dir()] if history.is_dir() else []
    return sorted(found, key=lambda d: int(d.name.split("_")[1]))


def save_model_checkpoint(target, model, tokenizer, cfg=None, extra: dict | None = None) -> Path:
    """Model (HF format, safetensors) + tokenizer files + generation_config.json (the run's `decode` and
    data.max_source_len) + the resolved run config."""
    from .tokenizer import save_tokenizer

    def write(tmp: Path):
        model.save_pretrained(tmp, tokenizer=tokenizer)
        save_tokenizer(tokenizer, tmp)
        if cfg is not None:
            decode = OmegaConf.select(cfg, "decode", default=None)
            decode = OmegaConf.to_container(decode, resolve=True) if decode is not None else {}
            write_generation_config(tmp, decode, OmegaConf.select(cfg, "data.max_source_len", default=None))
            OmegaConf.save(cfg, tmp / "train_config.yaml", resolve=True)
        if extra:
            (tmp / "trainer_info.json").write_text(json.dumps(extra, indent=2))
        selector = getattr(model, "content_selector", None)  # selector.attach: decode.rerank's sel feature
        if selector is not None:
            from .selector import SELECTOR_FILE

            selector.save(tmp / SELECTOR_FILE)

    return atomic_write_dir(target, write)


# ----------------------------------------------------------------------------- generation settings


def write_generation_config(out_dir: str | Path, decode: dict, max_source_len: int | None) -> Path:
    """out_dir/generation_config.json from our decoding options (decode_options.to_generation_config), merged
    into the one Hugging Face may have written."""
    path = Path(out_dir) / GENERATION_CONFIG
    config = {}
    if path.is_file():
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            config = {}
    config = to_generation_config(decode, config, max_source_len)
    try:
        import transformers  # only its version, when it is there: writing stays torch-free

        config.setdefault("transformers_version", transformers.__version__)
    except ImportError:
        pass
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_generation_config(path: str | Path) -> tuple[dict, int | None] | None:
    """(decoding options, max_source_len or None) from a checkpoint's generation_config.json written by
    write_generation_config; None when there is none (or it is some other tool's)."""
    file = Path(path) / GENERATION_CONFIG
    if not file.is_file():
        return None
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint directory {path} cannot be loaded ({GENERATION_CONFIG} is not valid "
                              f"JSON: {one_line(e)})") from None
    return from_generation_config(config)


# ----------------------------------------------------------------------------- reading checkpoints


def find_checkpoint_dir(path: str | Path) -> Path:
    """`path`, or where a run killed between the two renames of atomic_write_dir left only the previous
    version (.NAME.old beside it, or beside its parent for state/model), that version, with a warning."""
    path = Path(path)
    if path.exists():
        return path
    for level in (path, path.parent):
        if not level.name or level.exists():
            continue
        old = level.with_name(f".{level.name}.old")
        if old.is_dir():
            found = old / path.relative_to(level)
            if found.is_dir():
                log.warning("%s does not exist, but %s, its previous version, survives (a run was killed while "
                            "saving): using it; rename it to %s to keep it", path, found, level.name)
                return found
    return path


def check_checkpoint_dir(path: str | Path) -> Path:
    """A clear error (FileNotFoundError, one line) for a missing or incomplete checkpoint directory, and
    CheckpointError for a small file that is not a regular file or weighs more than FILE_SIZE_LIMITS allow.
    Returns the directory to read: `path`, or its surviving previous version (find_checkpoint_dir)."""
    given = Path(path)
    path = find_checkpoint_dir(given)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory {given} {'is not a directory' if path.exists() else 'does not exist'}")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if not any((path / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")) and not list(path.glob("model-*.safetensors")):
        missing.append("model.safetensors")
    if not any((path / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        missing.append("tokenizer files (tokenizer.json or vocab.txt)")
    if missing:
        hint = ""
        if (path / "checkpoint" / "config.json").is_file():
            hint = f"; {path / 'checkpoint'} holds a checkpoint: give that"
        elif path.name and path.with_name(f".{path.name}.old").is_dir():
            hint = f"; its previous version survives as {path.with_name(f'.{path.name}.old')}"
        raise FileNotFoundError(f"checkpoint directory {given} cannot be loaded (incomplete: missing "
                                f"{', '.join(missing)}{hint})")
    try:
        check_file_sizes(path)
    except ValueError as e:
        raise CheckpointError(f"checkpoint directory {path} cannot be loaded ({e})") from None
    return path


def check_file_sizes(path: Path) -> None:
    """ValueError (one line) for a small file of the checkpoint (FILE_SIZE_LIMITS) that is not a regular file
    (a FIFO, a device) or is larger than its limit, from os.stat alone: nothing is opened."""
    from .data import regular_file_problem

    for name, limit in FILE_SIZE_LIMITS.items():
        file = path / name
        if not os.path.lexists(file):
            continue
        problem = regular_file_problem(file)
        if problem:
            raise ValueError(f"{name} {problem}")
        size = os.stat(file).st_size
        if size > limit:
            raise ValueError(f"{name} holds {size / MiB:.1f} MiB, more than the {limit // MiB} MiB such a file may "
                             "hold; it is not read")


def safetensors_header(file: Path) -> dict:
    """The tensor table of a .safetensors file, checked against the file's size (a truncated or damaged
    file raises ValueError saying so)."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{file.name} is truncated ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > SAFETENSORS_HEADER_LIMIT:  # the safetensors library's own limit: a larger one is not read
            raise ValueError(f"{file.name} is damaged (its header claims {n} bytes, more than the "
                             f"{SAFETENSORS_HEADER_LIMIT} safetensors allows)")
        if n > size - 8:
            raise ValueError(f"{file.name} is truncated or damaged (its header claims {n} bytes, the file holds {size})")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise ValueError(f"{file.name} is damaged (unreadable header)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{file.name} is damaged (unreadable header)")
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)
               and "data_offsets" in t), default=0)
    if 8 + n + end > size:
        raise ValueError(f"{file.name} is truncated ({size} bytes; its tensors need {8 + n + end})")
    return header


def verify_checkpoint_files(path: str | Path) -> None:
    """Cheap checks before a load (no torch): the small files' sizes (check_file_sizes), config.json parses,
    every .safetensors file is whole, and the token-embedding rows match config.json's vocab_size. Raises
    ValueError naming the damage."""
    path = Path(path)
    check_file_sizes(path)
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"config.json is not valid JSON: {one_line(e)}") from None
    if not isinstance(config, dict):
        raise ValueError("config.json is not a JSON object")
    vocab_size = config.get("vocab_size")
    for file in sorted(path.glob("*.safetensors")):
        header = safetensors_header(file)
        if not isinstance(vocab_size, int):
            continue
        for name, tensor in header.items():
            if name.endswith(("word_embeddings.weight", "shared.weight", "embed_tokens.weight")) and tensor.get("shape"):
                rows = tensor["shape"][0]
                if rows != vocab_size:
                    raise ValueError(f"config.json says vocab_size={vocab_size} but {file.name} holds {rows} token "
                                     f"embeddings ({name})")


@contextmanager
def _held_transformers_logs():
    """Hugging Face's log records while loading are held back: re-emitted after a load that worked, dropped
    after one that failed (a damaged checkpoint gets our one line, not a load report)."""
    logger = logging.getLogger("transformers")
    held: list[logging.LogRecord] = []

    class Hold(logging.Handler):
        def emit(self, record):
            held.append(record)

    handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = [Hold()], False
    ok = False
    try:
        yield held
        ok = True
    finally:
        logger.handlers, logger.propagate = handlers, propagate
        if ok:
            for record in held:
                logger.handle(record)


@contextmanager
def loading_checkpoint(path: str | Path, what: str = "checkpoint directory"):
    """Around the code that loads a checkpoint directory: verify_checkpoint_files first, and any failure
    becomes CheckpointError("<what> PATH cannot be loaded (reason)"), one line."""
    path = Path(path)
    held: list[logging.LogRecord] = []
    try:
        verify_checkpoint_files(path)
        with _held_transformers_logs() as held:
            yield path
    except CheckpointError:
        raise
    except Exception as e:  # OSError, ValueError, RuntimeError (shapes), SafetensorError, KeyError ...
        reason = _mismatch_reason(held) if "above report" in str(e) else None
        raise CheckpointError(f"{what} {path} cannot be loaded ({reason or one_line(e)})") from None


_MISMATCH = re.compile(r"^(\S+)\s*\|.*size mismatch - ckpt: torch\.Size\((\[[^]]*\])\) vs model:torch\.Size\((\[[^]]*\])\)")


def _mismatch_reason(held: list[logging.LogRecord]) -> str | None:
    """Hugging Face's shape-mismatch error says "look at the above report", which loading_checkpoint held
    back: the report's first mismatched weight by name instead (its order varies), and how many there are."""
    found = [m.groups() for record in held for line in record.getMessage().splitlines()
             if (m := _MISMATCH.match(line.strip()))]
    if not found:
        return None
    name, saved, expected = min(found)
    more = f" and {len(found) - 1} more weight(s)" if len(found) > 1 else ""
    return (f"its weights do not have the shapes its config.json gives: {name} is {saved} in the weights file, "
            f"{expected} by config.json{more}")


def check_tokenizer_fits(tokenizer, model) -> None:
    """Every token id of the tokenizer must have an embedding row."""
    if len(tokenizer) > model.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model only {model.vocab_size} embeddings")
