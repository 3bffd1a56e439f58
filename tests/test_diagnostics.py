"""Properties of the dropout-consistency and exposure-bias diagnostics (seq2seq_rdrop/diagnostics.py) and
of their CLI (scripts/diagnose.py, run in-process through main(argv)), on tiny models and synthetic data."""
from __future__ import annotations

from conftest import load_script
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from seq2seq_rdrop import diagnostics as D
from seq2seq_rdrop.checkpoints import save_model_checkpoint
from seq2seq_rdrop.data import read_examples
from seq2seq_rdrop.decoding import generate
from seq2seq_rdrop.models import build_model
from seq2seq_rdrop.tokenizer import build_tokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_KEYS = ["checkpoint", "split", "n", "k", "seed", "dropout", "measures", "curves", "seconds"]
SETTINGS = dict(max_source_len=40, max_target_len=16, max_len=8, batch_size=4)

pytestmark = pytest.mark.usefixtures("one_thread")


def load_cli():
    return load_script("diagnose_cli", "scripts/diagnose.py")


def tiny(family: str, tokenizer, dropout: float = 0.1, copy: bool = False):
    """A tiny UniLM (copy: with the copy head and its span-following bonus) or BART-style model."""
    sizes = ({"encoder_layers": 1, "decoder_layers": 1, "ffn_size": 64} if family == "bart"
             else {"num_layers": 2, "intermediate_size": 64, "copy_follow": copy})
    cfg = OmegaConf.create({"family": family, "pretrained": None, "hidden_size": 32, "num_heads": 2,
                            "dropout": dropout, "max_positions": 128, "copy": copy, **sizes})
    torch.manual_seed(0)
    return build_model(cfg, tokenizer).eval()


def save(tmp_path: Path, name: str, model, tokenizer, max_len: int = 8) -> Path:
    cfg = OmegaConf.create({"data": {"max_source_len": 40, "max_target_len": 16}, "decode": {"max_len": max_len}})
    return save_model_checkpoint(tmp_path / name / "checkpoint", model, tokenizer, cfg)


def dev_batch(model, tokenizer, data_dir, n=4):
    examples = read_examples(data_dir / "dev.tsv")[:n]
    return examples, model.collate(D.encode_examples(model, tokenizer, examples, D.Settings(**SETTINGS)))


# --------------------------------------------------------------------------- divergences


def test_kl_measures_are_non_negative_and_the_symmetric_one_is_symmetric_and_the_sum_of_both_kls():
    torch.manual_seed(0)
    log_p, log_q = torch.randn(2, 3, 7).log_softmax(-1).unbind(0)
    assert (D.kl_divergence(log_p, log_q) >= 0).all() and (D.kl_divergence(log_q, log_p) >= 0).all()
    sym = D.symmetric_kl(log_p, log_q)
    assert torch.allclose(sym, D.symmetric_kl(log_q, log_p))
    assert torch.allclose(sym, D.kl_divergence(log_p, log_q) + D.kl_divergence(log_q, log_p), atol=1e-6)
    assert D.kl_divergence(log_p, log_p).abs().max() < 1e-6


def test_kl_measures_stay_finite_where_both_distributions_give_a_token_minus_inf():
    log_p = torch.tensor([0.5, 0.5, 0.0]).log()
    log_q = torch.tensor([0.25, 0.75, 0.0]).log()
    expected = 0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75)
    assert D.kl_divergence(log_p, log_q).item() == pytest.approx(expected)
    assert D.symmetric_kl(log_p, log_q).item() == pytest.approx(
        expected + 0.25 * math.log(0.5) + 0.75 * math.log(0.75 / 0.5))


def test_non_target_renormalisation_is_exact_on_a_hand_made_distribution():
    log_p = torch.tensor([[0.5, 0.2, 0.2, 0.1]]).log()
    renormalised = D.without_target(log_p, torch.tensor([0]))
    assert renormalised[0, 0] == float("-inf")
    assert torch.allclose(renormalised[0, 1:].exp(), torch.tensor([0.4, 0.4, 0.2]))
    # two distributions that differ only in the target's probability agree on the non-target classes
    log_q = torch.tensor([[0.75, 0.1, 0.1, 0.05]]).log()
    assert D.symmetric_kl(renormalised, D.without_target(log_q, torch.tensor([0]))).abs().item() < 1e-6
    assert D.symmetric_kl(log_p, log_q).item() > 0.1


# --------------------------------------------------------------------------- the measures


@pytest.mark.parametrize("k", [1, 4])
def test_without_dropout_the_ensemble_is_the_deterministic_model(tiny_tokenizer, data_dir, k):
    model = tiny("unilm", tiny_tokenizer, dropout=0.0)
    _, batch = dev_batch(model, tiny_tokenizer, data_dir)
    values = D.teacher_forced_measures(model, batch, k=k)
    mask = batch["tgt_out"] != model.pad_id
    assert values["gap_kl_ensemble_deterministic"][mask].abs().max() < 1e-5
    assert torch.allclose(values["nll_ensemble"][mask], values["nll_deterministic"][mask], atol=1e-5)
    if k == 1:  # no pair of passes to compare
        assert values["submodel_sym_kl"].isnan().all()
    else:
        assert values["submodel_sym_kl"][mask].abs().max() < 1e-5
        assert values["submodel_sym_kl_nontarget"][mask].abs().max() < 1e-5


