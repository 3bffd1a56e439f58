"""Never lose a run: a training run killed with SIGKILL and resumed ends exactly where an
uninterrupted run ends, and a NaN loss stops the run, naming the step, with the last good state kept.
The run to kill is a real `python train.py`; its resumption and the uninterrupted reference run in
process (train() as train.py calls it), which also shows that both give the same numbers.

The runs are tiny (a 1-layer UniLM of width 32 on 40 synthetic pairs, 30 steps) and use one CPU
thread, which makes them bit-for-bit reproducible.
"""
from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import train_in_process

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

ALPHABET = [chr(0x4E00 + i) for i in range(24)]
MAX_STEPS = 30
TINY = [
    "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.intermediate_size=64",
    "data.max_source_len=48", "data.vocab_min_count=1", "decode.max_len=8", "trainer.batch_size=4",
    f"trainer.max_steps={MAX_STEPS}", "trainer.save_every=5", "trainer.eval_every=10", "trainer.log_every=1",
    "trainer.num_threads=1", "trainer.device=cpu", "seed=3", "selector_epochs=0",
    "trainer.fast_dropout=true",  # the quality preset's dropout: its masks must resume on the same random stream
]


def write_data(root: Path, n_train: int = 40, n_dev: int = 8) -> Path:
    """title<TAB>abstract pairs of random CJK characters; the title is a prefix of the abstract."""
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("dev", n_dev)):
        lines = []
        for _ in range(n):
            abstract = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(16, 30)))
            lines.append(f"{abstract[:rng.randint(4, 8)]}\t{abstract}\n")
        (root / f"{name}.tsv").write_text("".join(lines), encoding="utf-8")
    return root


def start_training(run_dir: Path, data_dir: Path, *extra: str) -> subprocess.Popen:
    """`python train.py` in the background; its output goes to files in run_dir's parent."""
    log = open(run_dir.parent / f"{run_dir.name}.{int(time.time() * 1000)}.log", "wb")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "HYDRA_FULL_ERROR": "1"}
    cmd = [sys.executable, str(REPO_ROOT / "train.py"), *TINY, f"data.dir={data_dir}",
           f"hydra.run.dir={run_dir}", *extra]
    proc = subprocess.Popen(cmd, cwd=run_dir.parent, stdout=log, stderr=subprocess.STDOUT, env=env)
    proc.log_path = Path(log.name)
    log.close()
    return proc


def train_here(run_dir: Path, data_dir: Path, *extra: str) -> dict:
    """start_training's run, in this process."""
    return train_in_process(run_dir, *TINY, f"data.dir={data_dir}", *extra)


def resume_here(run_dir: Path, data_dir: Path, caplog, *extra: str) -> str:
    """The killed run resumed in this process; returns what it logged (train.py's train.log)."""
    with caplog.at_level(logging.INFO, logger="seq2seq_rdrop"):
        train_here(run_dir, data_dir, *extra, "trainer.resume=true")
    return caplog.text


def load_state(run_dir: Path) -> dict:
    from seq2seq_rdrop.train_state import load_trainer_state

    return load_trainer_state(run_dir / "state" / "trainer_state.pt")


def kill_after_first_state(killed_dir: Path, data_dir: Path, *extra: str) -> int:
    """Start `train.py` into killed_dir, SIGKILL it as soon as its first state/ is complete, and
    return the step that state holds."""
    victim = start_training(killed_dir, data_dir, *extra)
    try:
        state_file = killed_dir / "state" / "trainer_state.pt"  # state/ is swapped in whole: present = complete
        deadline = time.monotonic() + 240
        while not state_file.exists():
            assert victim.poll() is None, f"train.py ended before saving any state:\n{victim.log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no state/ after 240 s"
            time.sleep(0.005)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (killed_dir / "metrics.json").exists(), "the run finished before it could be killed"
    saved_step = load_state(killed_dir)["progress"]["step"]
    assert 0 < saved_step < MAX_STEPS
    return saved_step


