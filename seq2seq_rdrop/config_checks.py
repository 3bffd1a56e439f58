"""Checks of a composed train.py / pretrain.py config, before anything is read or written.

    validate(cfg)        every option this package reads, each against its allowed values; raises
                         ConfigError with one line naming the first bad option and what it may be

What an option may be is said once, where the code that uses it lives, whenever that code has a choice to
offer: the decoding options' own checks (decode_options.check, shared with generate.py and TitleGenerator),
each regularizer's options (its dataclass fields: regularizers/base.py), the model families (models.MODEL_CLASSES,
each class's size keys), the learning-rate schedules (lr_schedules.LR_SCHEDULES), the metrics, the data file
headers. What is left here are ranges, relations between options, paths and, once the model is built, what
decoding it fits (check_run_decoding).

train.py and pretrain.py run validate() from a Hydra callback (seq2seq_rdrop.cli.ValidateConfig, named in
conf/train.yaml) before Hydra creates the run directory; train() and pretrain() run it again first thing,
for callers that compose their own config. Keys this module does not know are left alone, except in a
regularizer block, whose class says every option it takes.

Only omegaconf is imported here. The regularizers, the models and the schedules load torch (the last two
transformers too): the options they own are checked last (_check_owned_options), in that order, so that every
other bad option is reported before torch loads.
"""
from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from .data import DATA_FILES, HEADERS, regular_file_problem, resolve_data_dir
from . import decode_options
from .decode_options import DEFAULT_DECODE
from .errors import ConfigError, is_int, show  # noqa: F401 (ConfigError: where callers import it from)
from .metrics import METRIC_NAMES
from .option_schema import CHECK, NESTED, check_boolean, check_choice, check_integer, check_number, check_text

KEEP = ("best", "last")  # trainer.keep: the weights that scored best on dev, or the final weights (training.py)
PRECISIONS = ("fp32", "bf16")  # trainer.precision (bf16: autocast, meant for GPUs; training.py)
DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
_UNSET = object()


class Checker:
    """Reads options of one config by dotted key and checks them; the first bad one raises ConfigError.
    (serving.check_serve uses it on serve.py's config.)"""

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

    # each: the value (_UNSET where the key is absent), else ConfigError (option_schema's checks)
    def integer(self, key: str, low: int, high: int | None = None, null: bool = False, note: str = ""):
        value = self.get(key)
        return value if value is _UNSET else check_integer(key, value, low, high, null, note)

    def number(self, key: str, low: float | None = None, high: float | None = None, low_open: bool = False,
               high_open: bool = False, null: bool = False, note: str = ""):
        value = self.get(key)
        return value if value is _UNSET else check_number(key, value, low, high, low_open, high_open, null, note)

    def boolean(self, key: str, null: bool = False):
        value = self.get(key)
        return value if value is _UNSET else check_boolean(key, value, null)

    def choice(self, key: str, allowed: tuple):
        value = self.get(key)
        return value if value is _UNSET else check_choice(key, value, allowed)

    def text(self, key: str, null: bool = False, what: str = "a file name"):
        value = self.get(key)
        return value if value is _UNSET else check_text(key, value, null, what)

    def declared(self, key: str, field: dataclasses.Field):
        """The option as its dataclass field declares it (option_schema); a field that declares nothing: as is."""
        value = self.get(key)
        return value if value is _UNSET or CHECK not in field.metadata else field.metadata[CHECK](key, value)


# ------------------------------------------------------------------------------------------ decoding