def test_with_dropout_the_sub_models_disagree_and_the_gap_is_positive(tiny_tokenizer, data_dir):
    model = tiny("unilm", tiny_tokenizer, dropout=0.3)
    _, batch = dev_batch(model, tiny_tokenizer, data_dir)
    values = D.teacher_forced_measures(model, batch, k=4)
    mask = batch["tgt_out"] != model.pad_id
    for name in ("gap_kl_ensemble_deterministic", "submodel_sym_kl", "submodel_sym_kl_nontarget"):
        assert (values[name][mask] > 0).all(), name
    assert not model.training  # dropout is switched on only for the passes that need it


def test_with_r_zero_the_corrupted_prefix_nll_is_the_teacher_forced_nll(tiny_tokenizer, data_dir):
    model = tiny("unilm", tiny_tokenizer, copy=True)
    _, batch = dev_batch(model, tiny_tokenizer, data_dir)
    nll, continuations, remainders = D.corrupted_prefix(model, batch, 0.0, torch.Generator().manual_seed(0), 8)
    assert torch.equal(nll, D.gold_nll(model(batch), batch["tgt_out"]))
    noisy, _, _ = D.corrupted_prefix(model, batch, 0.3, torch.Generator().manual_seed(0), 8)
    mask = batch["tgt_out"] != model.pad_id
    assert not torch.equal(noisy[mask], nll[mask])
    assert len(continuations) == len(remainders) == batch["src_ids"].size(0)


@pytest.mark.parametrize("family", ["unilm", "bart"])
def test_own_prefix_measure_compares_the_reference_continuation_after_own_and_gold_prefixes(tiny_tokenizer, data_dir,
                                                                                            family):
    """Greedy titles equal to the gold ones: no prefix differs. Greedy titles that start wrong: every prefix
    differs, and the NLL after the gold prefix is the teacher-forced NLL of the gold tokens from k on."""
    model = tiny(family, tiny_tokenizer)
    settings = D.Settings(**SETTINGS)
    examples, batch = dev_batch(model, tiny_tokenizer, data_dir)
    encoded = D.encode_examples(model, tiny_tokenizer, examples, settings)
    golds = [gold[:-1] for _, _, gold in encoded]
    same = D.own_prefix_measures(model, tiny_tokenizer, examples, encoded, golds, settings)
    assert same["own_prefix_differs_1"] == 0.0 and math.isnan(same["own_prefix_gap_1"])
    wrong_token = tiny_tokenizer.convert_tokens_to_ids("，")  # never a title's first token in the synthetic data
    wrong = [[wrong_token] * 8 for _ in golds]
    measures = D.own_prefix_measures(model, tiny_tokenizer, examples, encoded, wrong, settings)
    assert measures["own_prefix_differs_1"] == 1.0
    target = batch["tgt_out"]
    mask = (target != model.pad_id) & (torch.arange(target.size(1)) >= 1)
    with torch.no_grad():
        expected = float(D.gold_nll(model(batch), target.clamp_min(0)).double()[mask].mean())
    assert measures["nll_after_gold_prefix_1"] == pytest.approx(expected, rel=1e-5)
    assert measures["own_prefix_gap_1"] == pytest.approx(measures["nll_after_own_prefix_1"] - expected, rel=1e-5)


@pytest.mark.parametrize("family", ["unilm", "bart"])
def test_cached_greedy_and_its_k_replica_ensemble_in_eval_mode_equal_decoding_generate(tiny_tokenizer, data_dir,
                                                                                        family):
    """Without dropout every replica is the same model, so the ensemble decodes what generate() does."""
    model = tiny(family, tiny_tokenizer)
    examples, batch = dev_batch(model, tiny_tokenizer, data_dir)
    options = {"beam_size": 1, "max_len": 8, "min_len": 1, "length_penalty": 1.0, "no_repeat_ngram": 0,
               "num_return": 1, "use_cache": True}
    reference = [h[0].tokens for h in generate(model, tiny_tokenizer, [e.abstract for e in examples], options,
                                               max_source_len=40, progress=False)]
    for replicas in (1, 3):
        assert D.greedy_continue(model, batch["src_ids"], [[]] * len(examples), 8, replicas) == reference


def test_free_running_accuracy_compares_position_by_position_with_the_end_token():
    assert D.free_running_correct([5, 6], [5, 7, 2], eos_id=2, max_len=8) == [True, False, True]
    assert D.free_running_correct([5, 6, 7], [5, 6, 7, 2], eos_id=2, max_len=3) == [True, True, True, False]


# --------------------------------------------------------------------------- the CLI


