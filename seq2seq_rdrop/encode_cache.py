"""The training split's token ids, kept compactly and cached on disk.

`encode_training_pairs` returns what `model_setup.encode_pairs` returns (the same (src, tgt_in, tgt_out)
id lists, in the same order) as an `EncodedPairs` sequence, and keeps the ids of a first encoding in
a cache file so that a second run on the same data, or a resumed run, reads them back instead of
tokenizing every pair again.

Memory: a list of Python int lists costs ~36 bytes per id (one int object + one pointer); 270k CSL
pairs hold ~45M ids, i.e. ~1.6 GB. `EncodedPairs` keeps them in flat int32 arrays (4 bytes per id)
and builds a pair's id lists (`model.build_example`) when the batch asks for it.

The cache file (`<cache_dir>/encoded-<key>.npz`) is keyed by
    * the sha256 of each data file the examples came from (data.train_file),
    * a sha256 of the examples' own text, in order (which lines were kept: data.holdout_test,
      data.max_train_samples, data.skip_bad_lines),
    * the tokenizer (`tokenizer_fingerprint`: its class, vocabulary and normalisation settings),
    * the encoding settings (data.max_source_len, data.max_target_len) and FORMAT_VERSION.
The ids stored are the model-independent token ids (no [CLS]/[SEP]); `model.build_example` adds
the specials on access, so one cache serves every model family. A file that cannot be read or does
not hold what its key says is rebuilt with a warning.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .tokenizer import encode_text, fold_width

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: full-width letters and digits folded (tokenizer.fold_width). Bump when what is stored, or how ids are computed, changes
CHUNK = 1024  # texts tokenized per call (bounds the memory of full-length ids before truncation)


class EncodedPairs(Sequence):
    """(src, tgt_in, tgt_out) id lists of each pair, built on access from flat token-id arrays."""

    def __init__(self, arrays: dict[str, np.ndarray], build_example: Callable):
        self.arrays = arrays
        self.build_example = build_example
        self._src, self._src_off = arrays["src"], arrays["src_offsets"]
        self._tgt, self._tgt_off = arrays["tgt"], arrays["tgt_offsets"]

    def __len__(self) -> int:
        return len(self._src_off) - 1

    def token_ids(self, i: int) -> tuple[list[int], list[int]]:
        """The abstract's and the title's token ids (cut, no specials), as encode_text returns them."""
        src = self._src[self._src_off[i]:self._src_off[i + 1]].tolist()
        tgt = self._tgt[self._tgt_off[i]:self._tgt_off[i + 1]].tolist()
        return src, tgt

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"pair {i} of {n}")
        return self.build_example(*self.token_ids(i))

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


# ------------------------------------------------------------------------------------------ encoding


def _encode_texts(tokenizer, texts: list[str], max_len: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Flat ids and offsets of encode_text(tokenizer, t, max_len) for every t, tokenized in chunks."""
    pieces: list[np.ndarray] = []  # one flat array per chunk
    lengths = np.zeros(len(texts), dtype=np.int64)
    for first in range(0, len(texts), CHUNK):
        chunk = texts[first:first + CHUNK]
        if getattr(tokenizer, "is_fast", False):
            # Fresh copies of the texts (t[:1] + t[1:]: a new str, same characters): the Rust tokenizer
            # reads a str through its UTF-8 form, which CPython then keeps inside that str for as long as
            # it lives. Given the examples' own strings, every text would keep a second copy for the whole
            # run, and encoding slows per pair as the data grows (outputs/benchmarks/README.md, bench_data).
            chunk = [fold_width(t[:1] + t[1:]) for t in chunk]
            # the same ids as one call per text (encode_text); tests/test_encode_cache.py checks it
            ids = tokenizer(chunk, add_special_tokens=False, return_attention_mask=False,
                            return_token_type_ids=False)["input_ids"]
            ids = [x[:max_len] if max_len else x for x in ids]
        else:
            ids = [encode_text(tokenizer, t, max_len) for t in chunk]
        chunk_lengths = [len(x) for x in ids]
        lengths[first:first + len(ids)] = chunk_lengths
        pieces.append(np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=sum(chunk_lengths)))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
    return flat, offsets


def encode_arrays(tokenizer, examples, max_source_len: int, max_target_len: int) -> dict[str, np.ndarray]:
    src, src_offsets = _encode_texts(tokenizer, [e.abstract for e in examples], max_source_len)
    tgt, tgt_offsets = _encode_texts(tokenizer, [e.title for e in examples], max_target_len)
    return {"src": src, "src_offsets": src_offsets, "tgt": tgt, "tgt_offsets": tgt_offsets}


# ----------------------------------------------------------------------------------------- the key


