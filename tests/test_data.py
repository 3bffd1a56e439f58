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
