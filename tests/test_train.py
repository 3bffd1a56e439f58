"""End to end: `python train.py` on tiny synthetic data writes every promised file, and the
saved checkpoint, loaded back on its own, decodes the same titles. One run is a real `python train.py`
(what only its process shows: Hydra's files, the printed table); the others call train() in process."""
import json

import pytest

from conftest import REPO, TINY, compose_config, compose_train, load_generate_cli, run_script, train_in_process


def run_train(args):
    proc = run_script("train.py", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


# trainer.fast_dropout=true: the run also shows the cheap CPU dropout trains, is recorded and is reproducible
SAME_RUN = ["trainer.max_steps=6", "trainer.eval_every=3", "trainer.save_every=3", "trainer.fast_dropout=true"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import write_tiny_csl

    base = tmp_path_factory.mktemp("e2e")
    data = write_tiny_csl(base)
    out = base / "run"
    proc = run_train([f"data.dir={data}", "data.test_file=test.tsv", *SAME_RUN, f"hydra.run.dir={out}", *TINY])
    return out, proc


def test_run_writes_metrics_predictions_checkpoint_and_logs(finished_run):
    out, proc = finished_run
    metrics = json.loads((out / "metrics.json").read_text())
    for split, n in (("dev", 8), ("test", 6)):
        assert set(metrics[split]) == {"rouge-1", "rouge-2", "rouge-l", "bleu", "n"}
        assert metrics[split]["n"] == n
        lines = (out / f"predictions_{split}.tsv").read_text(encoding="utf-8").splitlines()
        assert len(lines) == n and all(len(line.split("\t")) == 2 for line in lines)
    assert metrics["best_step"] in (3, 6)
    # recorded, not timed: six tiny steps can take well under a millisecond on a fast machine
    assert isinstance(metrics["train_seconds"], float) and metrics["train_seconds"] >= 0
    assert metrics["regularizer"]["name"] == "baseline" and metrics["fast_dropout"] is True
    assert metrics["torch_threads"] == 1  # TINY sets trainer.num_threads=1: recorded, since CPU sums depend on it
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "train_config.yaml"):
        assert (out / "checkpoint" / name).is_file(), name
    assert (out / ".hydra" / "config.yaml").is_file()
    assert (out / "train_log.csv").read_text().startswith("step,epoch,lr,loss,ce")
    assert len((out / "eval_log.csv").read_text().splitlines()) == 3  # header + 2 evaluations
    assert "rouge-l" in proc.stdout and "bleu" in proc.stdout  # the final table


def test_references_in_predictions_keep_input_order(finished_run):
    from conftest import make_pairs

    out, _ = finished_run
    refs = [line.split("\t")[0] for line in (out / "predictions_dev.tsv").read_text(encoding="utf-8").splitlines()]
    assert refs == [t for t, _ in make_pairs(8, seed=1)]


def test_checkpoint_alone_decodes_the_same_titles(finished_run, tmp_path):
    import shutil

    from omegaconf import OmegaConf

    from seq2seq_rdrop.data import read_examples
    from seq2seq_rdrop.models import load_model
    from seq2seq_rdrop.tokenizer import load_tokenizer
    from seq2seq_rdrop.final_scores import evaluate

    out, _ = finished_run
    moved = shutil.copytree(out / "checkpoint", tmp_path / "ckpt")  # nothing else of the run directory
    tokenizer = load_tokenizer(moved)
    model = load_model(moved, tokenizer)
    cfg = OmegaConf.load(moved / "train_config.yaml")
    dev = read_examples(cfg.data.dir + "/dev.tsv")
    scores, predictions = evaluate(model, tokenizer, dev, cfg, "cpu", progress=False)
    saved = [line.split("\t")[1] for line in (out / "predictions_dev.tsv").read_text(encoding="utf-8").splitlines()]
    assert predictions == saved
    assert scores == json.loads((out / "metrics.json").read_text())["dev"]


def test_generate_py_on_the_run_s_files_scores_what_the_run_scored(finished_run, tmp_path):
    """The checkpoint carries its run's decoding (generation_config.json): `generate.py checkpoint=...
    input=... evaluate=true` with no decoding option gives the run's dev and test titles and scores."""
    cli = load_generate_cli("generate_cli_train")
    out, _ = finished_run
    metrics = json.loads((out / "metrics.json").read_text())
    data = REPO / metrics["data"]["dir"]
    for split in ("dev", "test"):
        titles = tmp_path / f"{split}.tsv"
        cfg = compose_config([f"checkpoint={out / 'checkpoint'}", f"input={data / f'{split}.tsv'}", "evaluate=true",
                              f"output={titles}"], "generate")
        scores = cli.run(cfg)
        assert scores == metrics[split], split
        predictions = [line.split("\t")[1] for line in
                       (out / f"predictions_{split}.tsv").read_text(encoding="utf-8").splitlines()]
        assert [line.split("\t")[1] for line in titles.read_text(encoding="utf-8").splitlines()] == predictions


def test_same_seed_gives_the_same_metrics(finished_run, tmp_path):
    out, _ = finished_run
    cfg = json.loads((out / "metrics.json").read_text())
    # in process, against train.py's run: the same numbers either way
    second = train_in_process(tmp_path / "again", f"data.dir={cfg['data']['dir']}", "data.test_file=test.tsv",
                              *SAME_RUN, *TINY)
    assert second["dev"] == cfg["dev"] and second["test"] == cfg["test"]


def test_required_overrides_exist_in_the_config():
    cfg = compose_train([
        "data.dir=x", "data.train_file=a", "data.dev_file=b", "data.test_file=null", "data.max_eval_samples=null",
        "trainer.max_steps=null", "trainer.epochs=1", "seed=3", "decode.beam_size=2", "decode.max_len=9",
    ])
    assert cfg.seed == 3 and cfg.decode.beam_size == 2 and cfg.regularizer.name == "baseline"


def test_unknown_monitor_names_the_allowed_values(data_dir, tmp_path):
    proc = run_script("train.py", f"data.dir={data_dir}", "trainer.monitor=accuracy", f"hydra.run.dir={tmp_path / 'r'}",
                      *TINY)
    assert proc.returncode != 0 and "rouge-l" in proc.stderr and "trainer.monitor" in proc.stderr


def test_bf16_autocast_option_trains(data_dir, tmp_path):
    """trainer.precision=bf16 (meant for GPUs) runs through the same loop; CPU autocast here."""
    out = tmp_path / "bf16"
    train_in_process(out, f"data.dir={data_dir}", "trainer.max_steps=2", "trainer.precision=bf16",
                     "trainer.save_every=0", *TINY)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["precision"] == "bf16" and metrics["dev"]["n"] == 8


def test_final_decodes_null_means_the_main_decoding_only(data_dir, tmp_path):
    """trainer.final_decodes=null (e.g. to drop a preset's beam 16) is accepted and, like {}, adds no
    decoding: metrics.json and example_scores.json hold the main one alone."""
    out = tmp_path / "no_final_decodes"
    train_in_process(out, f"data.dir={data_dir}", "trainer.max_steps=2", "trainer.final_decodes=null",
                     "trainer.save_every=0", *TINY)
    assert "decodes" not in json.loads((out / "metrics.json").read_text())
    assert list(json.loads((out / "example_scores.json").read_text())["dev"]) == ["main"]


def test_max_minutes_stops_after_a_last_evaluation(data_dir, tmp_path):
    out = tmp_path / "budget"
    train_in_process(out, f"data.dir={data_dir}", "trainer.max_steps=1000", "trainer.max_minutes=0.0001",
                     "trainer.save_every=0", *TINY)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_step"] == 1 and metrics["total_steps"] == 1000


def test_deadline_schedule_follows_steps_while_the_clock_is_behind_and_anneals_by_the_deadline():
    import torch
    from transformers import get_linear_schedule_with_warmup

    from seq2seq_rdrop.lr_schedules import linear_schedule_to_deadline

    def lrs(make, steps):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = make(optimizer)
        out = []
        for _ in range(steps):
            optimizer.step()
            scheduler.step()
            out.append(scheduler.get_last_lr()[0])
        return out

    by_steps = lrs(lambda opt: get_linear_schedule_with_warmup(opt, 2, 20), 20)
    assert lrs(lambda opt: linear_schedule_to_deadline(opt, 0.1, 20, lambda: 0.0), 20) == pytest.approx(by_steps)
    # half the time budget gone after 3 of 1000 steps: the rate is where a by-steps schedule is at 50%
    assert lrs(lambda opt: linear_schedule_to_deadline(opt, 0.1, 1000, lambda: 0.5), 3)[-1] == pytest.approx(0.5 / 0.9)
    assert lrs(lambda opt: linear_schedule_to_deadline(opt, 0.1, 1000, lambda: 1.2), 3)[-1] == 0.0


def test_a_run_the_clock_stops_ends_with_its_learning_rate_annealed(data_dir, tmp_path):
    import csv

    out = tmp_path / "deadline"
    train_in_process(out, f"data.dir={data_dir}", "trainer.max_steps=100000", "trainer.max_minutes=0.02",
                     "trainer.lr_decay_by_time=true", "trainer.save_every=0", *TINY, "trainer.log_every=1")
    with open(out / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert 1 < int(rows[-1]["step"]) < 100000  # stopped by the clock, several steps in
    assert float(rows[-1]["lr"]) == 0.0 and max(float(r["lr"]) for r in rows) > 0.0


def test_ema_checkpoint_is_the_moving_average_of_the_trained_weights_across_a_resume(data_dir, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    out, decay = tmp_path / "ema", 0.75
    common = [f"data.dir={data_dir}", "trainer.max_steps=2", f"trainer.ema_decay={decay}", "trainer.save_every=1",
              "trainer.eval_every=100", *TINY]
    train_in_process(out, *common, "trainer.max_minutes=0.0001")  # the clock stops it after step 1
    weights_1 = load_file(out / "state" / "model" / "model.safetensors")
    shutil.copytree(out / "state", tmp_path / "state_1")
    train_in_process(out, *common, "trainer.resume=true")  # step 2
    weights_2 = load_file(out / "state" / "model" / "model.safetensors")
    ema_2 = {k.removeprefix("module.bert."): v for k, v in  # our UniLM holds the HF model as .bert
             torch.load(out / "state" / "trainer_state.pt", weights_only=False)["ema"].items()}
    assert [k for k in weights_2 if not torch.equal(weights_1[k], weights_2[k])]  # the second step moved weights
    for name in weights_2:
        expected = decay * weights_1[name] + (1 - decay) * weights_2[name]
        assert (ema_2[name] - expected).abs().max() < 1e-6, name
    # the checkpoint holds the average as it was at the best evaluation (after step 1 it was w1 itself)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ema_decay"] == decay
    best = ema_2 if metrics["best_step"] == 2 else weights_1
    saved = load_file(out / "checkpoint" / "model.safetensors")
    assert all((saved[k] - best[k]).abs().max() < 1e-6 for k in saved)


def test_ema_decay_outside_zero_one_is_refused_naming_the_option(data_dir, tmp_path):
    proc = run_script("train.py", f"data.dir={data_dir}", "trainer.ema_decay=1.5", f"hydra.run.dir={tmp_path / 'bad'}",
                      *TINY)
    assert proc.returncode != 0 and "trainer.ema_decay=1.5" in proc.stderr


def test_train_state_reads_progress_saved_before_trainer_keep_existed():
    """state/trainer_state.pt keeps TrainState as a plain dict under "progress"; older runs saved no kept_step
    (their checkpoint/ held the best weights) and a resumed run must still read them."""
    from dataclasses import asdict

    from seq2seq_rdrop.train_state import TrainState

    old = {"step": 40, "best": 31.5, "best_step": 30, "train_seconds": 12.0, "eval_seconds": 3.0}
    state = TrainState.from_dict(old)
    assert (state.step, state.best, state.best_step, state.kept_step) == (40, 31.5, 30, 30)
    saved = asdict(TrainState(step=7, best=2.0, best_step=5, kept_step=7))
    assert TrainState.from_dict(saved) == TrainState(step=7, best=2.0, best_step=5, kept_step=7)


def test_batch_schedule_resumed_mid_epoch_replays_the_uninterrupted_batches():
    from seq2seq_rdrop.training import StepPlan, batch_schedule

    plan = StepPlan(steps_per_epoch=3, total_steps=8, eval_every=3)  # 10 examples, batches of 4: 4, 4, 2
    full = list(batch_schedule(10, 4, seed=1, first_step=0, plan=plan))
    assert [epoch for epoch, _ in full] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert [len(ids) for _, ids in full[:3]] == [4, 4, 2]
    assert sorted(i for _, ids in full[:3] for i in ids) == list(range(10))  # an epoch sees every example once
    assert list(batch_schedule(10, 4, seed=1, first_step=4, plan=plan)) == full[4:]


def test_pick_device_names_the_option_it_checks():
    from seq2seq_rdrop.distributed import pick_device

    assert pick_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="trainer.device='tpu': allowed values are auto, cpu, cuda, cuda:N"):
        pick_device("tpu", option="trainer.device")
