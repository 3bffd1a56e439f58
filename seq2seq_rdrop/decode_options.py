"""The decoding options, in one place: OPTIONS lists each with its default, its allowed values, its Hugging
Face GenerationConfig field and the searches that use it; check() checks a set of them alone and against each
other, check_fits() against a model and the memory free; to_generation_config / from_generation_config map
them to and from a checkpoint's generation_config.json (checkpoints.py reads and writes the file).

Their defaults are what training's dev evaluation uses, and generation where a checkpoint does not say. Their
home is here, not in conf/: conf/ is not installed with the package. conf/decode/beam.yaml and
conf/generate.yaml repeat them for the command line (tests/test_generate.py asserts that they agree).
A new option: docs/extending.md.

Only omegaconf is imported (through errors.py): generate.py reports a bad option before torch is loaded.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigError, is_int, show
from .option_schema import check_number
from .rerank import NO_RERANK, parse_weights

# decode.beam_size may not exceed this (nor the vocabulary), nor sampling's titles side by side: memory grows with
# beams x abstracts x length, and past a few dozen beams titles stop improving (dev R-L of six preset checkpoints:
# beam 16 44.66, beam 24 44.71; docs/experiments/2026-11-25_quality_preset.md)
MAX_BEAM_SIZE = 64
STRATEGIES = ("beam", "sample")  # decode.strategy: decoding.SEARCHES' keys (asserted equal in tests)
# what check()'s errors relating two options say (num_return vs beam_size, beam_groups vs beam_size, min_len vs
# max_len): generate.py judges those once the checkpoint's settings, where the other one may come from, are known
RELATION_WORDS = ("cannot exceed", "must divide")
# decode.length_penalty's bound: a score is log p / length ** length_penalty (decoding._normalise), and with
# |length_penalty| <= 10 that power stays a finite, non-zero float for any title shorter than 10**30 tokens
# (at 400 it overflows for 7 tokens, at -400 it underflows to 0, a division by zero)
MAX_LENGTH_PENALTY = 10.0
# decode.temperature's and decode.repetition_penalty's range: sampling divides float32 log-probabilities by the
# temperature, and the penalty multiplies them; past float32's range (1e-38 to 3e38) every score is 0/0 or inf/inf
# and every title comes out empty with no score. Well inside it, 0.01 is greedy search and 100 a uniform draw
# over the allowed tokens in all but name, so nothing useful lies beyond.
SCALE_RANGE = (0.01, 100.0)
OURS = "seq2seq_rdrop"  # our own fields inside HF files (as models.MODEL_CONFIG_KEY in config.json)


@dataclass(frozen=True)
class DecodeOption:
    """One decoding option. Its type is its default's; numbers may take [low, high] (low excluded: low_open)."""

    name: str
    default: object
    hf_field: str | None  # its GenerationConfig field; None: HF has none (strategy is do_sample, seed is ours)
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    only: str | None = None  # "sample": HF uses it only when sampling; "beams": only with more than one beam
    later: bool = False  # added with sampling and diverse beams (issue 17): its default is how older runs decoded


OPTIONS = (
    DecodeOption("beam_size", 16, "num_beams", low=1, high=MAX_BEAM_SIZE),
    DecodeOption("max_len", 32, "max_new_tokens", low=1),
    DecodeOption("min_len", 1, "min_new_tokens", low=0),
    DecodeOption("length_penalty", 1.0, "length_penalty", low=-MAX_LENGTH_PENALTY, high=MAX_LENGTH_PENALTY,
                 only="beams"),
    DecodeOption("no_repeat_ngram", 3, "no_repeat_ngram_size", low=0),
    DecodeOption("num_return", 1, "num_return_sequences", low=1),
    DecodeOption("use_cache", True, "use_cache"),
    DecodeOption("strategy", "beam", None, later=True),
    DecodeOption("temperature", 1.0, "temperature", low=SCALE_RANGE[0], high=SCALE_RANGE[1], only="sample",
                 later=True),
    DecodeOption("top_k", 0, "top_k", low=0, only="sample", later=True),
    DecodeOption("top_p", 1.0, "top_p", low=0.0, high=1.0, low_open=True, only="sample", later=True),
    DecodeOption("seed", 0, None, low=0, later=True),
    DecodeOption("beam_groups", 1, "num_beam_groups", low=1, only="beams", later=True),
    DecodeOption("diversity_penalty", 0.0, "diversity_penalty", low=0.0, only="beams", later=True),
    DecodeOption("repetition_penalty", 1.0, "repetition_penalty", low=SCALE_RANGE[0], high=SCALE_RANGE[1],
                 later=True),
    DecodeOption("rerank", NO_RERANK, None, later=True),  # none or {feature: weight}: rerank.py
    DecodeOption("span_candidates", 0, None, low=0, high=5, later=True),  # the selector's spans as candidates
)
DEFAULT_DECODE = {o.name: o.default for o in OPTIONS}
# a checkpoint that does not name these decoded as their defaults say: it is not warned about
LATER_DECODE_DEFAULTS = {o.name: o.default for o in OPTIONS if o.later}
HF_DECODE_FIELDS = {o.name: o.hf_field for o in OPTIONS if o.hf_field}
OURS_ONLY = tuple(o.name for o in OPTIONS if o.hf_field is None and o.name != "strategy")  # strategy: do_sample
SAMPLE_ONLY = tuple(o.name for o in OPTIONS if o.only == "sample")  # HF warns about them without do_sample
BEAM_ONLY = tuple(o.name for o in OPTIONS if o.only == "beams")  # ... refuses some of them without beams


