"""What an option may be, and the one-line check of a value against it: the checks config_checks runs on a
config, and the fields with which an owner declares its options' schema (each regularizer: regularizers/base.py).

    check_integer / check_number / check_boolean / check_choice / check_text (key, value, ...)
        the value, else ConfigError: "KEY=VALUE: allowed values are ..." in one line
    integer / number / boolean / choice / text (default, ...)   dataclass fields carrying those checks
    nested(required=...)                                         a field holding another block of the same kind
    check_fields(obj, prefix)                                    an instance's fields against their declarations

A declared field allows null where its default is None. Only errors.py (omegaconf) is imported: config_checks
reads these before torch loads.
"""
from __future__ import annotations

import dataclasses
import math
from functools import partial

from .errors import ConfigError, is_int, is_number, show

CHECK = "check"  # a declared field's metadata: its check, (key, value) -> value
NESTED = "nested"  # ... or, for a nested block: None, or what to say when it is missing (it is required)


# ------------------------------------------------------------------------------------------ one value


def check_integer(key: str, value, low: int, high: int | None = None, null: bool = False, note: str = ""):
    if value is None and null:
        return value
    if not is_int(value) or value < low or (high is not None and value > high):
        allowed = f"integers from {low} to {high}" if high is not None else f"integers >= {low}"
        raise ConfigError(f"{key}={show(value)}: allowed values are {'null or ' if null else ''}{allowed}{note}")
    return value


def check_number(key: str, value, low: float | None = None, high: float | None = None, low_open: bool = False,
                 high_open: bool = False, null: bool = False, note: str = ""):
    if value is None and null:
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


def check_boolean(key: str, value, null: bool = False):
    if (value is None and null) or isinstance(value, bool):
        return value
    raise ConfigError(f"{key}={show(value)}: allowed values are {'null, ' if null else ''}true or false")


def check_choice(key: str, value, allowed: tuple):
    if value not in allowed:
        raise ConfigError(f"{key}={show(value)}: allowed values are "
                          f"{', '.join(a if isinstance(a, str) else show(a) for a in allowed)}")
    return value


def check_text(key: str, value, null: bool = False, what: str = "a file name"):
    if value is None and null:
        return value
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}={show(value)}: allowed values are {'null or ' if null else ''}{what}")
    return value


# ------------------------------------------------------------------------------------------ declared fields


def _declared(default, check, **allowed) -> dataclasses.Field:
    return dataclasses.field(default=default, metadata={CHECK: partial(check, **allowed)})


def integer(default: int | None, low: int, high: int | None = None, note: str = "") -> dataclasses.Field:
    return _declared(default, check_integer, low=low, high=high, null=default is None, note=note)


def number(default: float | None, low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False, note: str = "") -> dataclasses.Field:
    return _declared(default, check_number, low=low, high=high, low_open=low_open, high_open=high_open,
                     null=default is None, note=note)


def boolean(default: bool | None) -> dataclasses.Field:
    return _declared(default, check_boolean, null=default is None)


def choice(default: str, allowed: tuple) -> dataclasses.Field:
    return _declared(default, check_choice, allowed=allowed)


def text(default: str | None, what: str) -> dataclasses.Field:
    return _declared(default, check_text, null=default is None, what=what)


def nested(required: str | None = None) -> dataclasses.Field:
    """A block of options of its own (null by default); `required`: it may not be null, and why."""
    return dataclasses.field(default=None, metadata={NESTED: required})


def check_fields(obj, prefix: str) -> None:
    """Each declared field of the dataclass instance `obj` against what it may be (a nested one only for being
    there when required; it checked its own). Raises ConfigError naming `prefix` + the field."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if NESTED in f.metadata:
            if value is None and f.metadata[NESTED]:
                raise ConfigError(f"{prefix}{f.name}: {f.metadata[NESTED]}")
        elif CHECK in f.metadata:
            f.metadata[CHECK](prefix + f.name, value)
