"""The converged protocol's pieces (issue 30): a validation split carved from the training file chooses the
kept step while dev is only scored, a constant learning rate after a fixed warm-up, and patience. Runs are
in process (train(cfg, dir)) on tiny synthetic data."""
import csv
import json

import pytest

from conftest import TINY, compose_config, compose_train, make_pairs, write_tiny_csl


def test_the_validation_split_is_the_training_file_s_last_pairs_and_leaves_training():
    from seq2seq_rdrop.splits import carve_validation

    pairs = list(range(10))
    assert carve_validation(pairs, 3) == ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
    assert carve_validation(pairs, 0) == (pairs, None)
    with pytest.raises(ValueError, match="data.val_size=10 leaves no training examples"):
        carve_validation(pairs, 10)


def test_a_run_with_a_validation_split_selects_on_it_and_scores_dev_for_kept_and_final_weights(tmp_path):
    from seq2seq_rdrop.training import train

    data = write_tiny_csl(tmp_path)
    out = tmp_path / "run"
    cfg = compose_train([f"data.dir={data}", "data.val_size=5", "data.holdout_test=6", "trainer.max_steps=4",
                         "trainer.eval_every=2", "trainer.save_every=0", "+trainer.final_decodes.beam2.beam_size=2",
                         *TINY])
    metrics = train(cfg, out)
    assert metrics["selected_on"] == "val" and metrics["val"]["n"] == 5 and metrics["data"]["train"] == 48 - 6 - 5
    assert metrics["dev"]["n"] == 8 and metrics["decodes"]["beam2"]["dev"]["n"] == 8
    assert metrics["final"]["step"] == 4 and metrics["final"]["dev"]["n"] == 8
    assert metrics["final"]["decodes"]["beam2"]["dev"]["n"] == 8
    with open(out / "eval_log.csv", newline="") as f:
        assert [(r["step"], r["n"]) for r in csv.DictReader(f)] == [("2", "5"), ("4", "5")]
    per_example = json.loads((out / "example_scores.json").read_text())["dev"]
    assert set(per_example) == {"main", "beam2", "final", "final_beam2"}
    assert all(len(scores["rouge-l"]) == 8 for scores in per_example.values())
    assert (out / "predictions_val.tsv").is_file() and (out / "predictions_dev_final.tsv").is_file()
    assert set(metrics["dev_title_shape"]) == {"main", "beam2", "final", "final_beam2"}
    assert metrics["dev_rule"]["n"] == metrics["dev_lead"]["n"] == 8
    # the held-out split (data.holdout_test) gets its floors and shapes too, and every file its word-level ROUGE
    assert metrics["test"]["n"] == metrics["test_rule"]["n"] == 6 and set(metrics["test_title_shape"]) == {"main", "beam2"}
    for shape in (metrics["dev_title_shape"]["main"], metrics["test_title_shape"]["main"]):
        assert {"latin_cut_short", "glued_spans", "reference_latin_cut_short", "reference_glued_spans"} <= set(shape)
    words = metrics["word_rouge"]
    assert set(words["dev"]) == {"main", "beam2", "final", "final_beam2", "lead", "rule"}
    assert set(words["test"]) == {"main", "beam2"} and set(words["val"]) == {"main"}
    assert words["test"]["main"]["n"] == 6 and "secondary" in words["note"]
    if metrics["kept_step"] == 4:  # the kept weights are the final ones: the same dev scores
        assert metrics["dev"] == metrics["final"]["dev"]


def test_patience_stops_after_that_many_evaluations_without_a_better_score(tmp_path, monkeypatch):
    from seq2seq_rdrop import training

    scores = iter([30.0, 20.0, 25.0, 40.0, 10.0])  # best at the first evaluation, then two worse ones

    def fake_evaluate(model, tokenizer, examples, cfg, device, progress=True, decode_overrides=None):
        value = next(scores) if decode_overrides is None and len(examples) == 5 else 1.0
        return {**{k: value for k in training.METRIC_NAMES}, "n": len(examples)}, ["x"] * len(examples)

    monkeypatch.setattr(training, "evaluate", fake_evaluate)
    data = write_tiny_csl(tmp_path)
    cfg = compose_train([f"data.dir={data}", "data.val_size=5", "trainer.max_steps=20", "trainer.eval_every=2",
                         "trainer.patience=2", "trainer.save_every=0", *TINY])
    metrics = training.train(cfg, tmp_path / "run")
    assert (metrics["steps"], metrics["total_steps"], metrics["best_step"]) == (6, 20, 2)


def test_the_constant_schedule_holds_the_peak_after_a_warm_up_of_fixed_length():
    import torch
    from omegaconf import OmegaConf

    from seq2seq_rdrop.train_state import Deadline, Optimisation

    trainer_cfg = OmegaConf.merge(compose_train([]).trainer, {"lr_schedule": "constant", "warmup_steps": 3,
                                                              "lr": 1.0})
    optim = Optimisation.build(torch.nn.Linear(1, 1), trainer_cfg, total_steps=10, deadline=Deadline(None, None))
    rates = []
    for _ in range(10):
        optim.optimizer.step()
        optim.scheduler.step()
        rates.append(optim.scheduler.get_last_lr()[0])
    assert rates[:3] == pytest.approx([1 / 3, 2 / 3, 1.0]) and rates[3:] == [1.0] * 7


def test_pretraining_never_sees_the_validation_pairs(tmp_path):
    from seq2seq_rdrop.pretraining import prepare

    data = write_tiny_csl(tmp_path)
    cfg = compose_config([f"data.dir={data}", "data.val_size=5", "pretrain.titles_file=null"], "pretrain")
    out, _, _ = prepare(cfg, data, tmp_path / "pseudo")
    text = (out / "train.tsv").read_text(encoding="utf-8") + (out / "heldout.tsv").read_text(encoding="utf-8")
    val_titles = [title for title, _ in make_pairs(48, seed=0)[-5:]]
    kept_titles = [title for title, _ in make_pairs(48, seed=0)[:-5]]
    assert not any(t in text for t in val_titles if len(t) >= 5)
    assert any(t in text for t in kept_titles)


def test_val_decodes_score_the_kept_weights_on_validation_and_final_weights_can_be_left_unscored(tmp_path):
    from seq2seq_rdrop.training import train

    data = write_tiny_csl(tmp_path)
    out = tmp_path / "run"
    cfg = compose_train([f"data.dir={data}", "data.val_size=5", "trainer.max_steps=4", "trainer.eval_every=2",
                         "trainer.save_every=0", "+trainer.final_decodes.beam2.beam_size=2",
                         "+trainer.final_decodes.beam3.beam_size=3", "trainer.val_decodes=[beam2]",
                         "trainer.score_final_weights=false", *TINY])
    metrics = train(cfg, out)
    assert metrics["decodes"]["beam2"]["val"]["n"] == 5 and "val" not in metrics["decodes"]["beam3"]
    assert metrics["decodes"]["beam3"]["dev"]["n"] == 8 and "final" not in metrics
    assert (out / "predictions_val_beam2.tsv").is_file() and not (out / "predictions_dev_final.tsv").exists()
    assert set(json.loads((out / "example_scores.json").read_text())["val"]) == {"beam2"}


def test_val_decodes_must_name_final_decodes():
    from seq2seq_rdrop.config_checks import ConfigError, validate

    with pytest.raises(ConfigError, match=r"trainer.val_decodes: beam9 is not a trainer.final_decodes entry"):
        validate(compose_train(["trainer.val_decodes=[beam9]", "+trainer.final_decodes.beam2.beam_size=2"]))
