"""scripts/prepare_csl.py on tiny synthetic files of each layout, written in tmp_path."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq_rdrop.data import read_examples

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prep():
    spec = importlib.util.spec_from_file_location("prepare_csl", REPO / "scripts" / "prepare_csl.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def pair(i: int) -> tuple[str, str]:
    """A distinct synthetic (title, abstract); titles and abstracts differ from every other i's."""
    return f"标题{i:03d}号研究", f"摘要{i:03d}号。本文提出一种方法{i:03d},实验表明有效。"


def write_layouts(tmp_path: Path) -> dict[str, Path]:
    """Four files, one per layout, 10 distinct pairs each (ids 0-9, 10-19, ...)."""
    files = {}
    lines = {
        "clge.tsv": lambda t, a, i: f"{t}\t{a}",
        "ts.tsv": lambda t, a, i: f"to title\t{a}\t{t}",
        "full.tsv": lambda t, a, i: f"{t}\t{a}\tk1_k2\t{'工学' if i % 2 else '理学'}\t计算机",
        "public.jsonl": lambda t, a, i: json.dumps({"title": t, "abst": a, "keywords": ["k"]}, ensure_ascii=False),
    }
    for k, (name, fmt) in enumerate(lines.items()):
        rows = [fmt(*pair(10 * k + j), 10 * k + j) for j in range(10)]
        files[name] = tmp_path / name
        files[name].write_text("\n".join(rows) + "\n", encoding="utf-8")
    return files


def read_tsv(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split("\t")) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_layout_is_read_and_split_into_disjoint_files(prep, tmp_path):
    files = write_layouts(tmp_path)
    out = tmp_path / "out"
    stats = prep.prepare([str(p) for p in files.values()], out, dev_size=5, test_size=4, seed=1)
    assert [s["layout"] for s in stats["sources"]] == ["tsv2", "tsv3", "tsv5", "jsonl"]
    assert stats["splits"] == {"train": 31, "dev": 5, "test": 4}
    splits = {name: read_tsv(out / f"{name}.tsv") for name in ("train", "dev", "test")}
    everything = [p for rows in splits.values() for p in rows]
    assert sorted(everything) == sorted(pair(i) for i in range(40))  # every layout gives (title, abstract)
    assert len({t for t, _ in everything}) == 40
    for name in splits:  # the files read back with the training reader
        assert [(e.title, e.abstract) for e in read_examples(out / f"{name}.tsv")] == splits[name]
    assert stats["disciplines"]["train"]["(not given)"] + stats["disciplines"]["dev"].get("(not given)", 0) \
        + stats["disciplines"]["test"].get("(not given)", 0) == 30
    assert set(stats["lengths_chars"]["train"]["abstract"]) == {"mean", "p5", "p50", "p95", "p99", "max"}


def test_same_seed_writes_identical_files_and_another_seed_another_split(prep, tmp_path):
    files = [str(p) for p in write_layouts(tmp_path).values()]
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / name
        prep.prepare(files, out, dev_size=5, test_size=5, seed=seed)
        runs[name] = {f: (out / f).read_bytes() for f in ("train.tsv", "dev.tsv", "test.tsv", "stats.json")}
    assert runs["a"] == runs["b"]
    assert runs["a"]["dev.tsv"] != runs["c"]["dev.tsv"]


def test_whitespace_is_normalised_and_empty_or_duplicate_pairs_are_dropped(prep, tmp_path):
    t, a = pair(1)
    rows = [
        f"  {t}\u3000 \t{a[:4]}  \u00a0{a[4:]} ",     # kept, whitespace runs -> one space, ends stripped
        f"{t}\t另一个摘要完全不同。",                   # same title: dropped
        f"新的标题\t{a}",                              # same abstract up to whitespace: dropped
        f"{t.replace('1', '１')}！\t第三个摘要。",       # same title up to width and punctuation: dropped
        f"  \t{pair(2)[1]}",                           # empty title: dropped
        f"{pair(3)[0]}\t   ",                          # empty abstract: dropped
        "\t".join(pair(1)),                            # the whole pair again: dropped
        "坏行没有制表符",                                 # malformed: skipped and counted
        *["\t".join(pair(i)) for i in range(10, 20)],
    ]
    src = tmp_path / "src.tsv"
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    stats = prep.prepare([str(src)], tmp_path / "out", dev_size=2, test_size=2, seed=0)
    assert stats["dropped"] == {"bad_line": 1, "empty_title": 1, "empty_abstract": 1, "no_discipline": 0,
                                "other_discipline": 0, "duplicate_title": 2, "duplicate_abstract": 1,
                                "duplicate_pair": 1, "cross_split": 0}
    kept = [p for name in ("train", "dev", "test") for p in read_tsv(tmp_path / "out" / f"{name}.tsv")]
    assert (t, f"{a[:4]} {a[4:]}") in kept and len(kept) == 11


def test_discipline_filter_keeps_that_discipline_and_drops_pairs_without_one(prep, tmp_path):
    files = write_layouts(tmp_path)
    stats = prep.prepare([str(files["full.tsv"]), str(files["clge.tsv"])], tmp_path / "out",
                         dev_size=1, test_size=1, disciplines=["工学"])
    assert stats["splits"] == {"train": 3, "dev": 1, "test": 1}
    assert stats["dropped"]["other_discipline"] == 5 and stats["dropped"]["no_discipline"] == 10
    assert stats["disciplines"]["train"] == {"工学": 3} and stats["categories"]["train"] == {"计算机": 3}
    # the 5th column matches too (the release's two label columns: a field and a discipline)
    stats = prep.prepare([str(files["full.tsv"])], tmp_path / "out2", dev_size=1, test_size=1, disciplines=["计算机"])
    assert stats["splits"]["train"] == 8
    with pytest.raises(ValueError, match="no pair matches --discipline 医学; labels in the sources: 计算机, 工学, 理学"):
        prep.prepare([str(files["full.tsv"])], tmp_path / "out3", disciplines=["医学"])


def test_cross_split_guard_drops_leaks_from_dev_and_test(prep):
    from collections import Counter

    P = prep.Pair
    splits = {"train": [P("甲", "一"), P("乙", "二")], "dev": [P("甲 ", "三"), P("丙", "四")], "test": [P("丁", "二。")]}
    dropped = Counter()
    prep.drop_cross_split(splits, dropped)
    assert dropped["cross_split"] == 2 and splits["dev"] == [P("丙", "四")] and splits["test"] == []


def test_command_line_errors_are_one_line_and_strict_names_file_and_line(tmp_path):
    src = tmp_path / "src.tsv"
    src.write_text("".join("\t".join(pair(i)) + "\n" for i in range(5)) + "坏行\n", encoding="utf-8")
    script = [sys.executable, str(REPO / "scripts" / "prepare_csl.py")]
    proc = subprocess.run([*script, str(src), "--out", str(tmp_path / "o"), "--dev-size", "3", "--test-size", "3"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "would leave no training pairs" in proc.stderr
    proc = subprocess.run([*script, str(src), "--out", str(tmp_path / "o"), "--dev-size", "1", "--test-size", "1",
                           "--strict"], capture_output=True, text=True)
    assert proc.returncode == 2 and f"{src}:6:" in proc.stderr
    proc = subprocess.run([*script, str(src), "--out", str(tmp_path / "o"), "--dev-size", "1", "--test-size", "1"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "train.tsv 3" in proc.stdout and "bad_line" in proc.stdout