# ------------------------------------------------------------------------------------------ checks


def check(opts: dict, prefix: str = "decode.") -> dict:
    """The decoding options `opts` (every one of OPTIONS) against their allowed values; returns them."""
    if opts["strategy"] not in STRATEGIES:
        raise ConfigError(f"{prefix}strategy={show(opts['strategy'])}: allowed values are {', '.join(STRATEGIES)}")
    _check_integers(opts, prefix)
    if opts["span_candidates"] > 5:  # the selector's spans at hand (selector.spans' top 5, the sel feature's)
        raise ConfigError(f"{prefix}span_candidates={opts['span_candidates']}: allowed values are 0 to 5")
    if opts["beam_size"] > MAX_BEAM_SIZE:
        raise ConfigError(f"{prefix}beam_size={opts['beam_size']}: allowed values are 1 to {MAX_BEAM_SIZE} "
                          "(memory grows with the beam; titles stop improving long before)")
    _check_hypotheses_per_abstract(opts, prefix)
    for option in OPTIONS:
        if isinstance(option.default, float) and option.low is not None:
            check_number(prefix + option.name, opts[option.name], option.low, option.high, option.low_open)
    if opts["min_len"] > opts["max_len"]:
        raise ConfigError(f"{prefix}min_len={opts['min_len']} cannot exceed {prefix}max_len={opts['max_len']}")
    if not isinstance(opts["use_cache"], bool):
        raise ConfigError(f"{prefix}use_cache={show(opts['use_cache'])}: true or false")
    parse_weights(opts["rerank"], f"{prefix}rerank")
    return opts


def _check_integers(opts: dict, prefix: str) -> None:
    integers = [o for o in OPTIONS if is_int(o.default)]
    for option in integers:
        if not is_int(opts[option.name]):
            raise ConfigError(f"{prefix}{option.name}={show(opts[option.name])}: an integer is required")
    for option in sorted(integers, key=lambda o: -o.low):  # those from 1 first: which error comes first stays
        if opts[option.name] < option.low:
            raise ConfigError(f"{prefix}{option.name}={opts[option.name]}: allowed values are integers >= {option.low}")


def _check_hypotheses_per_abstract(opts: dict, prefix: str) -> None:
    """Beam search returns at most its beams and splits them into equal groups; sampling draws num_return
    titles side by side, as many as beam search may hold beams (the same memory)."""
    if opts["strategy"] == "sample":
        if opts["num_return"] > MAX_BEAM_SIZE:
            raise ConfigError(f"{prefix}num_return={opts['num_return']}: allowed values are 1 to {MAX_BEAM_SIZE} "
                              f"samples per abstract")
        return
    if opts["num_return"] > opts["beam_size"]:
        raise ConfigError(f"{prefix}num_return={opts['num_return']} cannot exceed {prefix}beam_size={opts['beam_size']}")
    if opts["beam_size"] % opts["beam_groups"]:
        raise ConfigError(f"{prefix}beam_groups={opts['beam_groups']} must divide "
                          f"{prefix}beam_size={opts['beam_size']} (groups of equal size)")