def file_sha256(path: str | os.PathLike, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def examples_sha256(examples) -> str:
    """Over the examples' abstract and title, in order (so also over which lines were kept)."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(e.abstract.encode("utf-8"))
        digest.update(b"\x00")
        digest.update((e.title or "").encode("utf-8"))
        digest.update(b"\x01")
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 over what decides the ids: the class, the vocabulary (token -> id), and for a tokenizer
    with a Rust backend its normaliser / pre-tokeniser / model settings (not truncation and padding,
    which every call sets itself); for a pure-Python tokenizer its init settings."""
    state: dict = {"class": type(tokenizer).__name__,
                   "vocab": sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        for volatile in ("truncation", "padding"):
            spec.pop(volatile, None)
        state["backend"] = spec
    else:
        skip = {"name_or_path", "vocab_file", "merges_file", "tokenizer_file", "is_local", "local_files_only",
                "model_max_length", "special_tokens_map_file"}
        state["init"] = {k: str(v) for k, v in sorted(tokenizer.init_kwargs.items()) if k not in skip}
    return hashlib.sha256(json.dumps(state, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def cache_key(tokenizer, examples, data_files: Iterable[str | os.PathLike], max_source_len: int,
              max_target_len: int) -> dict:
    return {
        "format": FORMAT_VERSION,
        "data_files": {Path(p).name: file_sha256(p) for p in data_files},
        "examples": examples_sha256(examples),
        "n": len(examples),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "max_source_len": max_source_len,
        "max_target_len": max_target_len,
    }


def cache_path(cache_dir: str | os.PathLike, key: dict) -> Path:
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return Path(cache_dir) / f"encoded-{name}.npz"


# ------------------------------------------------------------------------------------- read / write


def _read(path: Path, key: dict) -> dict[str, np.ndarray]:
    """The arrays in `path`; ValueError when they are not what `key` describes."""
    with np.load(path, allow_pickle=False) as saved:
        stored_key = json.loads(bytes(saved["key"]).decode("utf-8"))
        arrays = {name: saved[name] for name in ("src", "src_offsets", "tgt", "tgt_offsets")}
    if stored_key != key:
        raise ValueError("its key differs from this run's")
    n = key["n"]
    for part in ("src", "tgt"):
        flat, offsets = arrays[part], arrays[f"{part}_offsets"]
        if (len(offsets) != n + 1 or offsets[0] != 0 or offsets[-1] != len(flat)
                or (n and np.any(np.diff(offsets) < 0)) or flat.dtype != np.int32):
            raise ValueError(f"inconsistent {part} arrays")
    return arrays


def _write(path: Path, key: dict, arrays: dict[str, np.ndarray]) -> None:
    """Atomically: a concurrent run reads either no file or a whole one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.frombuffer(json.dumps(key, sort_keys=True).encode("utf-8"), dtype=np.uint8),
                     **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_training_pairs(model, tokenizer, examples, max_source_len: int, max_target_len: int,
                          data_files: Iterable[str | os.PathLike] = (), cache_dir: str | os.PathLike | None = None,
                          write: bool = True) -> EncodedPairs:
    """The examples' (src, tgt_in, tgt_out) id lists (== model_setup.encode_pairs), from the cache in
    `cache_dir` when it holds them (None: no cache); a fresh encoding is saved there when `write`."""
    started = time.perf_counter()
    if cache_dir is None:
        arrays = encode_arrays(tokenizer, examples, max_source_len, max_target_len)
        log.info("encoded %d training pairs in %.1fs (no cache: data.cache_dir=null)", len(examples),
                 time.perf_counter() - started)
        return EncodedPairs(arrays, model.build_example)
    key = cache_key(tokenizer, examples, data_files, max_source_len, max_target_len)
    path = cache_path(cache_dir, key)
    if path.is_file():
        try:
            arrays = _read(path, key)
        except Exception as e:  # noqa: BLE001 - truncated, corrupted or foreign: rebuild it
            log.warning("encoding cache %s is unusable (%s: %s): encoding again and rewriting it",
                        path, type(e).__name__, e)
        else:
            log.info("training pairs: %d read from the encoding cache %s in %.1fs", len(examples), path,
                     time.perf_counter() - started)
            return EncodedPairs(arrays, model.build_example)
    arrays = encode_arrays(tokenizer, examples, max_source_len, max_target_len)
    if write:
        try:
            _write(path, key, arrays)
        except OSError as e:  # a read-only or full disk costs the cache, not the run
            log.warning("could not write the encoding cache %s (%s)", path, e)
    log.info("training pairs: %d encoded in %.1fs%s", len(examples), time.perf_counter() - started,
             f", cached in {path}" if write else "")
    return EncodedPairs(arrays, model.build_example)
