"""Checks of a composed train.py / pretrain.py config, before anything is read or written.

    validate(cfg)        every option this package reads, each against its allowed values; raises
                         ConfigError with one line naming the first bad option and what it may be

The decoding options' own checks live with them (decode_options.check, shared with generate.py and
TitleGenerator); validate() runs them on decode and on every trainer.final_decodes entry.

train.py and pretrain.py run validate() from a Hydra callback (seq2seq_rdrop.cli.ValidateConfig, named in
conf/train.yaml) before Hydra creates the run directory; train() and pretrain() run it again first thing,
for callers that compose their own config. Keys this module does not know are left alone.

Only omegaconf is imported here: a bad option is reported before torch is loaded.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .data import HEADERS
from . import decode_options
from .decode_options import DEFAULT_DECODE
from .errors import ConfigError, is_int, is_number, show  # noqa: F401 (ConfigError: where callers import it from)
from .metrics import METRIC_NAMES

FAMILIES = ("unilm", "bart")  # models.MODEL_CLASSES (asserted equal in tests)
KEEP = ("best", "last")  # trainer.keep: the weights that scored best on dev, or the final weights (training.py)
PRECISIONS = ("fp32", "bf16")  # trainer.precision (bf16: autocast, meant for GPUs; training.py)
LR_SCHEDULES = ("linear", "constant")  # trainer.lr_schedule (training.Optimisation.build reads it)
# regularizer.source and regularizer.passes: here, torch-free, so that a bad value is refused before torch loads;
# regularizers/random_replace.py and regularizers/rdrop.py import them
REPLACE_SOURCES = ("sequence", "vocab")
PASSES = ("doubled", "twice", "auto")
DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
_UNSET = object()


class _Checker:
    """Reads options of one config by dotted key and checks them; the first bad one raises ConfigError."""

    def __init__(self, cfg):
        self.cfg = cfg

    def get(self, key: str):
        """The resolved value, or _UNSET where the key is absent."""
        parent_key, _, leaf = key.rpartition(".")
        try:
            parent = OmegaConf.select(self.cfg, parent_key, default=_UNSET) if parent_key else self.cfg
            if parent is _UNSET or not isinstance(parent, DictConfig) or leaf not in parent.keys():
                return _UNSET  # (`in` alone says False for a ??? value too)
            if OmegaConf.is_missing(parent, leaf):
                what = " (a checkpoint directory)" if key == "model.pretrained" else ""
                raise ConfigError(f"{key}=??? must be set{what}: add {key}=VALUE to the command line")
            return parent[leaf]
        except ConfigError:
            raise
        except Exception as e:  # an interpolation that does not resolve
            raise ConfigError(f"{key}: {' '.join(str(e).split())}") from None

    def integer(self, key: str, low: int, high: int | None = None, null: bool = False, note: str = ""):
        value = self.get(key)
        if value is _UNSET or (value is None and null):
            return value
        if not is_int(value) or value < low or (high is not None and value > high):
            allowed = f"integers from {low} to {high}" if high is not None else f"integers >= {low}"
            raise ConfigError(f"{key}={show(value)}: allowed values are {'null or ' if null else ''}{allowed}{note}")
        return value

    def number(self, key: str, low: float | None = None, high: float | None = None, low_open: bool = False,
               high_open: bool = False, null: bool = False, note: str = ""):
        value = self.get(key)
        if value is _UNSET or (value is None and null):
            return value
        ok = is_number(value) and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            if low is not None and high is not None:
                allowed = f"numbers in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            elif low is not None:
                allowed = f"numbers {'>' if low_open else '>='} {low:g}"
            else:
                allowed = "finite numbers"
            raise ConfigError(f"{key}={show(value)}: allowed values are {'null or ' if null else ''}{allowed}{note}")
        return value

    def boolean(self, key: str, null: bool = False):
        value = self.get(key)
        if value is _UNSET or (value is None and null):
            return value
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={show(value)}: allowed values are {'null, ' if null else ''}true or false")
        return value

    def choice(self, key: str, allowed: tuple):
        value = self.get(key)
        if value is not _UNSET and value not in allowed:
            raise ConfigError(f"{key}={show(value)}: allowed values are "
                              f"{', '.join(a if isinstance(a, str) else show(a) for a in allowed)}")
        return value

    def text(self, key: str, null: bool = False, what: str = "a file name"):
        value = self.get(key)
        if value is _UNSET or (value is None and null):
            return value
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key}={show(value)}: allowed values are {'null or ' if null else ''}{what}")
        return value


# ------------------------------------------------------------------------------------------ decoding


def _check_decode_group(check: _Checker, key: str, base: dict | None = None, strict: bool = False) -> dict:
    """A decode mapping of the config (decode, or an entry of trainer.final_decodes over `base`). Unknown
    keys: an error with `strict` (final_decodes: generation would ignore them), else left alone."""
    group = check.get(key)
    if group is _UNSET or group is None:
        return dict(base or {})
    if not isinstance(group, DictConfig):
        raise ConfigError(f"{key}={show(group)}: a mapping of decoding options is required")
    values = {}
    for name in group:
        value = check.get(f"{key}.{name}")
        if strict and name not in DEFAULT_DECODE and name != "batch_size":
            raise ConfigError(f"{key}.{name}: unknown decoding option; known: {', '.join(DEFAULT_DECODE)}")
        values[name] = value
    opts = {**DEFAULT_DECODE, **(base or {}), **_given_options(values)}
    decode_options.check(opts, prefix=f"{key}.")
    if "batch_size" in values:
        check.integer(f"{key}.batch_size", 1)
    return opts


# ------------------------------------------------------------------------------------------ validate


def validate(cfg) -> None:
    """Every option of a composed train.py / pretrain.py config that this package reads, in the order
    seed, data, model, trainer, regularizer, decode, pretrain. Raises ConfigError (one line)."""
    check = _Checker(cfg)
    check.integer("seed", 0, 2**32 - 1)
    _check_data(check)
    _check_model(check)
    _check_trainer(check)
    _check_regularizer(check, "regularizer")
    _check_unlabeled(check)
    decode = _check_decode_group(check, "decode")
    check.integer("decode.batch_size", 1)
    decodes = check.get("trainer.final_decodes")
    if decodes not in (_UNSET, None):
        if not isinstance(decodes, DictConfig):
            raise ConfigError(f"trainer.final_decodes={show(decodes)}: a mapping name -> decoding overrides is required")
        for name in decodes:
            _check_decode_group(check, f"trainer.final_decodes.{name}", base=decode, strict=True)
    _check_pretrain(check)


def _check_data(check: _Checker) -> None:
    data_dir = check.text("data.dir", null=True, what="a directory")
    if isinstance(data_dir, str) and not Path(data_dir).is_dir():
        raise ConfigError(f"data.dir={data_dir}: no such directory (null: $CSL_DATA_DIR, else data/csl, "
                          "else ../shared/data/csl)")
    check.text("data.train_file")
    if check.get("data.dev_file") in (None, ""):
        raise ConfigError("data.dev_file=null: a dev file is required (the kept checkpoint is chosen on dev)")
    check.text("data.dev_file")
    check.text("data.test_file", null=True)
    holdout = check.integer("data.holdout_test", 0)
    if holdout not in (_UNSET, 0) and check.get("data.test_file") not in (_UNSET, None, ""):
        raise ConfigError("data.holdout_test and data.test_file are exclusive: set one of them")
    check.integer("data.max_train_samples", 0, null=True, note=" (null or 0 = all)")
    check.integer("data.val_size", 0, note=" (0 = no validation split: evaluate on dev)")
    check.integer("data.max_eval_samples", 0, null=True, note=" (null or 0 = all)")
    check.integer("data.max_source_len", 1)
    check.integer("data.max_target_len", 1)
    check.integer("data.vocab_min_count", 1)
    check.boolean("data.skip_bad_lines")
    check.choice("data.header", HEADERS)
    check.text("data.unlabeled_file", null=True)


def _check_model(check: _Checker) -> None:
    family = check.choice("model.family", FAMILIES)
    if family is _UNSET:
        return
    pretrained = check.get("model.pretrained")
    if pretrained not in (_UNSET, None):
        check.text("model.pretrained", what="a checkpoint directory")
        path = Path(pretrained)
        old = path.with_name(f".{path.name}.old") if path.name else path
        if not path.is_dir() and not old.is_dir():
            raise ConfigError(f"model.pretrained={pretrained}: no such directory (a checkpoint directory: config.json, "
                              "model.safetensors and tokenizer files, e.g. <pretrain run>/checkpoint)")
    else:  # a fresh model sized by the model group
        sizes = (("hidden_size", "num_layers", "num_heads", "intermediate_size") if family == "unilm"
                 else ("hidden_size", "encoder_layers", "decoder_layers", "num_heads", "ffn_size"))
        for key in (*sizes, "max_positions"):
            check.integer(f"model.{key}", 1)
        hidden, heads = check.get("model.hidden_size"), check.get("model.num_heads")
        if is_int(hidden) and is_int(heads) and hidden % heads:
            raise ConfigError(f"model.hidden_size={hidden}: must be a multiple of model.num_heads={heads}")
    check.number("model.dropout", 0.0, 1.0, high_open=True, null=True)
    for key in ("copy", "copy_follow", "copy_coverage"):
        check.boolean(f"model.{key}", null=True)
    check.boolean("model.trim_vocab")


def _check_trainer(check: _Checker) -> None:
    t = "trainer."
    check.integer(t + "epochs", 1)
    check.integer(t + "max_steps", 1, null=True, note=" (null = trainer.epochs passes)")
    check.number(t + "max_minutes", 0.0, low_open=True, null=True)
    check.integer(t + "batch_size", 1)
    check.number(t + "lr", 0.0, low_open=True)
    check.number(t + "weight_decay", 0.0)
    check.number(t + "warmup_ratio", 0.0, 1.0)
    check.integer(t + "warmup_steps", 0, null=True, note=" (null = trainer.warmup_ratio of the steps)")
    check.choice(t + "lr_schedule", LR_SCHEDULES)
    check.integer(t + "patience", 1, null=True, note=" (null = train to the last step)")
    check.boolean(t + "lr_decay_by_time")
    check.number(t + "max_grad_norm", 0.0, low_open=True)
    check.number(t + "ema_decay", 0.0, 1.0, low_open=True, high_open=True, null=True, note=" (null = off)")
    check.boolean(t + "fast_dropout")
    check.number(t + "label_smoothing", 0.0, 1.0, high_open=True)
    check.integer(t + "eval_every", 1, null=True, note=" (null = once per epoch)")
    check.choice(t + "monitor", METRIC_NAMES)
    check.integer(t + "log_every", 1)
    check.integer(t + "save_every", 0, note=" (0 = never)")
    check.integer(t + "keep_last_states", 1)
    if (check.get(t + "keep_last_states") not in (_UNSET, 1) and check.get(t + "save_every") == 0):
        raise ConfigError("trainer.keep_last_states > 1 needs trainer.save_every > 0 (states are kept when saved)")
    check.boolean(t + "overwrite")
    resume = check.get(t + "resume")
    if resume not in (_UNSET, None, True, False, "true", "false", "True", "False"):
        if not isinstance(resume, str) or not resume.strip():
            raise ConfigError(f"trainer.resume={show(resume)}: allowed values are true, false or a state directory")
        if not Path(resume).is_dir():
            raise ConfigError(f"trainer.resume={resume}: no such directory (a run directory or its state/)")
    device = check.get(t + "device")
    if device is not _UNSET and not (isinstance(device, str) and DEVICE.match(device)):
        raise ConfigError(f"trainer.device={show(device)}: allowed values are auto, cpu, cuda, cuda:N")
    check.integer(t + "num_threads", 1, null=True, note=" (null = torch's default)")
    check.choice(t + "precision", PRECISIONS)
    check.choice(t + "keep", KEEP)


def _check_regularizer(check: _Checker, key: str) -> None:
    group = check.get(key)
    if group is _UNSET or group is None:
        return
    if not isinstance(group, DictConfig):
        raise ConfigError(f"{key}={show(group)}: a regularizer config group is required (e.g. regularizer=rdrop)")
    check.text(f"{key}.name", null=True, what="a name")
    check.number(f"{key}.label_smoothing", 0.0, 1.0, high_open=True)
    check.number(f"{key}.model_dropout", 0.0, 1.0, high_open=True, null=True, note=" (null = the model's own)")
    check.number(f"{key}.model_attention_dropout", 0.0, 1.0, high_open=True, null=True,
                 note=" (null = the model's own)")
    check.number(f"{key}.alpha", 0.0, note=" (the weight of R-Drop's KL term)")
    check.number(f"{key}.epsilon", 0.0, note=" (the weight of the gradient penalty)")
    check.number(f"{key}.prob", 0.0, 1.0)
    check.number(f"{key}.example_prob", 0.0, 1.0)
    check.choice(f"{key}.source", REPLACE_SOURCES)
    check.choice(f"{key}.passes", PASSES)
    check.number(f"{key}.unlabeled_alpha", 0.0, note=" (the weight of the KL term on unlabelled abstracts)")
    check.number(f"{key}.self_train", 0.0, note=" (the weight of the CE on pseudo-titles)")
    check.number(f"{key}.unlabeled_ratio", 0.0, low_open=True, note=" (unlabelled abstracts per labelled pair)")
    check.integer(f"{key}.pseudo_max_len", 1)
    _check_regularizer(check, f"{key}.inner")


def _check_unlabeled(check: _Checker) -> None:
    """A semi-supervised regularizer (one with `unlabeled_ratio`, itself or wrapped) needs data.unlabeled_file."""
    key = "regularizer"
    while isinstance(check.get(key), DictConfig):
        if check.get(f"{key}.unlabeled_ratio") is not _UNSET and check.get("data.unlabeled_file") in (None, ""):
            raise ConfigError(f"data.unlabeled_file=null: {key} {show(check.get('regularizer.name'))} is "
                              "semi-supervised and needs unlabelled abstracts (one per line, or any layout "
                              "data.train_file may have)")
        key += ".inner"


def _check_pretrain(check: _Checker) -> None:
    p = "pretrain."
    if check.get("pretrain") in (_UNSET, None):
        return
    check.text(p + "titles_file", null=True)
    denoise, gap = check.boolean(p + "title_denoise"), check.boolean(p + "gap_sentence")
    if denoise is False and gap is False:
        raise ConfigError("pretrain.title_denoise=false and pretrain.gap_sentence=false: enable at least one")
    check.integer(p + "title_copies", 1)
    check.integer(p + "gap_per_abstract", 1)
    check.number(p + "delete_ratio", 0.0, 1.0, high_open=True)
    check.number(p + "shuffle_prob", 0.0, 1.0)
    check.number(p + "context_prob", 0.0, 1.0)
    check.integer(p + "heldout", 1)
    check.integer(p + "exclude_last", 0, null=True)
    check.integer(p + "train_titles", 0, null=True, note=" (null = every training pair's title)")


def check_run_decoding(cfg, model, device=None) -> None:
    """Once training's model is built, before its first step: each decoding it will run (decode and every
    trainer.final_decodes entry) keeps its beams within the vocabulary, and a batch of decode.batch_size
    abstracts x beams within the memory free now (decode_options.check_fits). Raises ConfigError."""
    base = {**DEFAULT_DECODE, **_given_options(OmegaConf.to_container(cfg.decode, resolve=True))}
    runs = [("decode.", base)]
    decodes = OmegaConf.select(cfg, "trainer.final_decodes", default=None)
    for name, overrides in (OmegaConf.to_container(decodes, resolve=True) if decodes else {}).items():
        runs.append((f"trainer.final_decodes.{name}.", {**base, **_given_options(overrides or {})}))
    rows = int(OmegaConf.select(cfg, "decode.batch_size", default=None) or 1)
    source_len = int(OmegaConf.select(cfg, "data.max_source_len", default=None) or 0) + 2
    for prefix, opts in runs:
        try:
            decode_options.check_fits(model, opts, rows, source_len, device, batch_option="decode.batch_size", prefix=prefix)
        except ValueError as e:
            raise ConfigError(str(e)) from None


def _given_options(values: dict) -> dict:
    """The decoding options a config mapping sets (not null; not e.g. decode.batch_size)."""
    return {k: v for k, v in values.items() if k in DEFAULT_DECODE and v is not None}


# ------------------------------------------------------------------------------------------ serve.py


SERVE_KEYS = ("checkpoint", "device", "max_source_len", "keep_case", "server")  # conf/serve.yaml
SERVER_KEYS = ("host", "port", "max_batch", "max_wait_ms", "queue_size", "max_abstracts", "max_chars",
               "max_total_chars", "max_body_bytes", "decode_timeout_s", "retry_after_s", "log_level")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def check_serve(cfg) -> None:
    """The options of serve.py (conf/serve.yaml), before the model is loaded. Raises ConfigError (one line)."""
    check = _Checker(cfg)
    unknown = sorted(set(cfg.keys()) - set(SERVE_KEYS)) + sorted(f"server.{k}" for k in set(cfg.server) - set(SERVER_KEYS))
    if unknown:  # keys added with +key=value
        raise ConfigError(f"unknown option {unknown[0]!r} (python serve.py --help lists the options)")
    check.text("checkpoint", what="a checkpoint directory")
    if not DEVICE.match(str(check.get("device"))):
        raise ConfigError(f"device={show(check.get('device'))}: allowed values are auto, cpu, cuda, cuda:N")
    check.integer("max_source_len", 1, null=True)
    check.boolean("keep_case")
    check.text("server.host", what="a host name or address")
    check.integer("server.port", 0, 65535, note=" (0: any free port)")
    for key in ("max_batch", "queue_size", "max_abstracts", "max_chars", "max_total_chars", "max_body_bytes",
                "retry_after_s"):
        check.integer(f"server.{key}", 1)
    check.number("server.max_wait_ms", 0.0)
    check.number("server.decode_timeout_s", 0.0, low_open=True)
    check.choice("server.log_level", LOG_LEVELS)
