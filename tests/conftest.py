"""Shared fixtures: synthetic CSL-like data and a tiny model, so tests never need the real data."""
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CJK = [chr(c) for c in range(0x4E00, 0x4E00 + 60)]

# train.py overrides that make a run take seconds on a CPU
TINY = [
    "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.intermediate_size=64",
    "data.max_source_len=40", "data.vocab_min_count=1", "decode.max_len=8", "decode.batch_size=16",
    "trainer.batch_size=8", "trainer.num_threads=1", "trainer.log_every=2",
    "selector_epochs=0",  # no content selector unless a test asks for one (conf/train.yaml trains one first)
]

# overrides shared by every model family (TINY above also sizes a UniLM from scratch)
TINY_COMMON = ["data.max_source_len=40", "data.vocab_min_count=1", "data.max_eval_samples=4", "decode.max_len=6",
               "decode.batch_size=16", "trainer.batch_size=8", "trainer.num_threads=1", "trainer.log_every=1",
               "trainer.save_every=0", "trainer.max_steps=2", "selector_epochs=0"]


# the characters of the tiny checkpoints' vocabulary (save_tiny_checkpoint) and of their test abstracts
TITLE_ALPHABET = [chr(0x4E00 + i) for i in range(30)]


def random_abstracts(n: int, seed: int = 0, lo: int = 12, hi: int = 30) -> list[str]:
    """n strings of TITLE_ALPHABET, lo to hi characters long."""
    rng = random.Random(seed)
    return ["".join(rng.choice(TITLE_ALPHABET) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


def tiny_title_model(tokenizer, copy: bool = False):
    """A tiny UniLM (64 positions) whose weights are random but large, so that beam search has clear
    winners (no near-ties)."""
    import torch

    from seq2seq_rdrop.models import UniLM

    torch.manual_seed(0)
    model = UniLM.from_scratch(tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                               dropout=0.0, max_positions=64, copy=copy)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.5, generator=generator)
    return model


def save_tiny_checkpoint(root: Path, run_config: dict | None = None, copy: bool = False) -> Path:
    """root/checkpoint: tiny_title_model with its TITLE_ALPHABET tokenizer and the run's config (default:
    abstracts of 40 tokens), as training's checkpoint/ holds them."""
    from omegaconf import OmegaConf

    from seq2seq_rdrop.checkpoints import save_model_checkpoint
    from seq2seq_rdrop.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(["".join(TITLE_ALPHABET)], root / "tokenizer")
    cfg = OmegaConf.create(run_config or {"data": {"max_source_len": 40}})
    return save_model_checkpoint(root / "checkpoint", tiny_title_model(tokenizer, copy=copy), tokenizer, cfg)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A tiny checkpoint (save_tiny_checkpoint); a module that needs other run settings defines its own."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def api(ckpt):
    """The TitleGenerator of the module's `ckpt`, on the CPU."""
    from seq2seq_rdrop import TitleGenerator

    return TitleGenerator.from_pretrained(ckpt, device="cpu")


def compose_config(overrides=(), config: str = "train", hydra: bool = False):
    """conf/<config>.yaml composed with `overrides` as train.py / pretrain.py would (`hydra`: with the hydra node)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config, overrides=list(overrides), return_hydra_config=hydra)


def compose_train(overrides=()):
    return compose_config(overrides, "train")


def train_in_process(out_dir, *overrides: str) -> dict:
    """What `python train.py OVERRIDES hydra.run.dir=OUT_DIR` does, without its process (~8 s of imports):
    train() on the composed config. Tests of what only a process shows (exit codes, one-line errors,
    Hydra's .hydra/ and train.log, kills) start `python train.py` instead (run_script)."""
    import torch

    from seq2seq_rdrop.training import train

    threads = torch.get_num_threads()  # train() sets trainer.num_threads for the whole process
    try:
        return train(compose_train(overrides), out_dir)
    finally:
        torch.set_num_threads(threads)


def pretrain_in_process(out_dir, *overrides: str) -> dict:
    """What `python pretrain.py OVERRIDES hydra.run.dir=OUT_DIR` does, without its process."""
    import torch

    from seq2seq_rdrop.pretraining import pretrain

    threads = torch.get_num_threads()
    try:
        return pretrain(compose_config(overrides, "pretrain"), out_dir)
    finally:
        torch.set_num_threads(threads)


def run_script(script: str, *args: str, env: dict | None = None, timeout: float = 300, **kwargs):
    """`python SCRIPT ARGS` from the repository root (one thread, output captured): for what only a real
    process shows."""
    return subprocess.run([sys.executable, script, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, **kwargs)


@pytest.fixture(scope="session", autouse=True)
def encoding_cache_in_tmp(tmp_path_factory):
    """data.cache_dir defaults to $SEQ2SEQ_RDROP_CACHE, else outputs/cache: tests (and the train.py
    processes they start) write theirs into a temporary directory, not the repository."""
    before = os.environ.get("SEQ2SEQ_RDROP_CACHE")
    os.environ["SEQ2SEQ_RDROP_CACHE"] = str(tmp_path_factory.mktemp("encoding_cache"))
    yield
    if before is None:
        os.environ.pop("SEQ2SEQ_RDROP_CACHE", None)
    else:
        os.environ["SEQ2SEQ_RDROP_CACHE"] = before


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads; keep the machine free for other work."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(title, abstract) pairs where the title is the abstract's first characters: learnable by copying."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        abstract = "".join(rng.choice(CJK) for _ in range(rng.randint(15, 30))) + "。"
        pairs.append((abstract[: rng.randint(4, 7)], abstract))
    return pairs


def write_tsv(path: Path, pairs) -> Path:
    path.write_text("".join(f"{t}\t{a}\n" for t, a in pairs), encoding="utf-8")
    return path


def write_tiny_csl(root: Path, n_train: int = 48, n_dev: int = 8, n_test: int = 6) -> Path:
    """root/csl/{train,dev,test}.tsv of synthetic pairs (no test.tsv when n_test is 0)."""
    d = root / "csl"
    d.mkdir()
    for name, n, seed in (("train", n_train, 0), ("dev", n_dev, 1), ("test", n_test, 2)):
        if n:
            write_tsv(d / f"{name}.tsv", make_pairs(n, seed=seed))
    return d


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return write_tiny_csl(tmp_path)


@pytest.fixture
def tiny_tokenizer(tmp_path):
    from seq2seq_rdrop.tokenizer import build_tokenizer

    texts = [t for pair in make_pairs(40) for t in pair] + ["lstm cnn 2019 ，。"]
    return build_tokenizer(texts, tmp_path / "tok", min_count=1)


@pytest.fixture
def tiny_unilm(tiny_tokenizer):
    import torch

    from seq2seq_rdrop.models import UniLM

    torch.manual_seed(0)
    return UniLM.from_scratch(tiny_tokenizer, hidden_size=32, num_layers=2, num_heads=2,
                              intermediate_size=64, max_positions=128).eval()


def sources(model):
    """Three abstracts of different lengths (token ids of the tiny vocabularies), collated by `model`."""
    return model.collate([model.build_example([5, 6, 7], None),
                          model.build_example([5, 6, 7, 10, 11, 12, 13], None),
                          model.build_example([14, 15], None)])["src_ids"]


def assert_beam_size_one_equals_greedy(model, max_len: int) -> None:
    """Beam search with one beam is greedy search: the same titles and scores (any model family)."""
    from seq2seq_rdrop.decoding import beam_search, greedy_search

    src = sources(model)
    greedy = greedy_search(model, src, max_len=max_len)
    beam = beam_search(model, src, beam_size=1, max_len=max_len)
    assert [h.tokens for h in greedy] == [b[0].tokens for b in beam]
    assert [h.score for h in greedy] == pytest.approx([b[0].score for b in beam], abs=1e-4)


def assert_cached_beam_search_equals_uncached(model, src, beam_size: int, max_len: int = 10) -> None:
    """Beam search with the key/value cache returns the same hypotheses and scores as recomputing
    the whole prefix at every step (the reference)."""
    from seq2seq_rdrop.decoding import beam_search

    assert_cached_equals_uncached(beam_search, model, src, beam_size=beam_size, max_len=max_len, num_return=beam_size,
                                  no_repeat_ngram=2)


def assert_cached_equals_uncached(search, model, src, **options) -> None:
    """`search` (beam_search, sample) with the key/value cache returns the same hypotheses and scores as
    recomputing the whole prefix at every step (the reference)."""
    cached = search(model, src, use_cache=True, **options)
    uncached = search(model, src, use_cache=False, **options)
    assert len(cached) == len(uncached) == src.size(0)
    for hyps_a, hyps_b in zip(cached, uncached):
        assert [h.tokens for h in hyps_a] == [h.tokens for h in hyps_b]
        assert [h.score for h in hyps_a] == pytest.approx([h.score for h in hyps_b], abs=1e-4)


def load_script(module_name: str, relative_path: str):
    """A script of the repository (generate.py, scripts/*.py: not a package) imported as a module, so its
    main(argv) runs in-process (fast CLI tests)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(module_name, REPO / relative_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_generate_cli(module_name: str):
    return load_script(module_name, "generate.py")


def run_generate_cli(cli_module, monkeypatch, capsys, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """generate.py's main() in this process; returns (exit status, stdout, stderr)."""
    import io
    import sys

    monkeypatch.setattr(sys, "argv", ["generate.py", *args])
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    try:
        rc = cli_module.main()
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err
