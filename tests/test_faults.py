"""Bad input and faults, tried as a careless or hostile user would (issue 16), and what generation takes
from the checkpoint (issue 17: its generation_config.json, titles in the abstract's case).

Special files are FIFOs and symbolic links in a temporary directory, never a real device; an unwritable
place and a full disk are simulated by patching the call that would fail (tests run as root here, which
ignores permission bits)."""
from __future__ import annotations

import errno
from conftest import load_generate_cli, random_abstracts, run_generate_cli, save_tiny_checkpoint, tiny_title_model
import json
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
LATIN_TEXT = "基于的研究方法网络 mri ipv6 lte td fmri"
MAX_LEN = 5


cli_module = load_generate_cli("generate_cli_faults")


def _abstracts(n: int, seed: int = 0) -> list[str]:
    return random_abstracts(n, seed)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models gain nothing from threads


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A tiny UniLM with a copy head, saved as training saves its checkpoint, from a run whose decoding
    differs from the defaults (beam 2, no n-gram blocking, titles of at most 5 tokens, abstracts of 40)."""
    run_config = {"data": {"max_source_len": 40},
                  "decode": {"beam_size": 2, "max_len": MAX_LEN, "min_len": 1, "length_penalty": 1.0,
                             "no_repeat_ngram": 0, "num_return": 1, "use_cache": True, "batch_size": 64}}
    return save_tiny_checkpoint(tmp_path_factory.mktemp("faults"), run_config, copy=True)


@pytest.fixture
def text_file(tmp_path) -> Path:
    path = tmp_path / "abstracts.txt"
    path.write_text("\n".join(_abstracts(3)) + "\n", encoding="utf-8")
    return path


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    return run_generate_cli(cli_module, monkeypatch, capsys, *args)


def expected_titles(ckpt, path: Path) -> str:
    """What generate.py writes for `path` to stdout: the reference for every output target."""
    from seq2seq_rdrop.generation import TitleGenerator, read_input, tsv_lines

    examples = read_input(str(path))
    results = TitleGenerator.from_pretrained(ckpt, device="cpu").hypotheses([e.abstract for e in examples])
    return "".join(tsv_lines(examples, results))


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.rglob(".*") if p.name.endswith(".tmp")]


# ------------------------------------------------------------------- 1. special files are never replaced


def test_a_symlink_is_written_through_never_replaced(ckpt, text_file, tmp_path, monkeypatch, capsys):
    want = expected_titles(ckpt, text_file)
    target, link = tmp_path / "real.tsv", tmp_path / "link.tsv"
    target.write_text("old\n")
    link.symlink_to(target)
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}", f"output={link}")
    assert (rc, out, err) == (0, "", "")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text(encoding="utf-8") == want and no_temp_files(tmp_path)

    dangling = tmp_path / "dangling.tsv"  # a link to a file not yet there: the file is created, the link stays
    dangling.symlink_to(tmp_path / "new.tsv")
    rc, _, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}", f"output={dangling}")
    assert rc == 0, err
    assert dangling.is_symlink() and (tmp_path / "new.tsv").read_text(encoding="utf-8") == want


def test_a_fifo_and_a_link_to_it_are_written_to_never_replaced(ckpt, text_file, tmp_path, monkeypatch, capsys):
    want = expected_titles(ckpt, text_file)
    fifo = tmp_path / "titles.fifo"
    os.mkfifo(fifo)
    link = tmp_path / "to_fifo"
    link.symlink_to(fifo)
    for output in (fifo, link):
        received = []
        reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
        reader.start()
        rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}", f"output={output}")
        reader.join(timeout=60)
        assert (rc, out, err) == (0, "", "")
        assert received == [want.encode("utf-8")]
        assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink()
    assert no_temp_files(tmp_path)


def test_a_regular_file_is_replaced_whole_keeping_its_permissions(ckpt, text_file, tmp_path, monkeypatch, capsys):
    out_file = tmp_path / "titles.tsv"
    out_file.write_text("old\n")
    os.chmod(out_file, 0o640)
    rc, _, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}", f"output={out_file}")
    assert rc == 0, err
    assert out_file.read_text(encoding="utf-8") == expected_titles(ckpt, text_file)
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o640 and no_temp_files(tmp_path)


# ------------------------------------------------------ 3. the output place is checked before decoding


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if a model is loaded: the error must come before decoding."""
    from seq2seq_rdrop.generation import TitleGenerator

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded: the output should have been refused before decoding")

    monkeypatch.setattr(TitleGenerator, "from_pretrained", classmethod(refuse))


