"""Compare mode: one conversation, two targets, the same seed - and where the answers part."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.chat.backend import ChatTarget, GenerationStats
from engine.chat.sampling import fresh_seed
from engine.config import GenerationConfig
from engine.messages import Message


@dataclass(frozen=True)
class Answer:
    label: str
    text: str
    stats: GenerationStats


@dataclass(frozen=True)
class Comparison:
    first: Answer
    second: Answer
    seed: int

    @property
    def parted_at(self) -> int | None:
        """Characters the answers share from the start, or None when they are identical."""
        a, b = self.first.text, self.second.text
        return None if a == b else len(os.path.commonprefix([a, b]))

    def describe(self, *, context: int = 30) -> str:
        at = self.parted_at
        if at is None:
            return f"identical answers (seed {self.seed})"
        shared = self.first.text[:at]
        lines = [f"the answers part after {at} characters (seed {self.seed})"]
        if shared:
            lines.append(f"  shared: ...{shared[-context:]!r}" if len(shared) > context else f"  shared: {shared!r}")
        for answer in (self.first, self.second):
            rest = answer.text[at:at + context] or "(ends here)"
            lines.append(f"  {answer.label}: {rest!r}")
        return "\n".join(lines)


def compare(first: ChatTarget, second: ChatTarget, messages: Sequence[Message], params: GenerationConfig,
            *, cancel: threading.Event | None = None,
            on_delta: Callable[[str, str], None] = lambda _label, _text: None) -> Comparison:
    """Answer with both targets in turn, with one seed (chosen now if `params` has none)."""
    seed = params.seed if params.seed is not None else fresh_seed()
    params = dataclasses.replace(params, seed=seed)
    answers = []
    for target in (first, second):
        pieces = []
        for delta in target.stream_chat(messages, params, cancel):
            pieces.append(delta)
            on_delta(target.label, delta)
        answers.append(Answer(target.label, "".join(pieces), target.last_stats))
    return Comparison(answers[0], answers[1], seed)
