"""What part of a conversation is sent to the model: system prompt first, then as many of the
latest turns as fit in the context window next to the answer's tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.errors import TanrenError
from engine.messages import Message
from engine.phrases import phrase


@dataclass(frozen=True)
class FittedConversation:
    messages: tuple[Message, ...]
    prompt_tokens: int
    dropped_messages: int  # oldest messages left out to fit the window


def with_system_prompt(history: Sequence[Message], system_prompt: str) -> tuple[Message, ...]:
    """The conversation as sent: a configured system prompt replaces any system message in it."""
    if not system_prompt:
        return tuple(history)
    return (Message("system", system_prompt), *(m for m in history if m.role != "system"))


def fit_to_context(messages: Sequence[Message], count_tokens: Callable[[Sequence[Message]], int],
                   *, context_length: int, answer_tokens: int) -> FittedConversation:
    """Drop the oldest turns (a user message and the replies after it) until the prompt fits.

    The system message is always kept; the latest turn is never dropped, so a message that
    cannot fit on its own is an error rather than a silently empty prompt.
    """
    budget = context_length - answer_tokens
    if budget <= 0:
        raise TanrenError(
            phrase("max_new_tokens ({tokens}) leaves no room for the prompt in the {context}-token context window",
                   tokens=answer_tokens, context=context_length),
            where="generation.max_new_tokens", hint=phrase("use fewer than {limit}", limit=context_length // 2),
        )
    system = tuple(messages[:1]) if messages and messages[0].role == "system" else ()
    turns = _turns(messages[len(system):])
    while True:
        kept = system + tuple(m for turn in turns for m in turn)
        tokens = count_tokens(kept)
        if tokens <= budget:
            return FittedConversation(kept, tokens, len(messages) - len(kept))
        if len(turns) <= 1:
            raise TanrenError(
                phrase("the prompt needs {tokens} tokens even with only the latest message, but {budget} fit "
                       "(a {context}-token window minus {answer} for the answer)",
                       tokens=tokens, budget=budget, context=context_length, answer=answer_tokens),
                hint=phrase("shorten the message or the system prompt, or lower max_new_tokens"),
            )
        turns = turns[1:]


def _turns(messages: Sequence[Message]) -> list[tuple[Message, ...]]:
    turns: list[list[Message]] = []
    for message in messages:
        if message.role == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    return [tuple(turn) for turn in turns]
