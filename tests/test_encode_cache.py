"""The encoded-dataset cache (seq2seq_rdrop/encode_cache.py): it returns exactly what encoding returns,
is reused when nothing changed, and is rebuilt when the data file or the tokenizer changes, or when
the file is corrupted."""
from __future__ import annotations

import logging
import random
import sys

import pytest

from conftest import CJK, TINY, make_pairs, train_in_process, write_tsv
from seq2seq_rdrop.data import read_examples
from seq2seq_rdrop.encode_cache import EncodedPairs, encode_training_pairs, tokenizer_fingerprint
from seq2seq_rdrop.tokenizer import build_tokenizer, load_tokenizer
from seq2seq_rdrop.model_setup import encode_pairs

MAX_SRC, MAX_TGT = 24, 6


def mixed_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """CJK with Latin words, digits, full-width and ASCII punctuation, odd spacing, upper case, and
    abstracts longer than MAX_SRC tokens: the cases where tokenization could differ."""
    rng = random.Random(seed)
    words = ["LSTM", "cnn", "BERT-base", "2019年", "3.5%", "Ｗｉ-Ｆｉ", "α", "naïve", "x"]
    pairs = []
    for _ in range(n):
        parts = [rng.choice(CJK) if rng.random() < 0.7 else f" {rng.choice(words)} " for _ in range(rng.randint(5, 60))]
        abstract = "".join(parts).strip() + rng.choice(["。", ".", "；", "!"])
        pairs.append((abstract[: rng.randint(3, 12)].strip() or "标题", abstract))
    return pairs


@pytest.fixture
def setup(tmp_path, tiny_unilm, tiny_tokenizer):
    data = write_tsv(tmp_path / "train.tsv", mixed_pairs(30) + make_pairs(20))
    return {"model": tiny_unilm, "tokenizer": tiny_tokenizer, "data": data, "examples": read_examples(data),
            "cache": tmp_path / "cache"}


def encode(s, examples=None, tokenizer=None, data=None, model=None):
    return encode_training_pairs(model or s["model"], tokenizer or s["tokenizer"], examples or s["examples"],
                                 MAX_SRC, MAX_TGT, data_files=[data or s["data"]], cache_dir=s["cache"])


def test_cached_equals_fresh_encoding(setup, caplog):
    fresh = encode_pairs(setup["model"], setup["tokenizer"], setup["examples"], MAX_SRC, MAX_TGT)
    assert any(len(src) == MAX_SRC + 2 for src, _, _ in fresh)  # some abstracts were cut
    with caplog.at_level(logging.INFO):
        first = encode(setup)
        second = encode(setup)
    assert "encoded" in caplog.records[0].getMessage() and "read from the encoding cache" in caplog.records[1].getMessage()
    assert isinstance(second, EncodedPairs) and len(second) == len(fresh)
    assert list(first) == fresh and list(second) == fresh
    assert second[-1] == fresh[-1] and second[1:3] == fresh[1:3]
    assert len(list(setup["cache"].glob("encoded-*.npz"))) == 1


def test_one_cache_serves_another_model_family(setup):
    class Stub:  # a BART-like layout of the same token ids
        def build_example(self, src, tgt):
            return [7] + src + [8], [9] + tgt, tgt + [8]

    encode(setup)
    other = encode(setup, model=Stub())
    assert list(other) == encode_pairs(Stub(), setup["tokenizer"], setup["examples"], MAX_SRC, MAX_TGT)
    assert len(list(setup["cache"].glob("encoded-*.npz"))) == 1


def test_a_changed_data_file_or_selection_is_encoded_again(setup, caplog):
    encode(setup)
    pairs = mixed_pairs(30) + make_pairs(20)
    pairs[5] = (pairs[5][0], pairs[5][1] + "新")
    changed = write_tsv(setup["data"], pairs)
    examples = read_examples(changed)
    with caplog.at_level(logging.INFO):
        again = encode(setup, examples=examples)
        fewer = encode(setup, examples=examples[:10])  # e.g. data.max_train_samples
    assert all("encoded" in r.getMessage() for r in caplog.records)
    assert list(again) == encode_pairs(setup["model"], setup["tokenizer"], examples, MAX_SRC, MAX_TGT)
    assert list(fewer) == list(again)[:10]
    assert len(list(setup["cache"].glob("encoded-*.npz"))) == 3


