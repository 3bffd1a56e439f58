"""A checkpoint's tokenizer must be the one its model was trained with (seq2seq_rdrop/checkpoints.py
saves the vocabulary's sha256 in config.json, models/base.py checks it at load)."""
import json
import random
import shutil

import pytest

from conftest import CJK
from seq2seq_rdrop.generation import GenerationError, TitleGenerator


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from seq2seq_rdrop.checkpoints import save_model_checkpoint
    from seq2seq_rdrop.models import UniLM
    from seq2seq_rdrop.tokenizer import build_tokenizer

    root = tmp_path_factory.mktemp("vocab_hash")
    tokenizer = build_tokenizer(["".join(CJK)], root / "tokenizer")
    torch.manual_seed(0)
    model = UniLM.from_scratch(tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                               max_positions=64)
    return save_model_checkpoint(root / "checkpoint", model, tokenizer)


def copy_with_vocab(checkpoint, tmp_path, edit):
    """The checkpoint with its vocab.txt edited (tokenizer.json, if any, removed so vocab.txt is read)."""
    target = shutil.copytree(checkpoint, tmp_path / "edited")
    (target / "tokenizer.json").unlink(missing_ok=True)
    tokens = (target / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (target / "vocab.txt").write_text("\n".join(edit(tokens)) + "\n", encoding="utf-8")
    return target


def test_the_checkpoint_records_the_hash_of_its_vocabulary_and_loads(checkpoint):
    ours = json.loads((checkpoint / "config.json").read_text())["seq2seq_rdrop"]
    assert len(ours["vocab_sha256"]) == 64
    TitleGenerator.from_pretrained(checkpoint, device="cpu")


@pytest.mark.parametrize("edit", [
    lambda tokens: tokens[:5] + random.Random(0).sample(tokens[5:], len(tokens) - 5),  # reordered
    lambda tokens: tokens[:-10],  # a smaller vocabulary (another run's)
], ids=["reordered", "smaller"])
def test_a_foreign_or_reordered_vocabulary_is_refused_in_one_line(checkpoint, tmp_path, edit):
    edited = copy_with_vocab(checkpoint, tmp_path, edit)
    with pytest.raises(GenerationError) as error:
        TitleGenerator.from_pretrained(edited, device="cpu")
    message = str(error.value)
    assert "\n" not in message and str(edited) in message and "not the vocabulary the model was trained with" in message


def test_a_checkpoint_saved_before_the_hash_loads_as_before(checkpoint, tmp_path):
    old = shutil.copytree(checkpoint, tmp_path / "old")
    config = json.loads((old / "config.json").read_text())
    del config["seq2seq_rdrop"]["vocab_sha256"]
    (old / "config.json").write_text(json.dumps(config))
    TitleGenerator.from_pretrained(old, device="cpu")


class _Payload:
    """Unpickling this runs code: it would create the file named."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_payload_in_a_checkpoints_weights_is_refused_and_runs_nothing(checkpoint, tmp_path):
    """Weights are read as safetensors, or a pytorch_model.bin through transformers' weights_only load."""
    import torch

    planted = shutil.copytree(checkpoint, tmp_path / "planted")
    (planted / "model.safetensors").unlink()
    marker = tmp_path / "payload_ran"
    torch.save({"weight": _Payload(marker)}, planted / "pytorch_model.bin")
    with pytest.raises(GenerationError) as error:
        TitleGenerator.from_pretrained(planted, device="cpu")
    assert "\n" not in str(error.value) and str(planted) in str(error.value)
    assert not marker.exists()


def test_weights_of_another_width_are_refused_naming_a_weight_and_both_shapes(checkpoint, tmp_path):
    """Hugging Face says "look at the above report" and the report is held back: the message carries it."""
    edited = shutil.copytree(checkpoint, tmp_path / "wider")
    config = json.loads((edited / "config.json").read_text())
    config["intermediate_size"] *= 2
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(GenerationError) as error:
        TitleGenerator.from_pretrained(edited, device="cpu")
    message = str(error.value)
    assert "\n" not in message and "above report" not in message
    assert "intermediate.dense" in message and "[64" in message and "[128" in message


@pytest.mark.parametrize("failure", [
    OSError(28, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing file data/0: "
                 "unexpected pos 14528 vs 14420"),
], ids=["enospc", "torch-unexpected-pos"])
def test_a_full_disk_while_saving_names_the_directory_the_cause_and_the_free_space(tmp_path, failure):
    from seq2seq_rdrop.checkpoints import atomic_write_dir

    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "kept.txt").write_text("previous")

    def write(tmp):
        (tmp / "trainer_state.pt").write_bytes(b"partial")
        raise failure

    with pytest.raises(OSError) as error:
        atomic_write_dir(tmp_path / "state", write)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "state") in message and "MiB free on its disk" in message
    assert ("no space left" in message) if isinstance(failure, OSError) else ("written incompletely" in message)
    assert [p.name for p in tmp_path.iterdir()] == ["state"]  # no temporary directory left
    assert (tmp_path / "state" / "kept.txt").read_text() == "previous"