def test_an_unwritable_output_is_refused_before_decoding_in_one_line(ckpt, text_file, tmp_path, monkeypatch, capsys,
                                                                     no_decoding):
    from seq2seq_rdrop import generation

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}",
                           f"output={blocker / 'sub' / 'titles.tsv'}")
    assert (rc, out, err.splitlines()) == (1, "", [f"error: cannot write output={blocker / 'sub' / 'titles.tsv'}: "
                                                    f"{blocker} is a file, not a directory"])

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(generation.tempfile, "mkstemp", read_only)
    target = tmp_path / "ro" / "titles.tsv"
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}", f"output={target}")
    assert (rc, out, err.splitlines()) == (1, "", [f"error: cannot write output={target}: Read-only file system"])
    assert not target.exists()

    rc, _, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}", f"output={text_file}")
    assert (rc, err.splitlines()) == (1, [f"error: output={text_file} is the input file; give another path"])
    rc, _, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}", f"output={tmp_path}")
    assert (rc, err.splitlines()) == (1, [f"error: output={tmp_path} is a directory; give a file path"])


def test_an_output_in_or_onto_the_checkpoint_is_refused_before_decoding(ckpt, text_file, tmp_path, monkeypatch,
                                                                        capsys, no_decoding):
    """Issue 39: output=CHECKPOINT/model.safetensors replaced the weights with titles."""
    weights = ckpt / "model.safetensors"
    before = weights.read_bytes()
    elsewhere = tmp_path / "weights.safetensors"
    shutil.copy(weights, elsewhere)
    linked = shutil.copytree(ckpt, tmp_path / "linked", ignore=shutil.ignore_patterns("model.safetensors"))
    (linked / "model.safetensors").symlink_to(elsewhere)  # the checkpoint's file lives elsewhere
    (tmp_path / "alias").symlink_to(ckpt)
    cases = [
        (ckpt, weights, f"is inside the checkpoint directory {ckpt}; give a path outside it"),
        (ckpt, ckpt / "new_titles.tsv", f"is inside the checkpoint directory {ckpt}; give a path outside it"),
        (ckpt, tmp_path / "alias" / "config.json", f"is inside the checkpoint directory {ckpt}; give a path outside it"),
        (linked, elsewhere, f"is the checkpoint's file {linked / 'model.safetensors'}; give another path"),
    ]
    for checkpoint, output, reason in cases:
        rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={checkpoint}", f"input={text_file}", f"output={output}")
        assert (rc, out, err.splitlines()) == (1, "", [f"error: output={output} {reason}"])
    assert weights.read_bytes() == before == elsewhere.read_bytes()
    assert no_temp_files(tmp_path) and no_temp_files(ckpt)


def test_a_full_disk_leaves_the_old_file_and_no_temp_file(ckpt, text_file, tmp_path, monkeypatch, capsys):
    from seq2seq_rdrop import generation

    out_file = tmp_path / "titles.tsv"
    out_file.write_text("the previous titles\n")

    def full_disk(f, lines):
        f.write(next(iter(lines)))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(generation, "_write_all", full_disk)
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}", f"output={out_file}")
    assert (rc, out, err.splitlines()) == (1, "", [f"error: cannot write output={out_file}: No space left on device"])
    assert out_file.read_text() == "the previous titles\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abstracts.txt", "titles.tsv"]


