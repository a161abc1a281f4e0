"""Record formats: detect which one a file uses and normalize each record.

SFT formats, each record one Example:

    text         {"text": ...}                                   trains on all tokens
    alpaca       {"instruction", "input" (optional), "output", "system" (optional)}
    instruction  {"instruction", "input" (optional), "response", "system" (optional)}
    sharegpt     {"conversations": [{"from": "human"|"gpt"|"system", "value": ...}, ...]}
    messages     {"messages": [{"role": "user"|"assistant"|"system", "content": ...}, ...]}

Preference formats (engine.data.preference), each record a PreferencePair or a RatedExample:
preference, implicit_preference, sharegpt_preference and kto.
"""

from __future__ import annotations

from typing import Any

from engine.config.schema import DATA_FORMATS
from engine.data.example import AnyExample, Example
from engine.data.preference import PREFERENCE_FORMATS, normalize_preference
from engine.data.problems import RecordError
from engine.data.turns import ROLE_KEYS, SHAREGPT_KEYS, conversation, not_an_object, optional_text, required_text
from engine.messages import Message
from engine.phrases import phrase

FORMATS = tuple(f for f in DATA_FORMATS if f != "auto")

# Detection order matters: a record with both `messages` and `text` is a conversation, and one
# with `chosen` and `rejected` is a preference pair whatever else it holds.
_SIGNATURES = (
    ("sharegpt_preference", ("conversations", "chosen", "rejected")),
    ("preference", ("prompt", "chosen", "rejected")),
    ("implicit_preference", ("chosen", "rejected")),
    ("kto", ("prompt", "completion", "label")),
    ("messages", ("messages",)),
    ("sharegpt", ("conversations",)),
    ("alpaca", ("instruction", "output")),
    ("instruction", ("instruction", "response")),
    ("text", ("text",)),
)


def detect_format(record: Any) -> str:
    if not isinstance(record, dict):
        raise not_an_object(record)
    for name, keys in _SIGNATURES:
        if all(key in record for key in keys):
            return name
    if not record:
        raise RecordError("unknown-format", phrase("cannot tell the format from the fields (none)"))
    shown = ", ".join(sorted(map(str, record))[:8])
    raise RecordError("unknown-format", phrase("cannot tell the format from the fields ({fields})", fields=shown))


def normalize(record: Any, format: str, source: str) -> AnyExample:
    """The Example (or, for a preference format, the pair or rated example) of one parsed record,
    or a RecordError saying what is wrong with it."""
    if not isinstance(record, dict):
        raise not_an_object(record)
    if format == "text":
        return Example((), required_text(record, "text"), source)
    if format in ("alpaca", "instruction"):
        return Example(_instruction_messages(record, "output" if format == "alpaca" else "response"), None, source)
    if format == "sharegpt":
        return Example(conversation(record, "conversations", SHAREGPT_KEYS), None, source)
    if format == "messages":
        return Example(conversation(record, "messages", ROLE_KEYS), None, source)
    if format in PREFERENCE_FORMATS:
        return normalize_preference(record, format, source)
    raise ValueError(f"unknown format {format!r}")


def _instruction_messages(record: dict, output_key: str) -> tuple[Message, ...]:
    instruction = required_text(record, "instruction")
    extra = optional_text(record, "input")
    output = required_text(record, output_key)
    system = optional_text(record, "system")
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    head = (Message("system", system),) if system.strip() else ()
    return (*head, Message("user", prompt), Message("assistant", output))
