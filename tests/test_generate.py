"""generate.py and the TitleGenerator API on a tiny checkpoint made in the test.

Most CLI runs call generate.main() in this process (the real Hydra entry point, with sys.argv
patched): a subprocess pays ~8 s of torch imports each time. Subprocesses check what only a real
process shows: stdin to stdout with nothing else on stdout and no files left behind, exit codes
and one-line errors (those never import torch, so they are fast).
"""
from __future__ import annotations

import importlib.util

from conftest import TITLE_ALPHABET, load_generate_cli, random_abstracts, run_generate_cli
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from seq2seq_rdrop.data import Example  # noqa: E402
from seq2seq_rdrop.generation import (DEFAULT_BATCH_SIZE, DEFAULT_DECODE, DEFAULT_MAX_SOURCE_LEN,  # noqa: E402
                                     GenerationError)
from seq2seq_rdrop.metrics import score_corpus  # noqa: E402
from seq2seq_rdrop.rerank import NO_RERANK, parse_weights  # noqa: E402


cli_module = load_generate_cli("generate_cli")

MAX_LEN = 5  # decode.max_len for every run: short titles, fast beams
TSV_LINE = re.compile(r"^(\d+)\t([^\t\n]*)\t(-?\d+\.\d{4}|-inf)$")


_abstracts = random_abstracts


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models gain nothing from threads


def run_cli(monkeypatch, capsys, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    return run_generate_cli(cli_module, monkeypatch, capsys, *args, stdin=stdin)


def run_process(*args: str, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO_ROOT / "generate.py"), *args], input=stdin,
                          capture_output=True, cwd=cwd, env=env, timeout=240)


def parse_tsv(text: str) -> list[tuple[int, str, float]]:
    rows = []
    for line in text.splitlines():
        m = TSV_LINE.match(line)
        assert m, f"not an abstract_id<TAB>title<TAB>score line: {line!r}"
        rows.append((int(m.group(1)), m.group(2), float(m.group(3))))
    return rows


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


# --------------------------------------------------------------------------------------- CLI


def test_plain_text_titles_match_the_api(ckpt, api, tmp_path, monkeypatch, capsys):
    abstracts = _abstracts(7)
    lines = abstracts[:3] + ["", "   "] + abstracts[3:]  # two blank lines: skipped, counted, ids keep line numbers
    (tmp_path / "abstracts.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={tmp_path / 'abstracts.txt'}",
                           f"decode.max_len={MAX_LEN}", "batch_size=3")
    assert rc == 0, err
    rows = parse_tsv(out)
    assert [r[0] for r in rows] == [1, 2, 3, 6, 7, 8, 9]
    assert warnings_in(err) == [f"warning: {tmp_path / 'abstracts.txt'}: skipped 2 blank line(s)"]

    expected = api.generate(abstracts, beam_size=3, max_len=MAX_LEN, return_scores=True, batch_size=3)
    assert [r[1] for r in rows] == [title for title, _ in expected]
    assert [r[2] for r in rows] == [float(f"{score:.4f}") for _, score in expected]
    assert any(r[1] for r in rows)


def test_tsv_with_references_and_evaluate(ckpt, tmp_path, monkeypatch, capsys):
    abstracts = _abstracts(6, seed=1)
    refs = [a[:4] for a in abstracts]
    (tmp_path / "dev.tsv").write_text("".join(f"{t}\t{a}\n" for t, a in zip(refs, abstracts)), encoding="utf-8")
    out_file = tmp_path / "out" / "titles.tsv"
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={tmp_path / 'dev.tsv'}",
                           f"output={out_file}", "evaluate=true", f"decode.max_len={MAX_LEN}")
    assert rc == 0, err
    rows = parse_tsv(out_file.read_text(encoding="utf-8"))
    assert [r[0] for r in rows] == list(range(1, 7))
    # the table goes to stdout when the titles go to a file, with the metric code training uses
    scores = score_corpus(refs, [r[1] for r in rows])
    table = out.splitlines()
    assert table[1].split() == ["split", "rouge-1", "rouge-2", "rouge-l", "bleu", "n"]
    assert table[2].split() == ["input", *(f"{scores[m]:.2f}" for m in ("rouge-1", "rouge-2", "rouge-l", "bleu")), "6"]
    assert not list(tmp_path.glob("out/.*.tmp"))

    # titles on stdout: the table moves to stderr, stdout holds only titles
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={tmp_path / 'dev.tsv'}",
                           "evaluate=true", f"decode.max_len={MAX_LEN}")
    assert rc == 0 and parse_tsv(out) == rows and "rouge-l" in err


