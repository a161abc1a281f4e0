"""RunConfig <-> YAML, and `section.field=value` overrides from the command line."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from engine.atomic import atomic_write_text
from engine.config.fields import coerce
from engine.config.record import RECORD_COMMENT, RECORD_KEY, LaunchRecord
from engine.config.schema import SECTIONS, RunConfig
from engine.errors import ConfigError
from engine.phrases import Phrase, phrase

Source = str | Phrase  # a config file's path, or where values came from in words ("command line")


def to_dict(config: Any) -> dict[str, Any]:
    """Plain data (tuples become lists) in field order, ready for YAML."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return plain(config)


def from_dict(data: Mapping[str, Any], *, source: Source = phrase("config")) -> RunConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(phrase("{source}: the top level must be a mapping of sections", source=source), where=source)
    settings = {key: value for key, value in data.items() if key != RECORD_KEY}
    return _build(RunConfig, settings, prefix="", source=source)


def _build(cls: type, data: Mapping[str, Any], *, prefix: str, source: Source) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            field = prefix + str(key)
            hint = (phrase("did you mean {key}?", key=prefix + close[0]) if close
                    else phrase("known keys: {keys}", keys=", ".join(sorted(known))))
            raise ConfigError(phrase("{source}: unknown key {key}", source=source, key=field), where=field, hint=hint)
    kwargs = {}
    for key, value in data.items():
        annotation = hints[key]
        where = f"{prefix}{key}"
        if dataclasses.is_dataclass(annotation):
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise ConfigError(phrase("{source}: {field} must be a mapping", source=source, field=where), where=where)
            kwargs[key] = _build(annotation, value, prefix=f"{where}.", source=source)
        else:
            kwargs[key] = coerce(value, annotation, where)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        message, where, hint = exc.phrases  # kept as phrases, so the message is still translated whole
        raise ConfigError(phrase("{source}: {message}", source=source, message=message),
                          where=where, hint=hint) from exc


def dump_yaml(config: RunConfig, record: LaunchRecord | None = None) -> str:
    text = _yaml(to_dict(config))
    if record is not None:
        text += f"{RECORD_COMMENT}\n" + _yaml({RECORD_KEY: record.to_dict()})
    return text


def _yaml(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def save_yaml(config: RunConfig, path: Path, record: LaunchRecord | None = None) -> None:
    atomic_write_text(Path(path), dump_yaml(config, record))


def load_record(path: Path) -> LaunchRecord | None:
    """The launch record in a config file that tanren wrote (see engine.config.record), or None."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return LaunchRecord.from_dict(data.get(RECORD_KEY)) if isinstance(data, Mapping) else None


def load_yaml(path: Path) -> RunConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(phrase("config file {path} does not exist", path=path), where=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError(phrase("{path} is not UTF-8 text", path=path), where=str(path),
                          hint=phrase("save the file as UTF-8")) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or phrase("invalid YAML")  # the parser's own words, else ours
        raise ConfigError(phrase("{path} is not valid YAML: {problem}", path=path, problem=problem),
                          where=where) from None
    return from_dict(data, source=str(path))


def apply_overrides(config: RunConfig, overrides: Iterable[str]) -> RunConfig:
    """Apply `section.field=value` strings (values parsed as YAML scalars) on top of `config`."""
    data = to_dict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or (section in SECTIONS and not dot):
            raise ConfigError(phrase("override {item!r} is not of the form section.field=value", item=item),
                              where=item, hint=phrase("for example {example}", example="training.learning_rate=1e-4"))
        value = yaml.safe_load(raw) if raw.strip() else None
        if section not in SECTIONS:
            if dot:
                raise ConfigError(phrase("unknown config section {section!r}", section=section), where=key.strip(),
                                  hint=phrase("sections: {sections}", sections=", ".join(SECTIONS)))
            data[section] = value
        else:
            data.setdefault(section, {})[name] = value
    return from_dict(data, source=phrase("command line"))