def test_cli_on_unilm_copy_and_bart_checkpoints_writes_the_schema_deterministically(tiny_tokenizer, data_dir,
                                                                                    tmp_path, capsys):
    cli = load_cli()
    checkpoints = [str(save(tmp_path, "unilm", tiny("unilm", tiny_tokenizer), tiny_tokenizer)),
                   str(save(tmp_path, "copy", tiny("unilm", tiny_tokenizer, copy=True), tiny_tokenizer)),
                   str(save(tmp_path, "bart", tiny("bart", tiny_tokenizer), tiny_tokenizer))]
    argv = [*checkpoints, "--k", "2", "--max-examples", "5", f"data.dir={data_dir}"]
    assert cli.main(argv + ["--out-dir", str(tmp_path / "a")]) == 0
    assert cli.main([checkpoints[0], *argv[3:], "--out-dir", str(tmp_path / "b"), "--dropout", "0"]) == 0
    runs = json.loads((tmp_path / "a" / "diagnostics.json").read_text())["runs"]
    assert [r["checkpoint"] for r in runs] == checkpoints
    for run in runs:
        assert list(run) == RUN_KEYS and list(run["measures"]) == list(D.MEASURE_KEYS)
        assert run["n"] == 5 and run["split"] == "dev" and run["dropout"] == {"hidden": 0.1, "attention": 0.1}
        assert all(isinstance(v, float) and math.isfinite(v) for v in run["measures"].values())
        assert [p["r"] for p in run["curves"]["robustness"]] == [0.0, 0.1, 0.2, 0.3]
        assert run["curves"]["robustness"][0]["nll"] == pytest.approx(run["measures"]["nll_deterministic"], rel=1e-9)
        assert len(run["curves"]["accuracy_by_position"]["teacher_forced"]) <= D.MAX_POSITIONS
    for name in ("diagnostics.csv", "diagnostics.md", "diagnostics.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    # the same checkpoint, data and seed give the same numbers (seconds aside)
    again = json.loads((tmp_path / "b" / "diagnostics.json").read_text())["runs"][0]
    assert again["dropout"] == {"hidden": 0.0, "attention": 0.0}
    assert again["measures"]["gap_nll"] == pytest.approx(0.0, abs=1e-6)
    assert again["measures"]["rouge_l_greedy_ensemble"] == again["measures"]["rouge_l_greedy_deterministic"]
    assert cli.main([checkpoints[0], *argv[3:], "--out-dir", str(tmp_path / "c")]) == 0
    first, second = (json.loads((tmp_path / d / "diagnostics.json").read_text())["runs"][0] for d in ("a", "c"))
    assert {**first, "seconds": 0} == {**second, "seconds": 0}
    assert "nll_deterministic" in capsys.readouterr().out


def _one_line_error(cli, argv, capsys) -> str:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_cli_bad_paths_and_mismatched_checkpoints_give_one_line_errors(tiny_tokenizer, data_dir, tmp_path, capsys):
    cli = load_cli()
    good = str(save(tmp_path, "good", tiny("unilm", tiny_tokenizer), tiny_tokenizer))
    assert "does not exist" in _one_line_error(cli, [str(tmp_path / "nowhere")], capsys)
    (tmp_path / "empty").mkdir()
    assert "incomplete" in _one_line_error(cli, [str(tmp_path / "empty")], capsys)
    other_tok = build_tokenizer(["完全不同的字"], tmp_path / "other_tok")
    other = str(save(tmp_path, "other", tiny("unilm", other_tok), other_tok))
    assert "mismatched" in _one_line_error(cli, [good, other], capsys)
    longer = str(save(tmp_path, "longer", tiny("unilm", tiny_tokenizer), tiny_tokenizer, max_len=12))
    assert "decode.max_len" in _one_line_error(cli, [good, longer], capsys)
    corrupt = shutil.copytree(good, tmp_path / "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"not weights")
    assert "cannot load the model" in _one_line_error(cli, [str(corrupt), f"data.dir={data_dir}"], capsys)
    assert "no such file" in _one_line_error(cli, [good, f"data.dir={data_dir}", "data.dev_file=nope.tsv"], capsys)
    assert "data.oops" in _one_line_error(cli, [good, "data.oops=1"], capsys)


def test_val_size_diagnoses_the_last_training_pairs_training_would_validate_on(tiny_tokenizer, data_dir, tmp_path):
    from seq2seq_rdrop.data import read_examples
    from seq2seq_rdrop.splits import carve_validation

    cli = load_cli()
    checkpoint = str(save(tmp_path, "unilm", tiny("unilm", tiny_tokenizer), tiny_tokenizer))
    assert cli.main([checkpoint, "--k", "2", "--val-size", "3", f"data.dir={data_dir}",
                     "--out-dir", str(tmp_path / "val")]) == 0
    run = json.loads((tmp_path / "val" / "diagnostics.json").read_text())["runs"][0]
    _, validation = carve_validation(read_examples(data_dir / "train.tsv"), 3)
    assert run["split"] == "val" and run["n"] == len(validation) == 3
