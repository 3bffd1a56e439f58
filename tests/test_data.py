import json

import pytest

from seq2seq_rdrop.data import DataError, detect_layout, read_examples, resolve_data_dir


def write(tmp_path, name, content, mode="w"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize("line,layout", [
    ("标题\t摘要", "tsv2"),
    ("to title\t摘要\t标题", "tsv3"),
    ("标题\t摘要\t关键词\t学科\t类别", "tsv5"),
    ('{"title": "标题", "abst": "摘要"}', "jsonl"),
])
def test_layout_is_detected_from_the_first_line(line, layout):
    assert detect_layout(line) == layout


def test_every_layout_yields_the_same_title_and_abstract(tmp_path):
    files = {
        "a.tsv": "标题一\t摘要一\n",
        "b.tsv": "to title\t摘要一\t标题一\n",
        "c.tsv": "标题一\t摘要一\tk1_k2\t工学\t计算机\n",
        "d.jsonl": json.dumps({"title": "标题一", "abst": "摘要一", "keywords": []}, ensure_ascii=False) + "\n",
        "e.jsonl": json.dumps({"title": "标题一", "abstract": "摘要一"}, ensure_ascii=False) + "\n",
    }
    for name, content in files.items():
        [ex] = read_examples(write(tmp_path, name, content))
        assert (ex.title, ex.abstract, ex.line) == ("标题一", "摘要一", 1), name


@pytest.mark.parametrize("bad_line,reason", [
    ("只有一列没有制表符", "columns"),
    ("标题\t摘要\t多余", "columns"),
    ("\t摘要", "empty title"),
    ("标题\t  ", "empty abstract"),
])
def test_malformed_line_error_names_file_and_line(tmp_path, bad_line, reason):
    path = write(tmp_path, "x.tsv", f"标题一\t摘要一\n{bad_line}\n标题三\t摘要三\n")
    with pytest.raises(DataError) as err:
        read_examples(path)
    assert f"{path}:2:" in str(err.value) and reason in str(err.value)


def test_undecodable_bytes_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "x.tsv", "标题一\t摘要一\n".encode() + b"\xff\xfe\tabc\n")
    with pytest.raises(DataError, match=r"x\.tsv:2: undecodable"):
        read_examples(path)


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = write(tmp_path, "x.jsonl", '{"title": "a", "abst": "b"}\n{"title": \n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: invalid JSON"):
        read_examples(path)


def test_skip_bad_lines_keeps_the_good_ones_and_counts(tmp_path, caplog):
    path = write(tmp_path, "x.tsv", "标题一\t摘要一\n坏行\n\t摘要\n".encode() + b"\xff\n" + "标题五\t摘要五\n".encode())
    examples = read_examples(path, skip_bad_lines=True)
    assert [e.line for e in examples] == [1, 5]
    assert "skipped 3 bad line(s)" in caplog.text


def test_blank_lines_are_ignored(tmp_path):
    path = write(tmp_path, "x.tsv", "\n标题一\t摘要一\n\n标题二\t摘要二\n")
    assert [e.line for e in read_examples(path)] == [2, 4]


def test_missing_file_and_empty_file_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_examples(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match="no usable examples"):
        read_examples(write(tmp_path, "empty.tsv", "\n\n"))


def test_data_dir_falls_back_from_env_to_data_csl(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSL_DATA_DIR", str(tmp_path / "from_env"))
    (tmp_path / "from_env").mkdir()
    assert resolve_data_dir(None) == (tmp_path / "from_env").resolve()
    monkeypatch.delenv("CSL_DATA_DIR")
    (tmp_path / "data" / "csl").mkdir(parents=True)
    assert resolve_data_dir(None) == (tmp_path / "data" / "csl").resolve()
    assert resolve_data_dir(str(tmp_path / "from_env")) == (tmp_path / "from_env").resolve()


def test_no_data_dir_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CSL_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError) as err:
        resolve_data_dir(str(tmp_path / "missing"))
    assert "data.dir" in str(err.value) and "title<TAB>abstract" in str(err.value)


def _compose(*overrides):
    from hydra import compose, initialize_config_dir

    from conftest import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_large_dev_files_are_evaluated_on_a_bounded_prefix_said_in_the_log(data_dir, caplog):
    import logging

    from seq2seq_rdrop.splits import load_splits

    assert _compose().data.max_eval_samples == 1000  # the default: CSL dev (493 pairs) is decoded whole
    with caplog.at_level(logging.INFO):
        splits = load_splits(_compose(f"data.dir={data_dir}", "data.max_eval_samples=5"))
    assert [e.line for e in splits.dev] == [1, 2, 3, 4, 5]
    assert "dev: 8 pairs in dev.tsv; evaluating (and choosing the checkpoint) on its first 5" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for bound in ("8", "null"):  # not cut: nothing said
            assert len(load_splits(_compose(f"data.dir={data_dir}", f"data.max_eval_samples={bound}")).dev) == 8
    assert "evaluating (and choosing" not in caplog.text


@pytest.mark.parametrize("header_line", ["title\tabstract", "标题\t摘要", "Title\tAbstract\tKeywords\tDiscipline\tCategory"])
def test_a_header_line_is_detected_and_skipped_not_trained_on(tmp_path, header_line, caplog):
    columns = header_line.count("\t") + 1
    rows = ["题一\t摘要一" + "\tx" * (columns - 2), "题二\t摘要二" + "\tx" * (columns - 2)]
    path = write(tmp_path, "with_header.tsv", "\n".join([header_line, *rows]) + "\n")
    with caplog.at_level("INFO", logger="seq2seq_rdrop.data"):
        examples = read_examples(path)
    assert [(e.title, e.line) for e in examples] == [("题一", 2), ("题二", 3)]
    assert any(f"{path}:1: header line skipped" in r.getMessage() for r in caplog.records)


def test_data_header_true_skips_any_first_line_and_false_reads_a_header_as_a_pair(tmp_path):
    path = write(tmp_path, "pairs.tsv", "题一\t摘要一\ntitle\tabstract\n")
    assert [e.title for e in read_examples(path, header=True)] == ["title"]
    assert [e.title for e in read_examples(path, header=False)] == ["题一", "title"]  # only the first line is one


def test_duplicate_pairs_are_counted_in_the_load_summary_and_kept(tmp_path, caplog):
    path = write(tmp_path, "dups.tsv", "题一\t摘要一\n题二\t摘要二\n题一\t摘要一\n题一\t摘要一\n")
    with caplog.at_level("INFO", logger="seq2seq_rdrop.data"):
        assert len(read_examples(path)) == 4
    assert any("4 examples (layout tsv2), 2 duplicate pair(s)" in r.getMessage() for r in caplog.records)


def test_data_header_outside_auto_true_false_is_refused_naming_the_allowed_values():
    from omegaconf import OmegaConf

    from seq2seq_rdrop.config_checks import ConfigError, validate

    with pytest.raises(ConfigError, match=r"data.header='maybe': allowed values are auto, true, false"):
        validate(OmegaConf.create({"data": {"header": "maybe"}}))


# --------------------------------------------------------------------------- issue 39: special files, huge lines


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_a_data_path_that_is_not_a_regular_file_is_refused_in_one_line_before_reading(tmp_path, kind):
    """A FIFO or /dev/zero as training data made train.py wait forever with no word."""
    import os

    from seq2seq_rdrop.data import iter_examples

    path = {"fifo": tmp_path / "train.tsv", "directory": tmp_path, "device": "/dev/zero"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    with pytest.raises(DataError) as info:
        next(iter_examples(path))
    said = {"fifo": "a FIFO", "directory": "a directory", "device": "a device"}[kind]
    assert str(info.value) == f"{path} is {said}, not a regular file: give a data file"


def test_train_py_refuses_a_fifo_as_training_data_in_one_line_and_writes_nothing(data_dir, tmp_path):
    import os

    from conftest import run_script

    os.mkfifo(data_dir / "fifo.tsv")
    run = tmp_path / "run"
    done = run_script("train.py", f"data.dir={data_dir}", "data.train_file=fifo.tsv", f"hydra.run.dir={run}",
                      "trainer.num_threads=1", timeout=120)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"error: data.train_file=fifo.tsv: {data_dir / 'fifo.tsv'} is a FIFO, not a regular file; give a data file"]
    assert not run.exists()


def _columns_cut(text: str, max_chars: int) -> str:
    return "\t".join(column[:max_chars] for column in text.split("\t"))


@pytest.mark.parametrize("block", [7, 64, 1 << 16])
def test_columns_cut_while_reading_equal_the_whole_lines_cut_afterwards(tmp_path, monkeypatch, block):
    """data_lines(max_chars) reads a long line a block at a time and keeps the first max_chars characters of each
    column: the same text as reading it whole and cutting it, at every block boundary, multi-byte characters,
    CRLF and blank lines included; lines no longer than the limit come out unchanged."""
    import random

    from seq2seq_rdrop import data

    rng = random.Random(block)
    alphabet = ["a", "Z", "7", " ", "é", "中", "文", "𠀀", "，"]
    lines = ["短标题\t短摘要", "", "\ufeff标题\t" + "中" * 300, "x" * 1000 + "\t" + "𠀀é" * 200 + "\r",
             "only one column " * 40, "a\t\tb\t" + "文" * 90]
    lines += ["\t".join("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400))) for _ in range(rng.randint(1, 5)))
              for _ in range(30)]
    path = tmp_path / "lines.tsv"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    monkeypatch.setattr(data, "READ_BLOCK", block)
    whole = list(data.data_lines(path))
    for max_chars in (5, 37, 100, 10_000):
        cut = list(data.data_lines(path, max_chars))
        assert cut == [(n, _columns_cut(text, max_chars)) for n, text in whole], max_chars
    assert list(data.data_lines(path, 10_000)) == whole


def test_a_5_mb_line_is_never_held_whole_when_read_for_training(tmp_path):
    """read_examples(max_chars=column_limit(...)) of a file with a 5 MB abstract allocates a bounded amount,
    not the line (tracemalloc counts Python's allocations: no timing, no machine dependence)."""
    import tracemalloc

    from seq2seq_rdrop.data import column_limit

    path = tmp_path / "train.tsv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("标题一\t" + "摘要" * 20 + "\n")
        f.write("标题二\t" + "很长的摘要" * (5 * 2**20 // 15) + "\n")  # 5 MB of UTF-8
        f.write("标题三\t" + "摘要" * 20 + "\n")
    limit = column_limit(256, 64)
    tracemalloc.start()
    try:
        examples = read_examples(path, max_chars=limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [len(e.abstract) for e in examples] == [40, limit, 40]
    assert peak < 2**20, peak  # the line is 5 MiB; a block of it and the kept characters are far less


def test_the_training_read_limit_keeps_normal_data_whole(data_dir):
    """Normal titles and abstracts are read exactly as before: the cut only reaches what the model never reads."""
    from seq2seq_rdrop.data import column_limit

    for name in ("train.tsv", "dev.tsv"):
        assert read_examples(data_dir / name, max_chars=column_limit(40, 8)) == read_examples(data_dir / name)


def test_a_json_line_too_long_to_cut_is_a_bad_line_named_and_skippable(tmp_path):
    path = tmp_path / "train.jsonl"
    lines = [{"title": "标题", "abstract": "摘要" * 10}, {"title": "长", "abstract": "摘" * 5000},
             {"title": "标题三", "abstract": "摘要三"}]
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{path}:2: a JSON line with a field of more than 400 bytes"):
        read_examples(path, max_chars=100)
    assert [e.title for e in read_examples(path, skip_bad_lines=True, max_chars=100)] == ["标题", "标题三"]