def test_a_failure_while_decoding_leaves_no_temp_file(ckpt, text_file, tmp_path, monkeypatch, capsys):
    from seq2seq_rdrop.generation import TitleGenerator

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(TitleGenerator, "hypotheses", interrupted)
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}",
                           f"output={tmp_path / 'titles.tsv'}")
    assert (rc, err.splitlines()) == (130, ["error: interrupted"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abstracts.txt"]


# --------------------------------------------------------------------------- 2. bounded beams and memory


def test_beam_size_is_bounded_by_a_cap_the_vocabulary_and_the_memory(ckpt, api, text_file, tmp_path, monkeypatch,
                                                                    capsys):
    from seq2seq_rdrop import decode_options
    from seq2seq_rdrop.generation import GenerationError

    args = [f"checkpoint={ckpt}", f"input={text_file}", f"output={tmp_path / 'titles.tsv'}"]
    rc, _, err = run_cli(monkeypatch, capsys, *args, "decode.beam_size=10000")
    assert (rc, err.splitlines()) == (2, ["error: decode.beam_size=10000: allowed values are 1 to 64 (memory grows with "
                                          "the beam; titles stop improving long before)"])
    vocab = api.model.vocab_size
    assert vocab < 64
    rc, _, err = run_cli(monkeypatch, capsys, *args, f"decode.beam_size={vocab + 1}")
    assert (rc, err.splitlines()) == (1, [f"error: decode.beam_size={vocab + 1} exceeds the model's vocabulary of "
                                          f"{vocab} tokens"])
    with pytest.raises(GenerationError, match="allowed values are 1 to 64"):
        api.generate(["摘要"], beam_size=65)

    monkeypatch.setattr(decode_options, "available_memory", lambda device=None: 2**10)
    rc, _, err = run_cli(monkeypatch, capsys, *args)
    assert rc == 1 and len(err.splitlines()) == 1
    assert err.startswith("error: decoding 3 abstract(s) x decode.beam_size=2 at once needs about ")
    assert err.rstrip().endswith("of memory available: lower batch_size or decode.beam_size")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abstracts.txt"]


# ---------------------------------------------------------------------------- 4. damaged checkpoints


def damage(ckpt: Path, where: Path, case: str) -> Path:
    shutil.copytree(ckpt, where)
    if case == "truncated_weights":
        with open(where / "model.safetensors", "r+b") as f:
            f.truncate(where.joinpath("model.safetensors").stat().st_size // 2)
    elif case == "truncated_copy_head":
        with open(where / "extra_modules.safetensors", "r+b") as f:
            f.truncate(100)
    elif case == "wrong_vocab_size":
        config = json.loads((where / "config.json").read_text())
        config["vocab_size"] += 7
        (where / "config.json").write_text(json.dumps(config))
    elif case == "config_not_json":
        (where / "config.json").write_text('{"vocab_size": ')
    elif case == "no_weights":
        (where / "model.safetensors").unlink()
    elif case == "no_tokenizer":
        for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"):
            (where / name).unlink()
    elif case == "bad_generation_config":
        (where / "generation_config.json").write_text("{")
    return where


DAMAGE = {
    "truncated_weights": "model.safetensors is truncated",
    "truncated_copy_head": "extra_modules.safetensors is truncated",
    "wrong_vocab_size": "config.json says vocab_size=",
    "config_not_json": "config.json is not valid JSON",
    "no_weights": "incomplete: missing model.safetensors",
    "no_tokenizer": "incomplete: missing tokenizer files",
    "bad_generation_config": "generation_config.json is not valid JSON",
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_every_damaged_checkpoint_gives_the_same_one_line_error_everywhere(case, ckpt, text_file, tmp_path,
                                                                          monkeypatch, capsys):
    from hydra import compose, initialize_config_dir

    from seq2seq_rdrop import TitleGenerator
    from seq2seq_rdrop.checkpoints import CheckpointError
    from seq2seq_rdrop.generation import GenerationError
    from seq2seq_rdrop.model_setup import load_pretrained

    bad = damage(ckpt, tmp_path / "bad", case)
    pattern = f"checkpoint directory {bad} cannot be loaded ("
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={bad}", f"input={text_file}")
    assert (rc, out, len(err.splitlines())) == (1, "", 1), err
    assert err.startswith(f"error: {pattern}") and DAMAGE[case] in err

    with pytest.raises(GenerationError) as info:
        TitleGenerator.from_pretrained(bad, device="cpu")
    assert str(info.value) == err[len("error: "):].rstrip("\n")

    if case == "bad_generation_config":
        return  # training reads weights and tokenizer only
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        for group in ("unilm", "unilm_copy"):  # a pretrained checkpoint; a pretrain.py checkpoint fine-tuned
            cfg = compose("train", overrides=[f"model={group}", f"model.pretrained={bad}"])
            with pytest.raises(CheckpointError) as info:
                load_pretrained(cfg.model)
            text = str(info.value)
            assert "\n" not in text and DAMAGE[case] in text and "cannot be loaded (" in text
            assert text.startswith(f"model.pretrained: {pattern}")


def test_train_py_reports_a_damaged_pretrained_checkpoint_in_one_line(ckpt, tmp_path):
    from conftest import TINY, make_pairs, run_script, write_tsv

    data = tmp_path / "csl"
    data.mkdir()
    write_tsv(data / "train.tsv", make_pairs(20))
    write_tsv(data / "dev.tsv", make_pairs(4, seed=1))
    bad = damage(ckpt, tmp_path / "bad", "truncated_weights")
    proc = run_script("train.py", f"data.dir={data}", "model=unilm_copy", f"model.pretrained={bad}",
                      f"hydra.run.dir={tmp_path / 'run'}", *TINY)
    errors = [line for line in proc.stderr.splitlines() if "[INFO]" not in line]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-2000:]
    assert errors[0].startswith(f"error: model.pretrained: checkpoint directory {bad} cannot be loaded "
                                "(model.safetensors is truncated")


def test_a_checkpoint_left_only_as_its_previous_version_is_found(ckpt, text_file, tmp_path, monkeypatch, capsys):
    from hydra import compose, initialize_config_dir

    from seq2seq_rdrop import TitleGenerator
    from seq2seq_rdrop.checkpoints import CheckpointError
    from seq2seq_rdrop.model_setup import load_pretrained

    run = tmp_path / "run"
    run.mkdir()
    shutil.copytree(ckpt, run / ".checkpoint.old")  # a kill between the two renames of atomic_write_dir
    missing = run / "checkpoint"
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={missing}", f"input={text_file}")
    assert rc == 0 and out == expected_titles(ckpt, text_file)
    assert err.splitlines() == [f"warning: {missing} does not exist, but {run / '.checkpoint.old'}, its previous "
                                "version, survives (a run was killed while saving): using it; rename it to checkpoint "
                                "to keep it"]
    assert TitleGenerator.from_pretrained(missing, device="cpu").max_source_len == 40
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["model=unilm", f"model.pretrained={missing}"])
    model, _ = load_pretrained(cfg.model)
    assert model.vocab_size == TitleGenerator.from_pretrained(ckpt, device="cpu").model.vocab_size

    (run / ".checkpoint.old" / "model.safetensors").write_bytes(b"\0" * 4)  # the survivor is damaged too: named
    rc, _, err = run_cli(monkeypatch, capsys, f"checkpoint={missing}", f"input={text_file}")
    assert rc == 1 and err.splitlines()[-1].startswith(
        f"error: checkpoint directory {run / '.checkpoint.old'} cannot be loaded (model.safetensors is truncated")
    with pytest.raises(CheckpointError, match=r"\.checkpoint\.old cannot be loaded"):
        load_pretrained(cfg.model)


# ------------------------------------------- 7 + issue 17: the checkpoint's own generation settings


def test_the_checkpoint_carries_its_generation_settings_as_hugging_face_reads_them(ckpt, api):
    from transformers import GenerationConfig

    config = GenerationConfig.from_pretrained(ckpt)
    assert (config.num_beams, config.max_new_tokens, config.min_new_tokens, config.no_repeat_ngram_size,
            config.num_return_sequences, config.length_penalty) == (2, MAX_LEN, 1, 0, 1, 1.0)
    assert config.seq2seq_rdrop == {"max_source_len": 40}
    from seq2seq_rdrop.generation import LATER_DECODE_DEFAULTS  # options the run's config does not name

    assert api.decode == {"beam_size": 2, "max_len": MAX_LEN, "min_len": 1, "length_penalty": 1.0,
                          "no_repeat_ngram": 0, "num_return": 1, "use_cache": True, **LATER_DECODE_DEFAULTS}
    assert api.max_source_len == 40


def test_generate_py_decodes_as_the_checkpoint_unless_told(ckpt, api, text_file, monkeypatch, capsys):
    abstracts = text_file.read_text(encoding="utf-8").split()
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}")
    assert rc == 0 and err == ""
    want = api.generate(abstracts, beam_size=2, max_len=MAX_LEN, no_repeat_ngram=0, return_scores=True)
    assert [line.split("\t")[1] for line in out.splitlines()] == [t for t, _ in want]
    rc, out, _ = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}", "decode.beam_size=1",
                         "decode.max_len=3")
    greedy = api.generate(abstracts, beam_size=1, max_len=3)
    assert rc == 0 and [line.split("\t")[1] for line in out.splitlines()] == greedy
    rc, _, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={text_file}", "decode.num_return=3")
    assert (rc, err.splitlines()) == (2, ["error: decode.num_return=3 cannot exceed decode.beam_size=2"])