def test_jsonl_input_and_output_with_nbest(ckpt, api, tmp_path, monkeypatch, capsys):
    abstracts = _abstracts(4, seed=2)
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"abst": a, "title": a[:3]}, ensure_ascii=False) + "\n" for a in abstracts), encoding="utf-8")
    args = [f"checkpoint={ckpt}", f"input={tmp_path / 'in.jsonl'}", f"decode.max_len={MAX_LEN}",
            "decode.beam_size=3", "decode.num_return=2"]
    rc, out, err = run_cli(monkeypatch, capsys, *args, "output_format=jsonl")
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert [o["abstract_id"] for o in objs] == [1, 2, 3, 4]
    expected = api.generate(abstracts, beam_size=3, num_return=2, max_len=MAX_LEN, return_scores=True)
    for obj, best in zip(objs, expected):
        assert len(obj["nbest"]) == 2
        assert (obj["title"], obj["score"]) == (obj["nbest"][0]["title"], obj["nbest"][0]["score"])
        assert [h["title"] for h in obj["nbest"]] == [t for t, _ in best]
        assert obj["nbest"][0]["score"] >= obj["nbest"][1]["score"]

    # TSV n-best: one line per hypothesis, best first
    rc, out, err = run_cli(monkeypatch, capsys, *args)
    assert rc == 0, err
    rows = parse_tsv(out)
    assert [r[0] for r in rows] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert [r[1] for r in rows] == [h["title"] for o in objs for h in o["nbest"]]

    # num_return=1: no nbest list
    rc, out, _ = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={tmp_path / 'in.jsonl'}",
                         f"decode.max_len={MAX_LEN}", "output_format=jsonl")
    assert set(json.loads(out.splitlines()[0])) == {"abstract_id", "title", "score"}


def test_skip_bad_lines(ckpt, tmp_path, monkeypatch, capsys):
    good = _abstracts(3, seed=3)
    (tmp_path / "mixed.jsonl").write_text(
        json.dumps({"abst": good[0]}, ensure_ascii=False) + "\n"
        + "not json\n"
        + json.dumps({"abst": good[1]}, ensure_ascii=False) + "\n"
        + json.dumps({"title": "no abstract"}, ensure_ascii=False) + "\n"
        + json.dumps({"abstract": good[2]}, ensure_ascii=False) + "\n", encoding="utf-8")
    args = [f"checkpoint={ckpt}", f"input={tmp_path / 'mixed.jsonl'}", f"decode.max_len={MAX_LEN}"]
    rc, out, err = run_cli(monkeypatch, capsys, *args)
    assert rc == 1 and out == ""
    assert err.splitlines() == [f"error: {tmp_path / 'mixed.jsonl'}:2: invalid JSON (Expecting value) "
                                "(set skip_bad_lines=true to skip such lines)"]

    rc, out, err = run_cli(monkeypatch, capsys, *args, "skip_bad_lines=true")
    assert rc == 0, err
    assert [r[0] for r in parse_tsv(out)] == [1, 3, 5]
    assert any(":2: skipped" in w for w in warnings_in(err)) and any(":4: skipped" in w for w in warnings_in(err))

    # the same lines on stdin: the same titles, messages name <stdin>
    rc, out_stdin, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", "input=-", f"decode.max_len={MAX_LEN}",
                                 "skip_bad_lines=true", stdin=(tmp_path / "mixed.jsonl").read_bytes())
    assert rc == 0 and out_stdin == out
    assert "warning: <stdin>:2: skipped: invalid JSON (Expecting value)" in warnings_in(err)


