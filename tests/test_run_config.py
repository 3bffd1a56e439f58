"""A resume continues the run it resumes (seq2seq_rdrop/run_config.py): settings that change the model or
the data refuse it in one line listing them; the step budget, cadence and decoding may change, are
applied (the learning-rate schedule follows a new total) and are recorded in metrics.json."""
import json

import pytest
import torch

from conftest import TINY, run_script, train_in_process
from seq2seq_rdrop.config_checks import ConfigError
from seq2seq_rdrop.run_config import check_resumed_config, config_differences, write_run_record


def record(seed=0, hidden=32, max_steps=10, data_dir="/a", train_sha="1" * 64):
    config = {"seed": seed, "model": {"hidden_size": hidden}, "trainer": {"max_steps": max_steps, "resume": False},
              "data": {"dir": data_dir, "train_file": "train.tsv", "test_file": None}}
    return {"config": config, "data_sha256": {"data.train_file": train_sha}, "changes": []}


def test_model_seed_and_data_content_differences_are_refused_cadence_is_allowed():
    refused, allowed = config_differences(record(), record(seed=1, hidden=64, max_steps=20, train_sha="2" * 64))
    assert set(refused) == {"seed", "model.hidden_size", "data.train_file"}
    assert allowed == {"trainer.max_steps": (10, 20)}


def test_data_found_elsewhere_with_the_same_content_is_no_difference():
    refused, allowed = config_differences(record(), {**record(data_dir="/b"), "config": {
        **record(data_dir="/b")["config"], "trainer": {"max_steps": 10, "resume": True}}})
    assert refused == {} and allowed == {}


def test_a_refused_resume_lists_every_difference_in_one_line(tmp_path):
    write_run_record(tmp_path, record())
    with pytest.raises(ConfigError) as error:
        check_resumed_config(tmp_path, record(seed=5, hidden=64))
    message = str(error.value)
    assert "\n" not in message and "model.hidden_size 32 -> 64" in message and "seed 0 -> 5" in message


def test_a_new_step_budget_gets_the_schedule_of_the_new_total_from_the_saved_step():
    from omegaconf import OmegaConf

    from seq2seq_rdrop.train_state import Optimisation

    trainer = OmegaConf.create({"lr": 1e-3, "weight_decay": 0.0, "warmup_ratio": 0.0, "lr_decay_by_time": False,
                                "ema_decay": None})

    def after_two_steps(total):
        optim = Optimisation.build(torch.nn.Linear(2, 2), trainer, total, deadline=None)
        for _ in range(2):
            optim.optimizer.step()
            optim.scheduler.step()
        return optim

    saved = after_two_steps(2).state_dict()  # the old schedule ended at step 2: learning rate 0
    resumed = Optimisation.build(torch.nn.Linear(2, 2), trainer, 4, deadline=None)
    resumed.load_state_dict(saved, where=None, ema_decay=None)
    resumed.restart_schedule_at(2)
    uninterrupted = after_two_steps(4)
    assert resumed.optimizer.param_groups[0]["lr"] == uninterrupted.optimizer.param_groups[0]["lr"] == 5e-4


def run_options(data_dir, *extra):
    return [f"data.dir={data_dir}", "trainer.save_every=1", "data.max_eval_samples=4", *TINY, *extra]


def test_resume_refuses_a_new_model_and_records_a_new_step_budget(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    train_in_process(run_dir, *run_options(data_dir, "trainer.max_steps=2"))
    metrics_before = (run_dir / "metrics.json").read_bytes()

    refused = run_script("train.py", f"hydra.run.dir={run_dir}",  # exit status and one line: a real process
                         *run_options(data_dir, "trainer.max_steps=2", "trainer.resume=true", "model.hidden_size=64"))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "model.hidden_size 32 -> 64" in refused.stderr
    assert (run_dir / "metrics.json").read_bytes() == metrics_before

    train_in_process(run_dir, *run_options(data_dir, "trainer.max_steps=3", "trainer.eval_every=3", "trainer.resume=true"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["total_steps"] == 3
    assert metrics["config_changes"] == [{"step": 2, "changed": {"trainer.eval_every": [2, 3],
                                                                 "trainer.max_steps": [2, 3]}}]
