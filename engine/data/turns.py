"""Reading one record's fields and turns, with a RecordError that says exactly what is wrong.

Shared by the SFT formats (engine.data.formats) and the preference formats
(engine.data.preference). Turns may use either key pair (from/value or role/content), because
both spellings are common in the wild under every name.
"""

from __future__ import annotations

from typing import Any

from engine.data.problems import RecordError
from engine.i18n import N_
from engine.messages import Message
from engine.phrases import Phrase, phrase

ROLE_NAMES = {
    "system": "system", "developer": "system",
    "user": "user", "human": "user",
    "assistant": "assistant", "gpt": "assistant",
}
ROLE_KEYS = ("role", "content")
SHAREGPT_KEYS = ("from", "value")
# How the kinds of JSON values are named in an error, before the start of the value
VALUE_KINDS = {bool: N_("true/false {value}"), int: N_("a number {value}"), float: N_("a number {value}"),
               str: N_("text {value}"), list: N_("a list {value}"), dict: N_("an object {value}")}

_MISSING = object()


def turns(record: dict, key: str, keys: tuple[str, str] = ROLE_KEYS) -> tuple[Message, ...]:
    """The non-empty list of turns under `key`; an empty system prompt is left out (common in
    exports, it means "no system prompt")."""
    value = record.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise RecordError("missing-field", phrase("missing field {field}", field=repr(key)))
    if not isinstance(value, list):
        raise RecordError("wrong-type", phrase("{field} must be a list of turns, got {value}", field=repr(key),
                                               value=kind(value)))
    if not value:
        raise RecordError("empty-field", phrase("{field} is an empty list", field=repr(key)))
    messages = []
    for index, turn in enumerate(value):
        message = _message(turn, key, index, keys)
        if message.role == "system" and not message.content.strip():
            continue
        messages.append(message)
    return tuple(messages)


def conversation(record: dict, key: str, keys: tuple[str, str]) -> tuple[Message, ...]:
    """The turns under `key`, which must hold an assistant turn after a user turn (what SFT learns)."""
    messages = turns(record, key, keys)
    first_user = next((i for i, m in enumerate(messages) if m.role == "user"), len(messages))
    if not any(m.role == "assistant" for m in messages[first_user + 1:]):
        roles = ", ".join(m.role for m in messages)
        raise RecordError("no-assistant", phrase("no assistant turn after a user turn (roles: {roles})", roles=roles))
    return messages


def _message(turn: Any, key: str, index: int, keys: tuple[str, str]) -> Message:
    # Fast path: a well-formed turn, as nearly all are, costs two lookups; anything else takes
    # the careful path, which accepts the other key pair and says exactly what is wrong.
    if type(turn) is dict:
        name, content = turn.get(keys[0]), turn.get(keys[1])
        role = ROLE_NAMES.get(name) if type(name) is str else None
        if role is not None and type(content) is str and (role == "system" or (content and not content.isspace())):
            return Message(role, content)
    return checked_message(turn, f"{key}[{index}]", keys)


def checked_message(turn: Any, where: str, keys: tuple[str, str]) -> Message:
    if not isinstance(turn, dict):
        raise RecordError("wrong-type", phrase("{field} must be an object with {first} and {second}, got {value}",
                                               field=where, first=keys[0], second=keys[1], value=kind(turn)))
    other = ROLE_KEYS if keys[0] == "from" else SHAREGPT_KEYS
    role_key, content_key = other if keys[0] not in turn and other[0] in turn else keys
    role = required_text(turn, role_key, where=where)
    mapped = ROLE_NAMES.get(role.strip().lower())
    if mapped is None:
        raise RecordError("unknown-role", phrase("{field} is {value!r}", field=_name(role_key, where), value=role))
    content = field(turn, content_key, where)
    if not isinstance(content, str):
        raise RecordError("wrong-type", phrase("{field} must be text, got {value}", field=_name(content_key, where),
                                               value=kind(content)))
    if mapped != "system" and not content.strip():
        raise RecordError("empty-field", phrase("{field} is empty", field=_name(content_key, where)))
    return Message(mapped, content)


def field(record: dict, key: str, where: str | None = None) -> Any:
    value = record.get(key, _MISSING)
    if value is _MISSING:
        raise RecordError("missing-field", phrase("missing field {field}", field=_name(key, where)))
    if value is None:
        raise RecordError("missing-field", phrase("missing field {field} (null)", field=_name(key, where)))
    return value


def required_text(record: dict, key: str, *, where: str | None = None) -> str:
    value = field(record, key, where)
    if type(value) is not str:
        raise RecordError("wrong-type", phrase("{field} must be text, got {value}", field=_name(key, where),
                                               value=kind(value)))
    if not value or value.isspace():
        raise RecordError("empty-field", phrase("{field} is empty", field=_name(key, where)))
    return value


def _name(key: str, where: str | None) -> str:
    return f"{where}.{key}" if where else repr(key)


def optional_text(record: dict, key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError("wrong-type", phrase("{field} must be text, got {value}", field=repr(key), value=kind(value)))
    return value


def not_an_object(record: Any) -> RecordError:
    return RecordError("wrong-type", phrase("a record must be an object with named fields, got {value}",
                                           value=kind(record)))


def kind(value: Any) -> Phrase | str:
    """How a JSON value is named in an error: its kind and the start of it."""
    if value is None:
        return "null"
    shown = repr(value)
    shown = f"{shown[:40]}{'…' if len(shown) > 40 else ''}"
    named = VALUE_KINDS.get(type(value))
    return f"{type(value).__name__} {shown}" if named is None else Phrase(named, (("value", shown),))