def test_greedy_settings_round_trip_with_their_length_penalty(tmp_path):
    from transformers import GenerationConfig

    from seq2seq_rdrop.checkpoints import read_generation_config, write_generation_config

    write_generation_config(tmp_path, {"beam_size": 1, "length_penalty": 1.5, "no_repeat_ngram": 2}, 128)
    decode, max_source_len = read_generation_config(tmp_path)
    assert (decode["beam_size"], decode["length_penalty"], decode["no_repeat_ngram"], max_source_len) == (1, 1.5, 2, 128)
    assert GenerationConfig.from_pretrained(tmp_path).num_beams == 1  # HF reads it (it refuses beam-only flags)


@pytest.mark.parametrize("decode", [
    {"strategy": "sample", "num_return": 5, "temperature": 0.7, "top_k": 40, "top_p": 0.9, "seed": 3,
     "repetition_penalty": 1.2, "beam_size": 8, "length_penalty": 1.5},
    {"beam_size": 6, "beam_groups": 3, "diversity_penalty": 0.5, "num_return": 6, "repetition_penalty": 1.3},
    {"beam_size": 1, "temperature": 0.5, "seed": 9},  # greedy: the sampling options only under our key
])
def test_sampling_and_diverse_settings_round_trip_under_hugging_faces_names(tmp_path, decode):
    from transformers import GenerationConfig

    from seq2seq_rdrop.checkpoints import read_generation_config, write_generation_config
    from seq2seq_rdrop.generation import DEFAULT_DECODE

    write_generation_config(tmp_path, decode, 128)
    assert read_generation_config(tmp_path) == ({**DEFAULT_DECODE, **decode}, 128)
    hf = GenerationConfig.from_pretrained(tmp_path)  # HF reads it, in the mode it names
    sampling = decode.get("strategy") == "sample"
    assert hf.do_sample is sampling and hf.num_beams == (1 if sampling else decode["beam_size"])
    assert hf.repetition_penalty == decode.get("repetition_penalty", 1.0)
    if sampling:
        assert (hf.temperature, hf.top_k, hf.top_p, hf.num_return_sequences) == (0.7, 40, 0.9, 5)
    elif decode["beam_size"] > 1:
        assert (hf.num_beam_groups, hf.diversity_penalty) == (3, 0.5)


