"""The comparison sweep composes: the experiment preset and each launcher named in the README."""
import importlib.util

import pytest
from conftest import compose_config
from seq2seq_rdrop.regularizer_names import ARTICLE_FOUR, conf_names


def compose_train(overrides):
    return compose_config(overrides, "train", hydra=True)


def test_compare_preset_sweeps_four_regularizers_over_three_seeds():
    cfg = compose_train(["+experiment=compare"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.sweeper.params.regularizer.split(",") == list(ARTICLE_FOUR)
    assert cfg.hydra.sweeper.params.seed.split(",") == ["0", "1", "2"]
    assert cfg.data.holdout_test > 0, "the compared scores come from a split that dev selection never saw"


@pytest.mark.parametrize("launcher,plugin", [
    ("joblib", "hydra_plugins.hydra_joblib_launcher"),
    ("joblib_2cpu", "hydra_plugins.hydra_joblib_launcher"),
    ("submitit_slurm", "hydra_plugins.hydra_submitit_launcher"),
    ("slurm", "hydra_plugins.hydra_submitit_launcher"),
])
def test_launchers_compose(launcher, plugin):
    if importlib.util.find_spec(plugin) is None:
        pytest.skip(f"{plugin} not installed (pip install -e '.[sweep]')")
    cfg = compose_train([f"hydra/launcher={launcher}", "+experiment=compare"])
    assert cfg.hydra.launcher._target_.startswith(plugin)


@pytest.mark.parametrize("name", conf_names())
def test_every_regularizer_records_its_name(name):
    assert compose_train([f"regularizer={name}"]).regularizer.name == name
