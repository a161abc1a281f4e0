"""Context fitting of a conversation, and chat sessions saved as JSONL."""

from __future__ import annotations

import json

import pytest

from engine.chat.history import fit_to_context, with_system_prompt
from engine.chat.sessions import ChatSession, list_sessions, load_session, save_session, session_path
from engine.config import GenerationConfig
from engine.errors import InvalidNameError, TanrenError
from engine.messages import Message
from engine.paths import Home


def words(messages) -> int:
    """A stand-in token count for the pure fitting logic: one token per word."""
    return sum(len(m.content.split()) for m in messages)


CONVERSATION = (
    Message("system", "be brief"),
    Message("user", "one two three"), Message("assistant", "four five"),
    Message("user", "six seven"), Message("assistant", "eight"),
    Message("user", "nine ten"),
)


def test_everything_is_kept_when_it_fits() -> None:
    fitted = fit_to_context(CONVERSATION, words, context_length=20, answer_tokens=5)
    assert fitted.messages == CONVERSATION and fitted.prompt_tokens == 12 and fitted.dropped_messages == 0


def test_oldest_turns_go_first_and_the_system_prompt_stays() -> None:
    fitted = fit_to_context(CONVERSATION, words, context_length=13, answer_tokens=5)
    assert fitted.messages == (CONVERSATION[0], *CONVERSATION[3:])
    assert fitted.prompt_tokens == 7 and fitted.dropped_messages == 2
    fitted = fit_to_context(CONVERSATION, words, context_length=9, answer_tokens=5)
    assert fitted.messages == (CONVERSATION[0], CONVERSATION[5]) and fitted.dropped_messages == 4


def test_a_latest_message_that_cannot_fit_is_an_error() -> None:
    with pytest.raises(TanrenError, match="even with only the latest message"):
        fit_to_context(CONVERSATION, words, context_length=8, answer_tokens=5)
    with pytest.raises(TanrenError, match="max_new_tokens"):
        fit_to_context(CONVERSATION, words, context_length=8, answer_tokens=8)


def test_configured_system_prompt_replaces_the_conversations() -> None:
    assert with_system_prompt(CONVERSATION, "")[0] == Message("system", "be brief")
    replaced = with_system_prompt(CONVERSATION, "丁寧に答えて")
    assert replaced[0] == Message("system", "丁寧に答えて") and replaced[1:] == CONVERSATION[1:]
    assert with_system_prompt(CONVERSATION[1:], "x")[0].role == "system"


def test_session_round_trip_with_japanese(home: Home) -> None:
    session = ChatSession(
        target="smollm2-135m-instruct", adapter="run-1", backend="transformers",
        params=GenerationConfig(temperature=0.2, seed=7, system_prompt="日本語で答えてください"),
        messages=(Message("user", "日本の首都は？"), Message("assistant", "東京です。")),
    )
    path = save_session(home, "kaiwa-1", session)
    assert path == home.chats / "kaiwa-1.jsonl"
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["type"] == "session" and [line["type"] for line in lines[1:]] == ["message", "message"]
    assert "東京です。" in path.read_text(encoding="utf-8")  # readable, not \\u-escaped
    assert load_session(home, "kaiwa-1") == session
    assert list_sessions(home) == ["kaiwa-1"]
    assert [p.name for p in home.chats.iterdir()] == ["kaiwa-1.jsonl"]  # no temp files left


def test_broken_session_files_name_the_line(home: Home) -> None:
    path = save_session(home, "s", ChatSession(target="m", messages=(Message("user", "hi"),)))
    path.write_text(path.read_text(encoding="utf-8") + '{"type": "message", "role": "robot", "content": "x"}\n',
                    encoding="utf-8")
    with pytest.raises(TanrenError) as err:
        load_session(home, "s")
    assert err.value.where == f"{path}:3" and "robot" in err.value.message
    path.write_text('{"type": "session", "params": {"temperature": -1}}\nnot json\n', encoding="utf-8")
    with pytest.raises(TanrenError, match="line 2 is not JSON"):
        load_session(home, "s")
    path.write_text('{"type": "session", "params": {"temperature": -1}}\n', encoding="utf-8")
    with pytest.raises(TanrenError, match="temperature"):
        load_session(home, "s")
    with pytest.raises(TanrenError, match="no saved chat"):
        load_session(home, "missing")
    with pytest.raises(InvalidNameError):
        session_path(home, "../escape")