def test_over_long_abstracts_one_warning(ckpt, tmp_path, monkeypatch, capsys):
    abstracts = _abstracts(3, seed=4, lo=6, hi=8) + _abstracts(4, seed=5, lo=20, hi=30)
    (tmp_path / "long.txt").write_text("\n".join(abstracts) + "\n", encoding="utf-8")
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={tmp_path / 'long.txt'}",
                           "max_source_len=10", f"decode.max_len={MAX_LEN}", "batch_size=2")
    assert rc == 0, err
    assert len(parse_tsv(out)) == 7
    assert warnings_in(err) == ["warning: 4 of 7 abstract(s) longer than max_source_len=10 tokens were truncated"]


def test_option_errors_in_process(ckpt, tmp_path, monkeypatch, capsys):
    (tmp_path / "a.txt").write_text(_abstracts(1)[0] + "\n", encoding="utf-8")
    base = [f"checkpoint={ckpt}", f"input={tmp_path / 'a.txt'}"]
    for extra, message in [
        (["decode.num_return=17"], "error: decode.num_return=17 cannot exceed decode.beam_size=16"),
        (["output_format=xml"], "error: output_format='xml': allowed values are tsv, jsonl"),
        (["decode.bogus=1"], "error: unknown option 'decode.bogus' (python generate.py --help lists the options)"),
        (["+extra=1"], "error: unknown option 'extra' (python generate.py --help lists the options)"),
        (["batch_size=0"], "error: batch_size=0: a positive integer is required"),
        (["max_source_len=60"], "error: max_source_len=60 + decode.max_len=32 (+2 special tokens) exceed the "
                                "model's 64 positions: lower max_source_len or decode.max_len"),
    ]:
        rc, out, err = run_cli(monkeypatch, capsys, *base, *extra)
        assert (rc, out, err.splitlines()) == (1 if "positions" in message else 2, "", [message]), extra
    rc, out, err = run_cli(monkeypatch, capsys, *base, "evaluate=true")
    assert rc == 1 and err.startswith("error: evaluate=true but the input holds no reference titles")


def test_stdin_subprocess_stdout_holds_only_titles(ckpt, api, tmp_path):
    abstracts = _abstracts(5, seed=6)
    work = tmp_path / "cwd"
    work.mkdir()
    proc = run_process(f"checkpoint={ckpt}", "input=-", f"decode.max_len={MAX_LEN}",
                       stdin=("\n".join(abstracts) + "\n").encode(), cwd=work)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = parse_tsv(proc.stdout.decode("utf-8"))
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert [r[1] for r in rows] == api.generate(abstracts, max_len=MAX_LEN)
    assert list(work.iterdir()) == []  # no outputs/, .hydra/ or log files


@pytest.mark.parametrize("case", ["missing_checkpoint", "empty_input", "unknown_option"])
def test_cli_errors_one_line_nonzero(case, ckpt, tmp_path):
    """Real processes: exit status, nothing on stdout, exactly one `error:` line on stderr."""
    text = tmp_path / "a.txt"
    text.write_text(_abstracts(1)[0] + "\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    args, status, message = {
        "missing_checkpoint": ([f"checkpoint={tmp_path / 'nope'}", f"input={text}"], 1,
                               f"error: checkpoint directory {tmp_path / 'nope'} does not exist"),
        "empty_input": ([f"checkpoint={ckpt}", f"input={tmp_path / 'empty.txt'}"], 1,
                        f"error: input {tmp_path / 'empty.txt'} is empty: no abstracts to title"),
        "unknown_option": ([f"checkpoint={ckpt}", f"input={text}", "beam_size=5"], 2,
                           "error: unknown option 'beam_size' (python generate.py --help lists the options)"),
    }[case]
    proc = run_process(*args, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr.decode().splitlines()) == (status, b"", [message])