def test_a_changed_tokenizer_is_encoded_again_and_a_reloaded_one_is_not(setup, tmp_path, caplog):
    encode(setup)
    texts = [t for p in make_pairs(40) for t in p]
    other = build_tokenizer(texts[:20], tmp_path / "other_tok", min_count=1)  # a smaller vocabulary
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(setup["tokenizer"])
    setup["tokenizer"].save_pretrained(str(tmp_path / "saved"))  # what a resumed run loads
    reloaded = load_tokenizer(tmp_path / "saved")
    assert tokenizer_fingerprint(reloaded) == tokenizer_fingerprint(setup["tokenizer"])
    with caplog.at_level(logging.INFO):
        with_other = encode(setup, tokenizer=other)
        with_reloaded = encode(setup, tokenizer=reloaded)
    assert "encoded" in caplog.records[0].getMessage()
    assert "read from the encoding cache" in caplog.records[1].getMessage()
    assert list(with_other) == encode_pairs(setup["model"], other, setup["examples"], MAX_SRC, MAX_TGT)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_a_corrupted_cache_file_is_rebuilt_with_a_warning(setup, caplog, damage):
    fresh = list(encode(setup))
    [path] = setup["cache"].glob("encoded-*.npz")
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(raw[:100] + bytes(len(raw) - 200) + raw[-100:])
    else:  # a valid file holding another dataset's ids
        other = write_tsv(setup["data"].parent / "other.tsv", make_pairs(5, seed=9))
        encode(setup, examples=read_examples(other), data=other)
        [other_path] = [p for p in setup["cache"].glob("encoded-*.npz") if p != path]
        other_path.replace(path)
    with caplog.at_level(logging.INFO):
        rebuilt = encode(setup)
    assert any(r.levelno == logging.WARNING and "unusable" in r.getMessage() for r in caplog.records)
    assert list(rebuilt) == fresh
    with caplog.at_level(logging.INFO):
        caplog.clear()
        encode(setup)
    assert "read from the encoding cache" in caplog.text  # the rewritten file is good


def test_no_cache_dir_encodes_without_writing(setup, tmp_path):
    encoded = encode_training_pairs(setup["model"], setup["tokenizer"], setup["examples"], MAX_SRC, MAX_TGT)
    assert list(encoded) == encode_pairs(setup["model"], setup["tokenizer"], setup["examples"], MAX_SRC, MAX_TGT)
    assert not setup["cache"].exists()


def test_encoding_leaves_no_utf8_copy_in_the_examples_strings(setup):
    """The Rust tokenizer reads a str through its UTF-8 form, which CPython caches in the str (its
    sys.getsizeof grows by it): the examples' own strings must not keep one (issue 19: ~220 MiB at
    270k pairs, and encoding slower per pair as the data grew)."""
    assert setup["tokenizer"].is_fast
    examples = read_examples(setup["data"])
    sizes = [(sys.getsizeof(e.abstract), sys.getsizeof(e.title)) for e in examples]
    encode_training_pairs(setup["model"], setup["tokenizer"], examples, MAX_SRC, MAX_TGT)
    assert [(sys.getsizeof(e.abstract), sys.getsizeof(e.title)) for e in examples] == sizes
    setup["tokenizer"]([e.abstract for e in examples], add_special_tokens=False)  # what the test would miss
    assert [sys.getsizeof(e.abstract) for e in examples] != [a for a, _ in sizes]


def test_train_py_second_run_and_resume_read_the_cache(data_dir, tmp_path, caplog):
    """Through train() as train.py calls it: the first run encodes, a resume of it and a second run read the
    cache, and the second run's numbers are the first one's."""
    cache = tmp_path / "cache"
    common = [f"data.dir={data_dir}", f"data.cache_dir={cache}", "trainer.save_every=2", "data.max_eval_samples=4",
              *TINY]

    def run(out, *extra):  # what train.py's train.log would hold
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="seq2seq_rdrop"):
            train_in_process(out, *common, *extra)
        return caplog.text

    def losses(out):
        rows = (out / "train_log.csv").read_text().splitlines()
        return [row.split(",")[:4] for row in rows]  # step, epoch, lr, loss (not the seconds)

    first = run(tmp_path / "a", "trainer.max_steps=2")
    assert "encoded in" in first and "cached in" in first
    first_losses, first_dev = losses(tmp_path / "a"), (tmp_path / "a" / "kept_dev_scores.json").read_text()
    second = run(tmp_path / "b", "trainer.max_steps=2")
    assert "read from the encoding cache" in second
    assert losses(tmp_path / "b") == first_losses and (tmp_path / "b" / "kept_dev_scores.json").read_text() == first_dev
    resumed = run(tmp_path / "a", "trainer.max_steps=4", "trainer.resume=true")
    assert "resumed from" in resumed and "read from the encoding cache" in resumed
    assert len(list(cache.glob("encoded-*.npz"))) == 1
