"""The error every option check raises, how it shows a value, and an exception's message on one line: one home
for each, so that the checks of decoding options (decode_options.py) and of the rest of a config
(config_checks.py) need not import each other.

Only omegaconf is imported here: a bad option is reported before torch is loaded.
"""
from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf


class ConfigError(ValueError):
    """An option outside its allowed values; the message is one line naming it and them."""


def show(value) -> str:
    """A value as it is written on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (DictConfig, ListConfig)):
        return str(OmegaConf.to_container(value))
    return str(value)


def one_line(e: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut at `limit` characters (its type's name when it has none)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
