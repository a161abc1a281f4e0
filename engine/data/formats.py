"""Record formats: detect which one a file uses and normalize each record to an Example.

    text         {"text": ...}                                   trains on all tokens
    alpaca       {"instruction", "input" (optional), "output", "system" (optional)}
    instruction  {"instruction", "input" (optional), "response", "system" (optional)}
    sharegpt     {"conversations": [{"from": "human"|"gpt"|"system", "value": ...}, ...]}
    messages     {"messages": [{"role": "user"|"assistant"|"system", "content": ...}, ...]}

Turns of either conversation format may use either key pair (from/value or role/content),
because both spellings are common in the wild under both names.
"""

from __future__ import annotations

from typing import Any

from engine.config.schema import DATA_FORMATS
from engine.data.example import Example
from engine.data.problems import RecordError
from engine.messages import Message

FORMATS = tuple(f for f in DATA_FORMATS if f != "auto")

# Detection order matters: a record with both `messages` and `text` is a conversation.
_SIGNATURES = (
    ("messages", ("messages",)),
    ("sharegpt", ("conversations",)),
    ("alpaca", ("instruction", "output")),
    ("instruction", ("instruction", "response")),
    ("text", ("text",)),
)

ROLE_NAMES = {
    "system": "system", "developer": "system",
    "user": "user", "human": "user",
    "assistant": "assistant", "gpt": "assistant",
}

_MISSING = object()


def detect_format(record: Any) -> str:
    if not isinstance(record, dict):
        raise _not_an_object(record)
    for name, keys in _SIGNATURES:
        if all(key in record for key in keys):
            return name
    shown = ", ".join(sorted(map(str, record))[:8]) or "none"
    raise RecordError("unknown-format", f"cannot tell the format from the fields ({shown})")


def normalize(record: Any, format: str, source: str) -> Example:
    """The Example for one parsed record, or a RecordError saying what is wrong with it."""
    if not isinstance(record, dict):
        raise _not_an_object(record)
    if format == "text":
        return Example((), _required_text(record, "text"), source)
    if format in ("alpaca", "instruction"):
        return Example(_instruction_messages(record, "output" if format == "alpaca" else "response"), None, source)
    if format in ("sharegpt", "messages"):
        return Example(_conversation(record, "conversations" if format == "sharegpt" else "messages"), None, source)
    raise ValueError(f"unknown format {format!r}")


def _instruction_messages(record: dict, output_key: str) -> tuple[Message, ...]:
    instruction = _required_text(record, "instruction")
    extra = _optional_text(record, "input")
    output = _required_text(record, output_key)
    system = _optional_text(record, "system")
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    head = (Message("system", system),) if system.strip() else ()
    return (*head, Message("user", prompt), Message("assistant", output))


def _conversation(record: dict, key: str) -> tuple[Message, ...]:
    turns = record.get(key, _MISSING)
    if turns is _MISSING or turns is None:
        raise RecordError("missing-field", f"missing field {key!r}")
    if not isinstance(turns, list):
        raise RecordError("wrong-type", f"{key!r} must be a list of turns, got {_kind(turns)}")
    if not turns:
        raise RecordError("empty-field", f"{key!r} is an empty list")
    keys = ("from", "value") if key == "conversations" else ("role", "content")
    messages = []
    asked = answered = False
    for index, turn in enumerate(turns):
        message = _message(turn, key, index, keys)
        role = message.role
        if role == "user":
            asked = True
        elif role == "assistant":
            answered = answered or asked
        elif not message.content.strip():
            continue  # an empty system prompt is common in exports and means "no system prompt"
        messages.append(message)
    if not answered:
        roles = ", ".join(m.role for m in messages)
        raise RecordError("no-assistant", f"no assistant turn after a user turn (roles: {roles})")
    return tuple(messages)


def _message(turn: Any, key: str, index: int, keys: tuple[str, str]) -> Message:
    # Fast path: a well-formed turn, as nearly all are, costs two lookups; anything else takes
    # the careful path, which accepts the other key pair and says exactly what is wrong.
    if type(turn) is dict:
        name, content = turn.get(keys[0]), turn.get(keys[1])
        role = ROLE_NAMES.get(name) if type(name) is str else None
        if role is not None and type(content) is str and (role == "system" or (content and not content.isspace())):
            return Message(role, content)
    return _checked_message(turn, f"{key}[{index}]", keys)


def _checked_message(turn: Any, where: str, keys: tuple[str, str]) -> Message:
    if not isinstance(turn, dict):
        raise RecordError("wrong-type", f"{where} must be an object with {' and '.join(keys)}, got {_kind(turn)}")
    other = ("role", "content") if keys[0] == "from" else ("from", "value")
    role_key, content_key = other if keys[0] not in turn and other[0] in turn else keys
    role = _required_text(turn, role_key, where=where)
    mapped = ROLE_NAMES.get(role.strip().lower())
    if mapped is None:
        raise RecordError("unknown-role", f"{where}.{role_key} is {role!r}")
    content = _field(turn, content_key, where)
    if not isinstance(content, str):
        raise RecordError("wrong-type", f"{where}.{content_key} must be text, got {_kind(content)}")
    if mapped != "system" and not content.strip():
        raise RecordError("empty-field", f"{where}.{content_key} is empty")
    return Message(mapped, content)


def _field(record: dict, key: str, where: str | None) -> Any:
    value = record.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise RecordError("missing-field", f"missing field {_name(key, where)}" + (" (null)" if value is None else ""))
    return value


def _required_text(record: dict, key: str, *, where: str | None = None) -> str:
    value = _field(record, key, where)
    if type(value) is not str:
        raise RecordError("wrong-type", f"{_name(key, where)} must be text, got {_kind(value)}")
    if not value or value.isspace():
        raise RecordError("empty-field", f"{_name(key, where)} is empty")
    return value


def _name(key: str, where: str | None) -> str:
    return f"{where}.{key}" if where else repr(key)


def _optional_text(record: dict, key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError("wrong-type", f"{key!r} must be text, got {_kind(value)}")
    return value


def _not_an_object(record: Any) -> RecordError:
    return RecordError("wrong-type", f"a record must be an object with named fields, got {_kind(record)}")


def _kind(value: Any) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}
    if value is None:
        return "null"
    shown = repr(value)
    return f"{names.get(type(value), type(value).__name__)} {shown[:40]}{'…' if len(shown) > 40 else ''}"