def test_a_checkpoint_without_settings_warns_naming_the_defaults_it_falls_back_to(ckpt, text_file, tmp_path,
                                                                                 monkeypatch, capsys):
    bare = shutil.copytree(ckpt, tmp_path / "bare")
    for name in ("generation_config.json", "train_config.yaml"):
        (bare / name).unlink()
    rc, _, err = run_cli(monkeypatch, capsys, f"checkpoint={bare}", f"input={text_file}", "decode.max_len=4",
                         "max_source_len=40")
    assert rc == 0
    assert err.splitlines() == [
        f"warning: checkpoint {bare} has no generation_config.json: using the defaults decode.beam_size=16, "
        "decode.min_len=1, decode.length_penalty=1.0, decode.no_repeat_ngram=3, decode.num_return=1, "
        "decode.use_cache=true (set them as the model was trained, e.g. max_source_len=N decode.beam_size=K)"]

    # an older checkpoint: no generation_config.json, its run's train_config.yaml says it all, quietly
    older = shutil.copytree(ckpt, tmp_path / "older")
    (older / "generation_config.json").unlink()
    older.joinpath("train_config.yaml").write_text(
        "data:\n  max_source_len: 40\ndecode:\n  beam_size: 2\n  max_len: 5\n  min_len: 1\n  length_penalty: 1.0\n"
        "  no_repeat_ngram: 0\n  num_return: 1\n  use_cache: true\n  batch_size: 64\n")
    rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={older}", f"input={text_file}")
    assert (rc, err) == (0, "") and out == expected_titles(ckpt, text_file)


