"""A checkpoint's config.json against its weights, before anything is allocated: the layer counts and every
weight's shape the config gives are compared with the safetensors header (names and shapes, read without the
tensors). Hugging Face would otherwise allocate what config.json asks for first (num_hidden_layers=10000: 5.4 GB;
max_position_embeddings=1e8: 14 GB) and fill layers the weights lack with random values (a 2-layer config over
1-layer weights loaded with exit status 0 and different titles at every run).

    check_weights_fit_config(model_class, path)     ValueError naming the file and the weight, one line
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..checkpoints import safetensors_header
from .base import MODEL_CONFIG_KEY


def _header_shapes(files: list[Path]) -> dict[str, tuple[list[int], str]]:
    """{weight name: (shape, file name)} over a checkpoint's weight files (one, or the shards)."""
    shapes = {}
    for file in files:
        for name, tensor in safetensors_header(file).items():
            if name != "__metadata__" and isinstance(tensor, dict):
                shapes[name] = (list(tensor.get("shape") or []), file.name)
    return shapes


def _check_layer_counts(model_class, config: dict, saved: dict) -> None:
    """Each count of layers config.json gives (model_class.layer_keys) against the layers the weights hold,
    before a model of that many layers is built even on the meta device."""
    for key, stem in model_class.layer_keys.items():
        pattern = re.compile(rf"^(.*?(?:^|\.){re.escape(stem)})\.(\d+)\.")
        found: dict[int, str] = {}  # layer index -> the weights file holding it
        stem_name = where = ""
        for name, (_, file) in saved.items():
            if m := pattern.match(name):
                found.setdefault(int(m.group(2)), file)
                stem_name, where = m.group(1), file
        expected = config.get(key)
        if not found or not isinstance(expected, int) or isinstance(expected, bool):
            continue  # no such layers named so: the shape comparison below judges
        if sorted(found) != list(range(expected)):
            missing = sorted(set(range(max(expected, 0))) - set(found))
            extra = sorted(set(found) - set(range(max(expected, 0))))
            detail = (f"{stem_name}.{missing[0]}.* is missing" if missing else
                      f"{stem_name}.{extra[0]}.* is not in config.json's model")
            raise ValueError(f"config.json gives {key}={expected} but {where} holds {len(found)} layer(s) of "
                             f"{stem_name}: {detail}")


def _meta_model(model_class, path: Path):
    """The Hugging Face model config.json describes, built on the meta device: shapes without storage."""
    config = model_class.hf_class.config_class.from_pretrained(str(path))
    with torch.device("meta"):
        return model_class.hf_class(config)


def check_weights_fit_config(model_class, path: str | Path) -> None:
    """ValueError (one line, naming the weights file and a weight) when the safetensors weights of checkpoint
    directory `path` do not fit the model its config.json gives: a count of layers, a shape (sizes, position
    counts), a weight missing or (for our own checkpoints, whose config.json carries MODEL_CONFIG_KEY) one the
    model does not have. A plain Hugging Face checkpoint may lack the task heads (they are initialised, as Hugging
    Face does) and hold weights of other heads (left out); never a weight of the base model. Checkpoints with
    pytorch_model.bin only are left to transformers (their tensors cannot be listed without loading them)."""
    path = Path(path)
    files = sorted(path.glob("model*.safetensors"))  # model.safetensors, or model-0000N-of-0000M.safetensors
    if not files:
        return
    saved = _header_shapes(files)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))  # its size checked (check_file_sizes)
    _check_layer_counts(model_class, config, saved)
    model = _meta_model(model_class, path)
    expected = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    prefix = model.base_model_prefix + "."

    def as_named_here(name: str) -> str | None:
        renamed = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        return next((n for n in (name, prefix + name, renamed, prefix + renamed) if n in expected), None)

    matched = {}
    unknown = []
    for name, (shape, file) in sorted(saved.items()):
        ours = as_named_here(name)
        if ours is None:
            unknown.append((name, file))
        else:
            matched[ours] = (name, shape, file)
    wrong = [(name, shape, expected[ours], file) for ours, (name, shape, file) in sorted(matched.items())
             if shape != expected[ours]]
    if wrong:
        name, shape, wanted, file = wrong[0]
        more = f" and {len(wrong) - 1} more weight(s)" if len(wrong) > 1 else ""
        raise ValueError(f"its weights do not have the shapes its config.json gives: {name} is {shape} in {file}, "
                         f"{wanted} by config.json{more}")
    strict = isinstance(config.get(MODEL_CONFIG_KEY), dict)
    tied: dict[int, list[str]] = {}  # weights shared under several names: any one of them saved will do
    for name, parameter in model.named_parameters(remove_duplicate=False):
        tied.setdefault(id(parameter), []).append(name)
    missing = sorted(names[0] for names in tied.values() if not any(n in matched for n in names)
                     and (strict or names[0].startswith(prefix)))
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        holder = f"{files[0].name} lacks" if len(files) == 1 else "its weights files lack"
        raise ValueError(f"{holder} {missing[0]}{more}, which the model config.json gives has")
    if strict and unknown:
        (name, file), more = unknown[0], f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise ValueError(f"{file} holds {name}{more}, which the model config.json gives does not have")