def _check_decode_group(check: Checker, key: str, base: dict | None = None, strict: bool = False) -> dict:
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
    seed, data, model, trainer, decode, pretrain, then those whose allowed values live with torch code
    (regularizer, model family and sizes, learning-rate schedule). Raises ConfigError (one line)."""
    check = Checker(cfg)
    check.integer("seed", 0, 2**32 - 1)
    _check_selector(check)
    _check_data(check)
    _check_model(check)
    _check_trainer(check)
    decode = _check_decode_group(check, "decode")
    check.integer("decode.batch_size", 1)
    decodes = check.get("trainer.final_decodes")
    if decodes not in (_UNSET, None):
        if not isinstance(decodes, DictConfig):
            raise ConfigError(f"trainer.final_decodes={show(decodes)}: a mapping name -> decoding overrides is required")
        for name in decodes:
            _check_decode_group(check, f"trainer.final_decodes.{name}", base=decode, strict=True)
    val_decodes = check.get("trainer.val_decodes")
    if val_decodes not in (_UNSET, None):
        known = set(decodes) if isinstance(decodes, DictConfig) else set()
        for name in val_decodes if isinstance(val_decodes, ListConfig) else [val_decodes]:
            if name not in known:
                raise ConfigError(f"trainer.val_decodes: {name} is not a trainer.final_decodes "
                                  f"entry; known: {', '.join(sorted(known)) or 'none'}")
    check.boolean("trainer.score_final_weights")
    _check_pretrain(check)
    _check_owned_options(check)


def _check_data(check: Checker) -> None:
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
    check.integer("data.holdout_offset", 0, null=True)
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
    _check_data_files(check)


def _check_data_files(check: Checker) -> None:
    """A data file that exists must be a regular file: a FIFO or /dev/zero would hang the run before its first
    line (a missing one is reported where it is read, with the formats)."""
    try:
        data_dir = resolve_data_dir(check.get("data.dir") if isinstance(check.get("data.dir"), str) else None)
    except FileNotFoundError:
        return  # reported when the data are read
    for option in DATA_FILES:
        name = check.get(f"data.{option}")
        if isinstance(name, str) and name:
            problem = regular_file_problem(data_dir / name)
            if problem and problem != "no such file":
                raise ConfigError(f"data.{option}={name}: {data_dir / name} {problem}; give a data file")


def _check_selector(check: Checker) -> None:
    """selector: null or a content selector file (scripts/train_selector.py --out); selector_epochs: 0 to 100
    (the passes of the selector a run trains first when none is given)."""
    check.integer("selector_epochs", 0, 100, note=" (passes of the content selector trained first; 0 = none)")
    value = check.get("selector")
    if value in (_UNSET, None):
        return
    check.text("selector", what="a content selector file")
    if not Path(value).is_file():
        raise ConfigError(f"selector={value}: no such file (a content selector: python scripts/train_selector.py "
                          "--out FILE.pt)")


def _check_model(check: Checker) -> None:
    """The model group but its family and sizes (_check_model_class)."""
    if check.get("model.family") is _UNSET:
        return
    pretrained = check.get("model.pretrained")
    if pretrained not in (_UNSET, None):
        check.text("model.pretrained", what="a checkpoint directory")
        path = Path(pretrained)
        old = path.with_name(f".{path.name}.old") if path.name else path
        if not path.is_dir() and not old.is_dir():
            raise ConfigError(f"model.pretrained={pretrained}: no such directory (a checkpoint directory: config.json, "
                              "model.safetensors and tokenizer files, e.g. <pretrain run>/checkpoint)")
    check.number("model.dropout", 0.0, 1.0, high_open=True, null=True)
    for key in ("copy", "copy_follow", "copy_coverage"):
        check.boolean(f"model.{key}", null=True)
    check.boolean("model.trim_vocab")


def _check_trainer(check: Checker) -> None:
    t = "trainer."
    check.integer(t + "epochs", 1)
    check.integer(t + "max_steps", 1, null=True, note=" (null = trainer.epochs passes)")
    check.number(t + "max_minutes", 0.0, low_open=True, null=True)
    check.integer(t + "batch_size", 1)
    check.number(t + "lr", 0.0, low_open=True)
    check.number(t + "weight_decay", 0.0)
    check.number(t + "warmup_ratio", 0.0, 1.0)
    check.integer(t + "warmup_steps", 0, null=True, note=" (null = trainer.warmup_ratio of the steps)")
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
    check.boolean(t + "tensorboard")


def _check_owned_options(check: Checker) -> None:
    """The options whose allowed values live with the torch code that uses them: the regularizer blocks (their
    classes load torch), the model family and a fresh model's sizes, the learning-rate schedule (torch and
    transformers). Last in validate(), so that every other option is checked before torch loads."""
    _check_regularizer(check, "regularizer")
    _check_unlabeled(check)
    _check_model_class(check)


def _check_model_class(check: Checker) -> None:
    """model.family among the registered classes, a fresh model's sizes (that class's size_keys), and
    trainer.lr_schedule among the schedules that training can build."""
    from .lr_schedules import LR_SCHEDULES  # not at the top: they load torch and transformers (see above)
    from .models import MODEL_CLASSES

    family = check.choice("model.family", tuple(MODEL_CLASSES))
    if family is not _UNSET and check.get("model.pretrained") in (_UNSET, None):
        for key in MODEL_CLASSES[family].size_keys():
            check.integer(f"model.{key}", 1)
        hidden, heads = check.get("model.hidden_size"), check.get("model.num_heads")
        if is_int(hidden) and is_int(heads) and hidden % heads:
            raise ConfigError(f"model.hidden_size={hidden}: must be a multiple of model.num_heads={heads}")
    check.choice("trainer.lr_schedule", tuple(LR_SCHEDULES))


def _check_regularizer(check: Checker, key: str) -> None:
    """A regularizer block against the fields of the class its _target_ names (regularizers/base.py): no option
    the class does not take, each option as its field declares it, then a nested block (inner) the same way."""
    group = check.get(key)
    if group is _UNSET or group is None:
        return
    if not isinstance(group, DictConfig):
        raise ConfigError(f"{key}={show(group)}: a regularizer config group is required (e.g. regularizer=rdrop)")
    target = check.text(f"{key}._target_", what="a regularizer class (conf/regularizer/*.yaml name theirs)")
    if target is _UNSET:
        raise ConfigError(f"{key}._target_ is required: the regularizer's class (e.g. regularizer=rdrop)")
    fields = {f.name: f for f in dataclasses.fields(_regularizer_class(key, target))}
    for name in group:
        if name != "_target_" and name not in fields:
            raise ConfigError(f"{key}.{name}: unknown option of {target}; known: {', '.join(fields)}")
    nested = {name: field for name, field in fields.items() if NESTED in field.metadata}
    for name, field in fields.items():
        if name not in nested:
            check.declared(f"{key}.{name}", field)
    for name, field in nested.items():  # after the block's own options, which a nested one may interpolate
        if check.get(f"{key}.{name}") in (_UNSET, None) and field.metadata[NESTED]:
            raise ConfigError(f"{key}.{name}: {field.metadata[NESTED]}")
        _check_regularizer(check, f"{key}.{name}")


def _regularizer_class(key: str, target: str) -> type:
    """The class a regularizer block's _target_ names, as Hydra's instantiate will find it."""
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{key}._target_={target}: no such class ({' '.join(str(e).split())})") from None
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(f"{key}._target_={target}: not a regularizer (a dataclass of its options, "
                          "seq2seq_rdrop/regularizers/base.py)")
    return cls


def _check_unlabeled(check: Checker) -> None:
    """A semi-supervised regularizer (one with `unlabeled_ratio`, itself or wrapped) needs data.unlabeled_file."""
    key = "regularizer"
    while isinstance(check.get(key), DictConfig):
        if check.get(f"{key}.unlabeled_ratio") is not _UNSET and check.get("data.unlabeled_file") in (None, ""):
            raise ConfigError(f"data.unlabeled_file=null: {key} {show(check.get('regularizer.name'))} is "
                              "semi-supervised and needs unlabelled abstracts (one per line, or any layout "
                              "data.train_file may have)")
        key += ".inner"


def _check_pretrain(check: Checker) -> None:
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
    exclude_last = check.integer(p + "exclude_last", 0, null=True)
    holdout, offset = check.get("data.holdout_test"), check.get("data.holdout_offset")
    if (exclude_last is not _UNSET and isinstance(offset, int) and offset > 0 and isinstance(holdout, int)
            and holdout > 0 and (exclude_last or 0) < holdout + offset):
        raise ConfigError(f"pretrain.exclude_last={exclude_last} would pretrain on held-out pairs: with "
                          f"data.holdout_test={holdout} data.holdout_offset={offset} set pretrain.exclude_last="
                          f"{holdout + offset} (or more)")
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
