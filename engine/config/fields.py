"""Field helpers: help text in metadata, and checked conversion of plain values to field types."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union

from engine.errors import ConfigError
from engine.phrases import Phrase, phrase


def param(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with help text that `tanren ... --help` and the TUI forms show.

    `help` is an English message id marked with N_(); whoever shows it translates it.
    """
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults so configs stay immutable")
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def field_help(cls: type, name: str) -> str:
    """The field's help, as its message id: show it through the catalog's gettext."""
    return next(f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name)


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML/CLI value to `annotation`, or raise a ConfigError naming `where`."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return coerce(value, option, where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is tuple:
        item_type = typing.get_args(annotation)[0]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise _type_error(value, phrase("a list"), where)
        return tuple(coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(value, phrase("true or false"), where)
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(value, phrase("a whole number"), where)
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads "2e-4" as a string
            except ValueError:
                pass
        raise _type_error(value, phrase("a number"), where)
    if annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise _type_error(value, phrase("text"), where)
    raise TypeError(f"unsupported config type {annotation!r} at {where}")


def _type_error(value: Any, expected: Phrase, where: str) -> ConfigError:
    return ConfigError(phrase("{where} must be {expected}, got {value!r}", where=where, expected=expected, value=value),
                       where=where)