# ------------------------------------------------- issue 39: config.json against the weights, file sizes


def copy_with_config(checkpoint, tmp_path, **changes):
    edited = shutil.copytree(checkpoint, tmp_path / "edited")
    config = json.loads((edited / "config.json").read_text())
    config.update(changes)
    (edited / "config.json").write_text(json.dumps(config))
    return edited


@pytest.fixture
def no_weights_loaded(monkeypatch):
    """Fails the test if Hugging Face is asked to build and fill the model: the refusal must come first."""
    from transformers import BertForMaskedLM

    def refuse(*args, **kwargs):
        raise AssertionError("BertForMaskedLM.from_pretrained was called: config.json was not checked first")

    monkeypatch.setattr(BertForMaskedLM, "from_pretrained", classmethod(refuse))


def refusal(path) -> str:
    with pytest.raises(GenerationError) as error:
        TitleGenerator.from_pretrained(path, device="cpu")
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"checkpoint directory {path} cannot be loaded (")
    return message


@pytest.mark.parametrize("layers", [2, 10000])
def test_a_config_with_more_layers_than_the_weights_is_refused_before_anything_is_built(
        checkpoint, tmp_path, no_weights_loaded, layers):
    """2 layers over 1-layer weights loaded with the second layer random; 10,000 allocated 5.4 GB first."""
    edited = copy_with_config(checkpoint, tmp_path, num_hidden_layers=layers)
    assert refusal(edited).endswith(f"(config.json gives num_hidden_layers={layers} but model.safetensors holds 1 "
                                    "layer(s) of bert.encoder.layer: bert.encoder.layer.1.* is missing)")


def test_a_config_with_other_position_counts_is_refused_naming_the_weight_and_both_shapes(
        checkpoint, tmp_path, no_weights_loaded):
    """max_position_embeddings=1e8 allocated 14.4 GB for 70 s before the refusal."""
    edited = copy_with_config(checkpoint, tmp_path, max_position_embeddings=100_000_000)
    assert refusal(edited).endswith("(its weights do not have the shapes its config.json gives: "
                                    "bert.embeddings.position_embeddings.weight is [64, 32] in model.safetensors, "
                                    "[100000000, 32] by config.json)")


@pytest.mark.parametrize("change", ["missing", "unexpected"])
def test_a_weight_missing_from_or_foreign_to_the_model_is_refused_naming_it(checkpoint, tmp_path, change,
                                                                             no_weights_loaded):
    from safetensors.torch import load_file, save_file

    edited = shutil.copytree(checkpoint, tmp_path / "edited")
    tensors = load_file(edited / "model.safetensors")
    name = "bert.encoder.layer.0.output.dense.bias"
    if change == "missing":
        del tensors[name]
        said = f"(model.safetensors lacks {name}, which the model config.json gives has)"
    else:
        tensors["bert.encoder.extra.weight"] = tensors[name].clone()
        said = "(model.safetensors holds bert.encoder.extra.weight, which the model config.json gives does not have)"
    save_file(tensors, edited / "model.safetensors", metadata={"format": "pt"})
    assert refusal(edited).endswith(said)


def test_a_config_json_linked_to_a_huge_file_is_refused_by_its_size_unread(checkpoint, tmp_path, monkeypatch):
    """A config.json symlinked to a 1 GB file was read whole (2.45 GB, 15 s); the file here is sparse."""
    from pathlib import Path

    edited = shutil.copytree(checkpoint, tmp_path / "edited")
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(2**30)
    (edited / "config.json").unlink()
    (edited / "config.json").symlink_to(huge)
    read = Path.read_text

    def read_text(self, *args, **kwargs):
        assert self.resolve() != huge, "the oversized config.json was read"
        return read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert refusal(edited).endswith("(config.json holds 1024.0 MiB, more than the 1 MiB such a file may hold; "
                                    "it is not read)")


def test_a_tokenizer_file_linked_to_a_device_is_refused(checkpoint, tmp_path):
    edited = shutil.copytree(checkpoint, tmp_path / "edited")
    (edited / "tokenizer.json").unlink()
    (edited / "tokenizer.json").symlink_to("/dev/zero")
    assert refusal(edited).endswith("(tokenizer.json is a device, not a regular file)")


def test_a_reordered_vocab_txt_beside_a_valid_tokenizer_json_is_refused(checkpoint, tmp_path):
    """Hugging Face reads tokenizer.json and ignores vocab.txt: the two must still be one vocabulary."""
    edited = shutil.copytree(checkpoint, tmp_path / "edited")
    assert (edited / "tokenizer.json").is_file()
    tokens = (edited / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tokens[5], tokens[6] = tokens[6], tokens[5]
    (edited / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    assert refusal(edited).endswith(f"(vocab.txt and tokenizer.json are not one vocabulary (line 6 of vocab.txt is "
                                    f"{tokens[5]!r}, id 5 of tokenizer.json {tokens[6]!r}): use the tokenizer files "
                                    "saved together)")