def test_killed_run_resumes_to_the_same_result(tmp_path, caplog):
    data = write_data(tmp_path / "data")
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    saved_step = kill_after_first_state(killed_dir, data)
    resumed_log = resume_here(killed_dir, data, caplog)
    train_here(full_dir, data)  # the uninterrupted reference
    assert f"at step {saved_step}" in resumed_log, "the run did not resume from state/"

    want = json.loads((full_dir / "metrics.json").read_text())
    got = json.loads((killed_dir / "metrics.json").read_text())
    assert got["dev"] == want["dev"]  # exact float equality
    assert got["best_step"] == want["best_step"]
    assert got["total_steps"] == want["total_steps"] == MAX_STEPS
    assert (killed_dir / "predictions_dev.tsv").read_text() == (full_dir / "predictions_dev.tsv").read_text()

    # the final model and optimizer are bit-for-bit those of the uninterrupted run
    import torch
    from safetensors.torch import load_file

    final_full, final_resumed = load_state(full_dir), load_state(killed_dir)
    assert final_resumed["progress"]["step"] == final_full["progress"]["step"] == MAX_STEPS
    assert final_resumed["progress"]["best"] == final_full["progress"]["best"]
    a = load_file(full_dir / "state" / "model" / "model.safetensors")
    b = load_file(killed_dir / "state" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for sa, sb in zip(final_full["optimizer"]["state"].values(), final_resumed["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)

    # the best checkpoint, loaded through the generation API, reproduces training's dev predictions
    from seq2seq_rdrop import TitleGenerator

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = TitleGenerator.from_pretrained(killed_dir / "checkpoint", device="cpu")
        assert generator.max_source_len == 48  # the run's data.max_source_len
        abstracts = [line.split("\t")[1] for line in (data / "dev.tsv").read_text(encoding="utf-8").splitlines()]
        predictions = [line.split("\t")[1] for line in
                       (killed_dir / "predictions_dev.tsv").read_text(encoding="utf-8").splitlines()]
        assert generator.generate(abstracts) == predictions  # the checkpoint's own decoding, as training scored it
    finally:
        torch.set_num_threads(threads)


class NanAfter:
    """Wraps the configured regularizer; its loss turns NaN after `good_steps` calls."""

    def __init__(self, inner, good_steps: int):
        self.inner, self.good_steps, self.calls = inner, good_steps, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, model, batch):
        self.calls += 1
        loss, parts = self.inner(model, batch)
        if self.calls > self.good_steps:
            loss = loss * float("nan")
        return loss, parts


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_state(tmp_path, monkeypatch):
    import torch
    from hydra import compose, initialize_config_dir

    from seq2seq_rdrop import training
    from seq2seq_rdrop.checkpoints import check_checkpoint_dir
    from seq2seq_rdrop.models import load_model

    data = write_data(tmp_path / "data")
    overrides = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.eval_every"))]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"data.dir={data}", "trainer.max_steps=12",
                                          "trainer.eval_every=5"])
    real_instantiate = training.instantiate
    monkeypatch.setattr(training, "instantiate", lambda c, *a, **k: NanAfter(real_instantiate(c, *a, **k), 7))
    run_dir = tmp_path / "run"
    threads = torch.get_num_threads()
    try:
        with pytest.raises(FloatingPointError) as info:
            training.train(cfg, run_dir)
    finally:
        torch.set_num_threads(threads)
    message = str(info.value)
    assert "loss is nan at step 8" in message
    assert str(run_dir / "state") in message and str(run_dir / "checkpoint") in message
    assert not (run_dir / "metrics.json").exists()

    state = load_state(run_dir)  # the state saved at step 5, untouched by the NaN step
    assert state["progress"]["step"] == 5 and state["progress"]["best_step"] == 5
    for path in (run_dir / "checkpoint", run_dir / "state" / "model"):
        model = load_model(check_checkpoint_dir(path))
        assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not list(run_dir.glob(".*.tmp-*")), "a half-written directory was left behind"


class _Payload:
    """Unpickling this runs os.system: what a hostile trainer_state.pt would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_payload_in_a_state_file_is_refused_and_runs_nothing(tmp_path):
    import torch

    from seq2seq_rdrop.checkpoints import CheckpointError
    from seq2seq_rdrop.train_state import load_trainer_state

    marker = tmp_path / "payload_ran"
    state_file = tmp_path / "trainer_state.pt"
    torch.save({"optimizer": {}, "scheduler": {}, "progress": {}, "rng": _Payload(marker)}, state_file)
    with pytest.raises(CheckpointError, match="trainer_state.pt: refused") as refused:
        load_trainer_state(state_file)
    assert "\n" not in str(refused.value) and "system" in str(refused.value)
    assert "weights_only" not in str(refused.value)  # no advice to load it the unsafe way
    assert not marker.exists()


def test_train_py_refuses_a_planted_state_before_writing_anything_into_the_run(tmp_path):
    """Issue 39: the refusal used to come after Hydra had rewritten the run's .hydra/*.yaml; now the
    ValidateConfig callback reads the state as data first (check_saved_state) and the directory stays as it was."""
    import torch

    data_dir = write_data(tmp_path / "data")
    run_dir = tmp_path / "run"
    overrides = [*TINY, f"data.dir={data_dir}", "trainer.max_steps=2", "trainer.save_every=2", "decode.beam_size=1"]
    train_in_process(run_dir, *overrides)
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text("# the first run's\n")
    marker = tmp_path / "payload_ran"
    state_file = run_dir / "state" / "trainer_state.pt"
    torch.save({"optimizer": {}, "scheduler": {}, "progress": {}, "rng": _Payload(marker)}, state_file)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run_dir.rglob("*")) if p.is_file()}
    done = subprocess.run([sys.executable, "train.py", *overrides, "trainer.max_steps=10", "trainer.resume=true",
                           f"hydra.run.dir={run_dir}"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1 and done.stderr.splitlines() == [
        f"error: {state_file}: refused, not a trainer state this project wrote (it asks to build posix.system); "
        "nothing in it was run"], done.stderr
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run_dir.rglob("*")) if p.is_file()}
    assert after == before and not marker.exists()


def test_random_states_round_trip_through_a_weights_only_state_file(tmp_path):
    """The python, numpy and torch random streams continue identically after a save and a safe load."""
    import numpy as np
    import torch

    from seq2seq_rdrop.train_state import load_trainer_state, rng_state, set_rng_state

    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    torch.save({"optimizer": {}, "scheduler": {}, "progress": {}, "rng": rng_state()}, tmp_path / "s.pt")
    expected = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    set_rng_state(load_trainer_state(tmp_path / "s.pt")["rng"])
    assert (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()) == expected


def test_a_state_saved_with_numpy_arrays_still_loads(tmp_path):
    """trainer_state.pt files written before the states were stored as lists hold numpy's key array."""
    import numpy as np
    import torch

    from seq2seq_rdrop.train_state import load_trainer_state

    old = {"optimizer": {}, "scheduler": {}, "progress": {}, "rng": {"numpy": np.random.get_state()}}
    torch.save(old, tmp_path / "old.pt")
    loaded = load_trainer_state(tmp_path / "old.pt")["rng"]["numpy"]
    assert np.array_equal(loaded[1], old["rng"]["numpy"][1])