def check_fits(model, opts: dict, rows: int, source_len: int, device=None,
               batch_option: str = "batch_size", prefix: str = "decode.") -> None:
    """Before decoding: decode.beam_size within the vocabulary (beam search), and the memory a batch of `rows`
    abstracts x beams (or samples) needs (the model's estimate_decode_bytes) within what the device has free.
    Raises ValueError (one line)."""
    sampling = opts.get("strategy") == "sample"
    per_abstract = "num_return" if sampling else "beam_size"  # the hypotheses decoded side by side
    vocab = getattr(model, "vocab_size", None)
    if vocab and not sampling and opts["beam_size"] > vocab:
        raise ValueError(f"{prefix}beam_size={opts['beam_size']} exceeds the model's vocabulary of {vocab} tokens")
    need = model.estimate_decode_bytes(rows * opts[per_abstract], source_len, opts["max_len"])
    free = available_memory(device)
    if free is not None and need > free:
        raise ValueError(f"decoding {rows} abstract(s) x {prefix}{per_abstract}={opts[per_abstract]} at once needs "
                         f"about {need / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB of memory available: "
                         f"lower {batch_option} or {prefix}{per_abstract}")


def available_memory(device=None) -> int | None:
    """Bytes free for decoding on `device` (MemAvailable on Linux for the CPU), or None when unknown."""
    kind = getattr(device, "type", None) or str(device or "cpu").split(":")[0]
    if kind == "cuda":
        try:
            import torch  # only for a CUDA device, which has torch loaded already

            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:
            return None
    if kind != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# ------------------------------------------------------------------------------ generation_config.json


def to_generation_config(decode: dict, config: dict, max_source_len: int | None) -> dict:
    """`config` (the generation_config.json Hugging Face may have written: a BART's token ids stay) with our
    decoding options (DEFAULT_DECODE where `decode` lacks one) in HF's fields. An option HF's generation mode
    does not use (_hf_unused: length_penalty in greedy decoding, which GenerationConfig refuses without beams;
    beam_size when sampling, where HF's num_beams is 1) is kept under our own key when it is not its default."""
    opts = {**DEFAULT_DECODE, **{k: v for k, v in decode.items() if k in DEFAULT_DECODE and v is not None}}
    config = dict(config)
    ours = {"max_source_len": max_source_len} if max_source_len else {}
    unused = _hf_unused(opts["strategy"], opts["beam_size"])
    for name, field in HF_DECODE_FIELDS.items():
        if name in unused:
            config.pop(field, None)
            if opts[name] != DEFAULT_DECODE[name]:
                ours[name] = opts[name]
        else:
            config[field] = opts[name]
    if "length_penalty" in unused:
        config.pop("early_stopping", None)
    for name in OURS_ONLY:  # no GenerationConfig field: under our own key, when not the default
        if opts[name] != DEFAULT_DECODE[name]:
            ours[name] = dict(opts[name]) if isinstance(opts[name], Mapping) else opts[name]
    config["do_sample"] = opts["strategy"] == "sample"
    if config["do_sample"]:
        config["num_beams"] = 1  # HF's multinomial sampling
    config.pop("_from_model_config", None)  # ours now, not derived from config.json: HF must not rebuild it
    config[OURS] = ours
    return config


def from_generation_config(config) -> tuple[dict, int | None] | None:
    """(decoding options, max_source_len or None) from a generation_config.json's content written by
    to_generation_config; None when it is some other tool's."""
    if not isinstance(config, dict) or not isinstance(config.get(OURS), dict):
        return None
    ours = config[OURS]
    strategy = "sample" if config.get("do_sample") else "beam"
    beam_size = ours.get("beam_size", DEFAULT_DECODE["beam_size"]) if strategy == "sample" else config.get("num_beams")
    unused = _hf_unused(strategy, beam_size)
    decode = {name: ours.get(name, DEFAULT_DECODE[name]) if name in unused else config.get(field, DEFAULT_DECODE[name])
              for name, field in HF_DECODE_FIELDS.items()}
    decode = {k: (DEFAULT_DECODE[k] if v is None else v) for k, v in decode.items()}
    decode.update(strategy=strategy, **{name: ours.get(name, DEFAULT_DECODE[name]) for name in OURS_ONLY})
    max_source_len = ours.get("max_source_len")
    return decode, (int(max_source_len) if max_source_len else None)


def _hf_unused(strategy: str, beam_size: int | None) -> set[str]:
    """Our options that Hugging Face's generation mode for these settings ignores or refuses (when sampling,
    HF's num_beams is 1: our beam_size is kept under our own key)."""
    if strategy == "sample":
        return {"beam_size", *BEAM_ONLY}
    return {*SAMPLE_ONLY, *(BEAM_ONLY if beam_size == 1 else ())}