def test_input_and_checkpoint_errors_in_process(ckpt, tmp_path, monkeypatch, capsys):
    text = tmp_path / "a.txt"
    text.write_text(_abstracts(1)[0] + "\n", encoding="utf-8")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}")
    for args, status, message in [
        ([f"checkpoint={tmp_path / 'partial'}", f"input={text}"], 1,
         f"error: checkpoint directory {tmp_path / 'partial'} cannot be loaded (incomplete: missing "
         "model.safetensors, tokenizer files (tokenizer.json or vocab.txt))"),
        ([f"checkpoint={ckpt}"], 2, "error: input=... is required: python generate.py checkpoint=PATH input=FILE "
                                    "(or input=- for stdin)"),
        ([f"checkpoint={ckpt}", f"input={tmp_path / 'none.txt'}"], 1, f"error: input {tmp_path / 'none.txt'}: no such file"),
        ([f"checkpoint={ckpt}", "input=-"], 1, "error: input <stdin> is empty: no abstracts to title"),
    ]:
        rc, out, err = run_cli(monkeypatch, capsys, *args, stdin=b"")
        assert (rc, out, err.splitlines()) == (status, "", [message]), args


# --------------------------------------------------------------------------------------- API


def test_api_return_shapes(ckpt, api):
    from seq2seq_rdrop import TitleGenerator

    abstracts = _abstracts(3, seed=7)
    titles = api.generate(abstracts, beam_size=3, max_len=MAX_LEN)
    assert isinstance(titles, list) and all(isinstance(t, str) for t in titles) and len(titles) == 3
    assert api.generate(abstracts[0], max_len=MAX_LEN) == titles[0]
    pairs = api.generate(abstracts, max_len=MAX_LEN, return_scores=True)
    assert [t for t, _ in pairs] == titles and all(isinstance(s, float) and s < 0 for _, s in pairs)
    nbest = api.generate(abstracts, beam_size=3, num_return=2, max_len=MAX_LEN)
    assert all(isinstance(row, list) and len(row) == 2 and row[0] == t for row, t in zip(nbest, titles))
    nbest_scored = api.generate(abstracts, beam_size=3, num_return=2, max_len=MAX_LEN, return_scores=True)
    assert all(row[0][1] >= row[1][1] for row in nbest_scored)
    assert api.max_source_len == 40  # from the checkpoint's train_config.yaml
    assert TitleGenerator.from_pretrained(ckpt, device="cpu", max_source_len=12).max_source_len == 12

    with pytest.raises(GenerationError, match="does not exist"):
        TitleGenerator.from_pretrained(ckpt.parent / "nope")
    with pytest.raises(GenerationError, match="cannot exceed"):
        api.generate(abstracts, beam_size=2, num_return=3)
    with pytest.raises(GenerationError, match="abstract 2 is empty"):
        api.generate([abstracts[0], "  "])
    with pytest.raises(GenerationError, match="unknown decoding option 'beam'"):
        api.generate(abstracts, beam=2)


def test_defaults_match_the_config_files():
    beam = yaml.safe_load((REPO_ROOT / "conf" / "decode" / "beam.yaml").read_text())
    assert {k: v for k, v in beam.items() if k not in ("batch_size", "rerank", "span_candidates")} == \
        {k: v for k, v in DEFAULT_DECODE.items() if k not in ("rerank", "span_candidates")}
    # decode.rerank and span_candidates: new runs re-rank with beam.yaml's tuned weights and the selector's spans,
    # while a checkpoint that does not name them was scored before they existed, and decodes as it was scored
    # (the options' defaults: none, 0)
    assert DEFAULT_DECODE["rerank"] == NO_RERANK and parse_weights(beam["rerank"], "decode.rerank")
    assert DEFAULT_DECODE["span_candidates"] == 0 and beam["span_candidates"] == 3
    cfg = yaml.safe_load((REPO_ROOT / "conf" / "generate.yaml").read_text())
    assert set(cfg) - {"defaults", "hydra"} | {"decode"} == set(cli_module.OPTIONS)
    assert cfg["batch_size"] == DEFAULT_BATCH_SIZE
    data = yaml.safe_load((REPO_ROOT / "conf" / "data" / "csl.yaml").read_text())
    assert data["max_source_len"] == DEFAULT_MAX_SOURCE_LEN


