"""TensorBoard event files of a run (trainer.tensorboard, seq2seq_rdrop/tensorboard_log.py), read back with
tensorboard's EventAccumulator: the loss parts, learning rate, step time and evaluation scores over steps, the
config as hparams with the final scores; training's numbers unchanged by it; a resumed run's replayed steps
logged once."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import TINY, train_in_process

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from seq2seq_rdrop.metrics import METRIC_NAMES  # noqa: E402

RUN = [*TINY, "trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=1", "trainer.save_every=2",
       "regularizer=rdrop"]


def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return accumulator


def steps_of(accumulator: EventAccumulator, tag: str) -> list[int]:
    return [event.step for event in accumulator.Scalars(tag)]


def losses(run_dir: Path) -> list[list[str]]:
    """train_log.csv without its seconds column (wall time differs between runs)."""
    with open(run_dir / "train_log.csv", newline="") as f:
        return [row[:-1] for row in csv.reader(f)]


@pytest.fixture(scope="module")
def board_run(tmp_path_factory, one_thread):
    """(run dir, metrics) of a 4-step R-Drop run with an evaluation every 2 steps and TensorBoard on (the default)."""
    from conftest import write_tiny_csl

    root = tmp_path_factory.mktemp("board")
    data = write_tiny_csl(root)
    out = root / "run"
    return out, data, train_in_process(out, f"data.dir={data}", *RUN, "trainer.keep_last_states=2")


def test_event_files_hold_the_loss_parts_lr_step_time_and_evaluations_at_each_step(board_run):
    out, _, _ = board_run
    scalars = events(out).Tags()["scalars"]
    for tag in ("train/loss", "train/ce", "train/kl", "train/lr", "train/step_seconds"):
        assert tag in scalars
    assert steps_of(events(out), "train/kl") == [1, 2, 3, 4]
    for metric in METRIC_NAMES:
        assert steps_of(events(out), f"dev/{metric}") == [2, 4]


def test_the_config_is_logged_as_hparams_with_the_final_scores(board_run):
    out, _, metrics = board_run
    from tensorboard.plugins.hparams import plugin_data_pb2

    accumulator = events(out)
    content = accumulator.PluginTagToContent("hparams")
    session = next(plugin_data_pb2.HParamsPluginData.FromString(c).session_start_info
                   for c in content.values() if plugin_data_pb2.HParamsPluginData.FromString(c).HasField("session_start_info"))
    assert session.hparams["regularizer.name"].string_value == "rdrop"
    assert session.hparams["trainer.max_steps"].number_value == 4
    final = accumulator.Scalars("final/dev/rouge-l")
    assert [e.step for e in final] == [4] and final[0].value == pytest.approx(metrics["dev"]["rouge-l"])


def test_tensorboard_leaves_training_numerics_unchanged(board_run, tmp_path):
    out, data, metrics = board_run
    plain = tmp_path / "plain"
    without = train_in_process(plain, f"data.dir={data}", *RUN, "trainer.keep_last_states=2", "trainer.tensorboard=false")
    assert not list(plain.glob("events.out.tfevents.*"))
    assert losses(plain) == losses(out)
    assert without["dev"] == metrics["dev"]


def test_a_resumed_run_logs_each_replayed_step_once(board_run, tmp_path):
    """Resumed from its step-2 state (as after a kill past step 2), the run logs steps 3-4 again: the earlier
    events from step 3 on are purged, so each step shows once, with the resumed run's values."""
    import shutil

    out, data, _ = board_run
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    (resumed / "metrics.json").unlink()
    train_in_process(resumed, f"data.dir={data}", *RUN, f"trainer.resume={resumed / 'states' / 'step_0000002'}")
    accumulator = events(resumed)
    first_session, second_session = sorted(resumed.glob("events.out.tfevents.*"))  # one file per session
    assert steps_of(events(second_session), "train/loss") == [3, 4]  # replayed from the saved step 2
    assert steps_of(accumulator, "train/loss") == [1, 2, 3, 4]
    assert steps_of(accumulator, "dev/rouge-l") == [2, 4]
    assert steps_of(accumulator, "final/dev/rouge-l") == [4]
    with open(resumed / "train_log.csv", newline="") as f:
        logged = {int(row["step"]): float(row["loss"]) for row in csv.DictReader(f)}
    assert [e.value for e in accumulator.Scalars("train/loss")] == pytest.approx([logged[s] for s in (1, 2, 3, 4)],
                                                                                   abs=1e-5)