# ------------------------------------------------------------- issue 17: titles in the abstract's case


def test_restore_case_takes_the_abstracts_surface_form_and_changes_nothing_else():
    from seq2seq_rdrop.metrics import chars
    from seq2seq_rdrop.tokenizer import restore_case

    abstract = "本文利用MRI数据研究IPv6网络中的LTE TD-SCDMA，并与fMRI、Deep learning和deep模型比较。"
    cases = {
        "基于mri的ipv6网络研究": "基于MRI的IPv6网络研究",
        "lte td-scdma网络": "LTE TD-SCDMA网络",
        "fmri与mri": "fMRI与MRI",
        "deep模型": "deep模型",  # the abstract writes it both ways (once each): lower case kept
        "cnn模型": "cnn模型",  # not in the abstract: as generated
        "2019年研究": "2019年研究",
    }
    for title, want in cases.items():
        got = restore_case(title, abstract)
        assert got == want and chars(got) == chars(title)
    assert restore_case("tdd系统", "TD系统") == "tdd系统"  # longer than any abstract word: unchanged


def test_titles_shown_to_users_keep_the_abstracts_case_scores_stay(tmp_path, monkeypatch, capsys):
    """The model writes lower case (the tokenizer lower-cases); generate.py and TitleGenerator show the
    abstract's MRI, IPv6, LTE TD; keep_case=false shows the model's own; evaluate=true scores both alike."""
    from omegaconf import OmegaConf

    from seq2seq_rdrop import TitleGenerator, decoding
    from seq2seq_rdrop.checkpoints import save_model_checkpoint
    from seq2seq_rdrop.decoding import Hypothesis
    from seq2seq_rdrop.tokenizer import build_tokenizer, encode_text

    tokenizer = build_tokenizer([LATIN_TEXT], tmp_path / "tok")
    cfg = OmegaConf.create({"data": {"max_source_len": 40}, "decode": {"beam_size": 2, "max_len": 12}})
    ckpt = save_model_checkpoint(tmp_path / "ckpt", tiny_title_model(tokenizer), tokenizer, cfg)
    lower = "基于mri的ipv6网络lte td研究"
    ids = encode_text(tokenizer, lower)

    def fixed(model, tok, abstracts, decode_cfg, **kwargs):  # the model "generates" the lower-cased title
        return [[Hypothesis(list(ids), -0.5, -1.0)] for _ in abstracts]

    monkeypatch.setattr(decoding, "generate", fixed)
    abstract = "本文用MRI研究IPv6网络的LTE TD方法"
    generator = TitleGenerator.from_pretrained(ckpt, device="cpu")
    assert generator.generate(abstract) == "基于MRI的IPv6网络LTE TD研究"
    assert generator.generate(abstract, keep_case=False) == lower
    assert TitleGenerator.from_pretrained(ckpt, device="cpu", keep_case=False).generate(abstract) == lower

    data = tmp_path / "dev.tsv"
    data.write_text(f"基于MRI的IPv6网络研究\t{abstract}\n", encoding="utf-8")
    scores = {}
    for keep in ("true", "false"):
        rc, out, err = run_cli(monkeypatch, capsys, f"checkpoint={ckpt}", f"input={data}", "output_format=jsonl",
                               "evaluate=true", f"keep_case={keep}")
        assert rc == 0, err
        assert json.loads(out)["title"] == ("基于MRI的IPv6网络LTE TD研究" if keep == "true" else lower)
        scores[keep] = [line for line in err.splitlines() if line.startswith("input")]
    assert scores["true"] == scores["false"] and scores["true"]