def test_package_import_stays_light():
    code = ("import sys, seq2seq_rdrop, seq2seq_rdrop.metrics, seq2seq_rdrop.generation; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert seq2seq_rdrop.TitleGenerator.__name__ == 'TitleGenerator'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()


def test_example_ids_are_line_numbers():
    from seq2seq_rdrop.generation import jsonl_lines, tsv_lines

    examples = [Example("摘要", None, 3), Example("摘要", None, 7)]
    results = [[("标题\t一", -0.5)], [("", float("-inf"))]]
    assert list(tsv_lines(examples, results)) == ["3\t标题 一\t-0.5000\n", "7\t\t-inf\n"]
    assert [json.loads(x) for x in jsonl_lines(examples, results)] == [
        {"abstract_id": 3, "title": "标题\t一", "score": -0.5}, {"abstract_id": 7, "title": "", "score": None}]


def _load_sweep_decoding():
    spec = importlib.util.spec_from_file_location("sweep_decoding", REPO_ROOT / "scripts" / "sweep_decoding.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_decoding_scores_each_setting_per_checkpoint_and_averages_over_checkpoints(ckpt, tmp_path, monkeypatch):
    sweep = _load_sweep_decoding()
    data = tmp_path / "dev.tsv"
    data.write_text("".join(f"{a[:4]}\t{a}\n" for a in _abstracts(6, seed=5)), encoding="utf-8")
    out = tmp_path / "sweep.md"
    monkeypatch.setattr(sys, "argv", ["sweep_decoding.py", str(ckpt), str(ckpt), "--data", str(data), "--out", str(out),
                                      "--setting", f"beam_size=1,max_len={MAX_LEN}",
                                      "--setting", f"beam_size=3,max_len={MAX_LEN},length_penalty=1.5"])
    assert sweep.main() == 0
    rows = [line.split(" | ") for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    per_run = [r for r in rows if r[0].startswith("| `")]
    means = [r for r in rows if r[0] == "| mean of 2"]
    assert len(per_run) == 4 and len(means) == 2
    for mean in means:  # the same checkpoint twice: each setting's mean is its (deterministic) row
        same = [r for r in per_run if r[1] == mean[1]]
        assert len(same) == 2 and same[0][2:7] == same[1][2:7] == mean[2:7]


def test_sweep_decoding_refuses_an_unknown_setting_naming_the_allowed_ones():
    sweep = _load_sweep_decoding()
    assert sweep.parse_setting("beam_size=8,length_penalty=1.2")[1] == {"beam_size": 8, "length_penalty": 1.2}
    with pytest.raises(SystemExit, match="beam_size, length_penalty"):
        sweep.parse_setting("beam=8")


def _load_rerank_nbest():
    spec = importlib.util.spec_from_file_location("rerank_nbest", REPO_ROOT / "scripts" / "rerank_nbest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mbr_picks_the_consensus_title_over_a_better_scored_outlier():
    rerank = _load_rerank_nbest()
    nbest = [("完全不同的题目", -1.0), ("基于深度学习的图像分割", -2.0), ("基于深度学习的图像识别", -2.1),
             ("深度学习的图像分割方法", -2.3)]
    assert rerank.mbr_pick(nbest) == "基于深度学习的图像分割"
    # a low temperature puts nearly all weight on the top-scored title: the pick is the one closest to it
    assert rerank.mbr_pick([("甲乙丙丁", -1.0), ("甲乙丙戊", -5.0), ("己庚辛壬", -5.0)], temperature=0.1) == "甲乙丙戊"


def test_rerank_nbest_oracle_bounds_every_pick_and_top1_is_beam_search(ckpt, tmp_path, monkeypatch):
    rerank = _load_rerank_nbest()
    data = tmp_path / "dev.tsv"
    data.write_text("".join(f"{a[:4]}\t{a}\n" for a in _abstracts(5, seed=6)), encoding="utf-8")
    out = tmp_path / "rerank.md"
    monkeypatch.setattr(sys, "argv", ["rerank_nbest.py", str(ckpt), "--data", str(data), "--out", str(out),
                                      "--beam-size", "3", "--no-repeat-ngram", "0", "--max-len", str(MAX_LEN)])
    assert rerank.main() == 0
    rows = {r[1]: [float(x) for x in r[2:6]] for r in
            (line.strip(" |").split(" | ") for line in out.read_text(encoding="utf-8").splitlines()
             if line.startswith("| `"))}
    oracle = rows.pop("oracle (closest to the reference; a bound)")
    assert all(oracle[2] >= scores[2] for scores in rows.values())  # ROUGE-L: the oracle is the best pick per row
    from seq2seq_rdrop import TitleGenerator
    from seq2seq_rdrop.metrics import score_corpus

    refs = [line.split("\t")[0] for line in data.read_text(encoding="utf-8").splitlines()]
    abstracts = [line.split("\t")[1] for line in data.read_text(encoding="utf-8").splitlines()]
    titles = TitleGenerator.from_pretrained(ckpt).generate(abstracts, beam_size=3, max_len=MAX_LEN)
    assert rows["top 1 (beam search)"][2] == pytest.approx(score_corpus(refs, titles)["rouge-l"], abs=0.006)


# ------------------------------------------------- sampling, diverse beam search, repetition penalty (issue 17)


def test_help_lists_every_decoding_option(monkeypatch, capsys):
    rc, out, _ = run_cli(monkeypatch, capsys, "--help")
    assert rc == 0
    for key in DEFAULT_DECODE:
        assert f"  {key}: null" in out and f"decode.{key}=" in out, key


def test_sampled_titles_from_the_command_line_are_the_apis_whatever_the_batch(ckpt, api, tmp_path, monkeypatch,
                                                                               capsys):
    abstracts = _abstracts(3, seed=7)
    (tmp_path / "a.txt").write_text("\n".join(abstracts) + "\n", encoding="utf-8")
    # 20 samples: more than the checkpoint's 16 beams, which do not bound sampling
    options = dict(strategy="sample", num_return=20, top_p=0.9, temperature=1.2, seed=5, max_len=MAX_LEN)
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={tmp_path / 'a.txt'}", "batch_size=1",
                           *(f"decode.{k}={v}" for k, v in options.items()))
    assert rc == 0, err
    rows = parse_tsv(out)
    assert [r[0] for r in rows] == [i for i in (1, 2, 3) for _ in range(20)]
    expected = api.generate(abstracts, return_scores=True, batch_size=3, **options)
    assert [r[1] for r in rows] == [title for row in expected for title, _ in row]
    assert all(len({title for title, _ in row}) > 1 for row in expected)
    assert api.generate(abstracts, **{**options, "seed": 6}) != [[t for t, _ in row] for row in expected]


def test_diverse_beams_and_repetition_penalty_through_the_api(api):
    abstracts = _abstracts(3, seed=8)
    diverse = api.generate(abstracts, beam_size=4, beam_groups=4, diversity_penalty=50.0, num_return=4, max_len=MAX_LEN)
    assert all(len(set(titles)) == 4 for titles in diverse)
    penalised = api.generate(abstracts, beam_size=3, repetition_penalty=1.3, max_len=MAX_LEN)
    assert len(penalised) == 3 and all(isinstance(t, str) for t in penalised)


@pytest.mark.parametrize("options", [
    dict(length_penalty=10.0), dict(length_penalty=-10.0), dict(repetition_penalty=0.01),
    dict(repetition_penalty=100.0), dict(strategy="sample", temperature=0.01), dict(strategy="sample", temperature=100.0),
    dict(strategy="sample", repetition_penalty=0.01), dict(strategy="sample", repetition_penalty=100.0),
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_the_ends_of_the_allowed_ranges_give_titles_with_finite_scores(api, options):
    """decode_options' bounds on length_penalty, temperature and repetition_penalty keep the arithmetic finite."""
    results = api.hypotheses(_abstracts(3, seed=4), num_return=2, beam_size=2, max_len=MAX_LEN, **options)
    assert all(title and math.isfinite(score) for row in results for title, score in row), results


def test_new_option_errors_name_the_option_in_one_line(ckpt, tmp_path, monkeypatch, capsys):
    (tmp_path / "a.txt").write_text(_abstracts(1)[0] + "\n", encoding="utf-8")
    base = [f"checkpoint={ckpt}", f"input={tmp_path / 'a.txt'}"]
    for extra, message in [
        (["decode.top_p=1.5"], "error: decode.top_p=1.5: allowed values are numbers in (0, 1]"),
        (["decode.temperature=0"], "error: decode.temperature=0: allowed values are numbers in [0.01, 100]"),
        (["decode.strategy=greedy"], "error: decode.strategy='greedy': allowed values are beam, sample"),
        (["decode.repetition_penalty=-1"], "error: decode.repetition_penalty=-1: allowed values are numbers in [0.01, 100]"),
        (["decode.beam_groups=3"],
         "error: decode.beam_groups=3 must divide decode.beam_size=16 (groups of equal size)"),
        (["decode.length_penalty=400"], "error: decode.length_penalty=400: allowed values are numbers in [-10, 10]"),
        (["decode.strategy=sample", "decode.temperature=1e308"],
         "error: decode.temperature=1e+308: allowed values are numbers in [0.01, 100]"),
    ]:
        rc, out, err = run_cli(monkeypatch, capsys, *base, *extra)
        assert (rc, out, err.splitlines()) == (2, "", [message]), extra


def test_measure_diversity_reports_each_way_of_getting_n_titles_with_the_oracle_above_the_top_title(ckpt, tmp_path):
    from conftest import load_script

    measure = load_script("measure_diversity", "scripts/measure_diversity.py")
    data = tmp_path / "dev.tsv"
    data.write_text("".join(f"{a[:4]}\t{a}\n" for a in _abstracts(6, seed=9)), encoding="utf-8")
    out = tmp_path / "diversity.md"
    assert measure.main([str(ckpt), "--data", str(data), "--n", "3", "--limit", "4", "--max-len", str(MAX_LEN),
                         "--out", str(out)]) == 0
    rows = [line.strip(" |").split(" | ") for line in out.read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith("| setting")]
    assert [r[0].split(":")[0].split(",")[0] for r in rows] == ["beam 3", "diverse beam", "sampling"]
    assert "(4 pairs), 3 titles per abstract" in out.read_text(encoding="utf-8")
    for _, distinct, titles, top1, oracle, _ in rows:
        assert 0 < float(distinct) <= 1 and 1 <= float(titles) <= 3 and float(oracle) >= float(top1)


# ------------------------------------------------------------------------ streaming (issue 27)


def test_titles_are_written_chunk_by_chunk_while_the_input_is_still_being_read(ckpt, tmp_path, monkeypatch,
                                                                              capsys):
    """batch_size=1: chunks of CHUNK_BATCHES abstracts; the first titles go out after the first chunk is
    read, and the output file stays the old one until the last chunk is written (then it is replaced)."""
    import seq2seq_rdrop.generation as generation

    n, chunk = 40, cli_module.CHUNK_BATCHES
    source = tmp_path / "abstracts.txt"
    source.write_text("\n".join(_abstracts(n)) + "\n", encoding="utf-8")
    output = tmp_path / "titles.tsv"
    output.write_text("old\n")
    read, seen_at_writes = [0], []
    real_iter, real_append = generation.iter_examples, generation.OutputFile.append

    def counting_iter(*args, **kwargs):
        for example in real_iter(*args, **kwargs):
            read[0] += 1
            yield example

    def recording_append(self, lines):
        seen_at_writes.append((read[0], output.read_text()))
        real_append(self, lines)

    monkeypatch.setattr(generation, "iter_examples", counting_iter)
    monkeypatch.setattr(generation.OutputFile, "append", recording_append)
    rc, _, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={source}", f"output={output}",
                         "batch_size=1", f"decode.max_len={MAX_LEN}", "decode.beam_size=2")
    assert rc == 0, err
    assert [count for count, _ in seen_at_writes][:3] == [chunk, 2 * chunk, n]
    assert all(text == "old\n" for _, text in seen_at_writes)  # replaced whole, at the end
    assert [row[0] for row in parse_tsv(output.read_text())] == list(range(1, n + 1))


def test_a_two_megabyte_abstract_is_never_tokenized_whole(api):
    calls = []
    tokenizer = api.tokenizer
    real_call = type(tokenizer).__call__

    def recording_call(self, text, *args, **kwargs):
        calls.append(len(text) if isinstance(text, str) else max(map(len, text)))
        return real_call(self, text, *args, **kwargs)

    huge = "".join(TITLE_ALPHABET) * (2_000_000 // len(TITLE_ALPHABET))
    try:
        type(tokenizer).__call__ = recording_call
        title = api.generate(huge, beam_size=2, max_len=MAX_LEN)
    finally:
        type(tokenizer).__call__ = real_call
    assert isinstance(title, str) and calls and max(calls) < 10 * api.max_source_len + 1000


def test_sigterm_during_generation_leaves_no_temporary_file(ckpt, tmp_path):
    import signal
    import time

    source = tmp_path / "many.txt"
    source.write_text("\n".join(_abstracts(20000)) + "\n", encoding="utf-8")
    output = tmp_path / "out" / "titles.tsv"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "generate.py"), f"checkpoint={ckpt}",
                             f"input={source}", f"output={output}", "decode.beam_size=2", f"decode.max_len={MAX_LEN}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while not list(output.parent.glob(".titles.tsv.*.tmp")) or not any(  # decoding has started: titles in the temp file
            p.stat().st_size for p in output.parent.glob(".titles.tsv.*.tmp")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.decode().strip().splitlines()[-1] == "error: interrupted (SIGTERM)"
    assert list(output.parent.iterdir()) == []


@pytest.mark.parametrize("bad,named", [(None, "not NoneType"), ({"摘要": 1}, "not dict"), (b"abc", "not bytes"),
                                       (7, "not int"), (["摘要一二三", b"x"], "abstract 2 is bytes")])
def test_the_api_refuses_what_is_not_a_list_of_strings_naming_it(api, bad, named):
    with pytest.raises(GenerationError, match=named):
        api.generate(bad)


def test_an_interpolation_in_a_checkpoints_train_config_is_not_resolved_and_is_blamed_on_the_checkpoint(
        ckpt, tmp_path, monkeypatch, capsys):
    import shutil

    old = shutil.copytree(ckpt, tmp_path / "old_ckpt")
    (old / "generation_config.json").unlink()  # an older checkpoint: its settings come from train_config.yaml
    (old / "train_config.yaml").write_text("decode:\n  beam_size: ${oc.env:HOME}\ndata:\n  max_source_len: 40\n")
    source = tmp_path / "a.txt"
    source.write_text(_abstracts(1)[0] + "\n", encoding="utf-8")
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={old}", f"input={source}")
    assert rc == 1 and out == ""
    assert err.strip() == (f"error: checkpoint directory {old} cannot be loaded (train_config.yaml: "
                           "decode.beam_size='${oc.env:HOME}': an integer is required)"), err
    assert os.environ["HOME"] not in err
