"""Checkpoint averaging (scripts/average_checkpoints.py, trainer.keep_last_states): a run keeps its last N
states, and their average is a checkpoint whose every weight is the mean of theirs, that loads and decodes."""
from __future__ import annotations

import pytest
import torch

from conftest import TINY, load_generate_cli, load_script, make_pairs, run_generate_cli, train_in_process, write_tiny_csl


@pytest.fixture(scope="module")
def averaging():
    return load_script("average_checkpoints", "scripts/average_checkpoints.py")


@pytest.fixture(scope="module")
def run_with_states(tmp_path_factory):
    base = tmp_path_factory.mktemp("avg")
    data = write_tiny_csl(base, n_train=32, n_dev=4, n_test=0)
    out = base / "run"
    train_in_process(out, f"data.dir={data}", "trainer.max_steps=8", "trainer.save_every=2",
                     "trainer.keep_last_states=3", *TINY)
    return out


def test_only_the_last_n_states_are_kept(run_with_states):
    from seq2seq_rdrop.checkpoints import state_copies

    assert [d.name for d in state_copies(run_with_states)] == ["step_0000004", "step_0000006", "step_0000008"]


def test_the_average_is_the_mean_of_every_float_tensor_and_the_newest_integer_buffer(averaging):
    dicts = [{"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(1)}, {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)}]
    averaged = averaging.average_state_dicts(dicts)
    assert torch.equal(averaged["w"], torch.tensor([2.0, 4.0])) and averaged["n"].item() == 7


def test_averaged_checkpoint_holds_the_mean_weights_and_decodes(averaging, run_with_states, tmp_path, monkeypatch,
                                                                capsys):
    from seq2seq_rdrop.checkpoints import read_generation_config
    from seq2seq_rdrop.models import load_model

    out = averaging.average_checkpoints(run_with_states, last=2, out=tmp_path / "avg")
    steps = [run_with_states / "states" / name / "model" for name in ("step_0000006", "step_0000008")]
    parts = [load_model(path).state_dict() for path in steps]
    averaged = load_model(out).state_dict()
    for name, value in averaged.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (parts[0][name] + parts[1][name]) / 2)
    assert read_generation_config(out) is not None  # decodes the way the run was scored
    generate_cli = load_generate_cli("generate_cli_average")
    rc, stdout, stderr = run_generate_cli(generate_cli, monkeypatch, capsys, f"checkpoint={out}", "input=-",
                                          stdin=make_pairs(1)[0][1].encode())
    assert rc == 0 and stdout.strip(), stderr[-2000:]


def test_asking_for_more_states_than_kept_is_one_line_error(averaging, run_with_states, capsys):
    assert averaging.main([str(run_with_states), "--last", "5"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds 3 saved state(s)" in err and "keep_last_states" in err
