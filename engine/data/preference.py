"""Preference formats: each record normalized to a PreferencePair or a RatedExample.

    preference           {"prompt", "chosen", "rejected"}: text, or lists of messages
                         (trl's preference format with an explicit prompt)
    implicit_preference  {"chosen": [messages], "rejected": [messages]}: the prompt is the turns
                         both conversations share (trl's implicit prompt)
    sharegpt_preference  {"conversations": [turns up to the last human turn],
                          "chosen": {"from": "gpt", "value"}, "rejected": {...}} (LLaMA-Factory)
    kto                  {"prompt", "completion", "label": true|false} (trl's unpaired preference)

A text prompt is one user turn and a text answer one assistant turn: like every other format,
they render through the chat template. As in trl, a text prompt beside chosen and rejected
conversations that hold their own prompt is a label, and the prompt is the turns they share.
"""

from __future__ import annotations

from typing import Any

from engine.data.example import PreferencePair, RatedExample
from engine.data.problems import RecordError
from engine.data.turns import (
    ROLE_KEYS,
    ROLE_NAMES,
    SHAREGPT_KEYS,
    checked_message,
    field,
    kind,
    required_text,
    turns,
)
from engine.messages import Message
from engine.phrases import Phrase, phrase

PAIR_FORMATS = ("preference", "implicit_preference", "sharegpt_preference")
PREFERENCE_FORMATS = (*PAIR_FORMATS, "kto")


def normalize_preference(record: dict, format: str, source: str) -> PreferencePair | RatedExample:
    if format == "preference":
        if type(record.get("prompt")) is str and _holds_a_prompt(record.get("chosen")):
            return _implicit(record, source)
        return _pair(_prompt(record, "prompt", ROLE_KEYS), record, ROLE_KEYS, source)
    if format == "implicit_preference":
        return _implicit(record, source)
    if format == "sharegpt_preference":
        return _pair(_prompt(record, "conversations", SHAREGPT_KEYS), record, SHAREGPT_KEYS, source)
    if format == "kto":
        prompt = _prompt(record, "prompt", ROLE_KEYS)
        completion = _answer(record, "completion", ROLE_KEYS)
        label = field(record, "label")
        if type(label) is not bool:
            raise RecordError("bad-label", phrase("'label' must be true or false, got {value}", value=kind(label)))
        return RatedExample(prompt, completion, label, source)
    raise ValueError(f"unknown preference format {format!r}")


def _pair(prompt: tuple[Message, ...], record: dict, keys: tuple[str, str], source: str) -> PreferencePair:
    return _checked_pair(prompt, _answer(record, "chosen", keys), _answer(record, "rejected", keys), source)


def _checked_pair(prompt: tuple[Message, ...], chosen: str, rejected: str, source: str) -> PreferencePair:
    if " ".join(chosen.split()) == " ".join(rejected.split()):
        raise RecordError("same-answers", phrase("chosen and rejected are both {answer}", answer=_shown(chosen)))
    return PreferencePair(prompt, chosen, rejected, source)


def _prompt(record: dict, key: str, keys: tuple[str, str]) -> tuple[Message, ...]:
    """A text prompt (one user turn), or turns ending with the user's turn that the answers follow."""
    value = field(record, key)
    if type(value) is str:
        return (Message("user", required_text(record, key)),)
    if not isinstance(value, list):
        raise RecordError("wrong-type", phrase("{field} must be text or a list of turns, got {value}", field=repr(key),
                                               value=kind(value)))
    prompt = turns(record, key, keys)
    if prompt[-1].role != "user":
        roles = ", ".join(m.role for m in prompt)
        raise RecordError("bad-prompt", phrase("{field} ends with the {role}'s turn, not the user's (roles: {roles})",
                                               field=repr(key), role=prompt[-1].role, roles=roles))
    return prompt


def _answer(record: dict, key: str, keys: tuple[str, str]) -> str:
    """An answer: text, one assistant turn, or a list holding just that turn (trl's conversational form)."""
    value = field(record, key)
    if type(value) is str:
        return required_text(record, key)
    if isinstance(value, list):
        if len(value) != 1:
            raise RecordError("wrong-type", phrase("{field} must hold one assistant turn, not {turns} turns",
                                                   field=repr(key), turns=len(value))
                              if value else phrase("{field} is an empty list", field=repr(key)))
        value, where = value[0], f"{key}[0]"
    else:
        where = key
    message = checked_message(value, where, keys)
    if message.role != "assistant":
        raise RecordError("wrong-type", phrase("{field} must be the assistant's answer, not a {role} turn", field=where,
                                               role=message.role))
    return message.content


def _holds_a_prompt(value: Any) -> bool:
    """Whether `value` is a conversation with a user turn of its own (rather than just an answer)."""
    roles = [turn.get("role", turn.get("from")) for turn in value if isinstance(turn, dict)] \
        if isinstance(value, list) else []
    return any(isinstance(role, str) and ROLE_NAMES.get(role) == "user" for role in roles)


def _implicit(record: dict, source: str) -> PreferencePair:
    """trl's implicit prompt: the longest run of turns both conversations start with; what
    follows must be one assistant answer in each."""
    chosen, rejected = turns(record, "chosen"), turns(record, "rejected")
    for key, conversation in (("chosen", chosen), ("rejected", rejected)):
        if conversation[-1].role != "assistant":
            roles = ", ".join(m.role for m in conversation)
            raise RecordError("no-assistant", phrase("{field} does not end with an assistant answer (roles: {roles})",
                                                     field=repr(key), roles=roles))
    shared = next((i for i, (a, b) in enumerate(zip(chosen, rejected)) if a != b), min(len(chosen), len(rejected)))
    if shared == len(chosen) == len(rejected):
        raise RecordError("same-answers", phrase("chosen and rejected are the same conversation, ending {answer}",
                                                 answer=_shown(chosen[-1].content)))
    if not shared == len(chosen) - 1 == len(rejected) - 1:
        raise RecordError("prompt-mismatch", _parting(chosen, rejected, shared))
    prompt = chosen[:shared]
    if not prompt:
        raise RecordError("bad-prompt", phrase("the turns before the answers are none, not the user's question"))
    if prompt[-1].role != "user":
        raise RecordError("bad-prompt", phrase("the turns before the answers end with the {role}'s turn, not the "
                                               "user's question", role=prompt[-1].role))
    return _checked_pair(prompt, chosen[-1].content, rejected[-1].content, source)


def _parting(chosen: tuple[Message, ...], rejected: tuple[Message, ...], at: int) -> Phrase:
    """Where two conversations that should share all but their last answer part."""
    def turn(conversation: tuple[Message, ...]) -> Phrase:
        if at >= len(conversation):
            return phrase("ends after {turns} turns", turns=len(conversation))
        return phrase("has {role} {text}", role=conversation[at].role, text=_shown(conversation[at].content))

    return phrase("the conversations part at turn {turn}, before the last answer: chosen {chosen}, rejected {rejected}",
                  turn=at + 1, chosen=turn(chosen), rejected=turn(rejected))


def _shown(text: str) -> str:
    shown = repr(" ".join(text.split()))
    return shown if len(shown) <= 42 else shown[:40] + "…'"
