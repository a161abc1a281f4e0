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
from engine.i18n import Gettext
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

    def describe(self, _: Gettext, *, context: int = 30) -> str:
        """Where the answers part, and the text around it (quoted: it is the answers' own)."""
        at = self.parted_at
        if at is None:
            return _("identical answers (seed {seed})", seed=self.seed)
        shared = self.first.text[:at]
        lines = [_("the answers part after {count} characters (seed {seed})", count=at, seed=self.seed)]
        if shared:
            text = f"...{shared[-context:]!r}" if len(shared) > context else repr(shared)
            lines.append("  " + _("shared: {text}", text=text))
        for answer in (self.first, self.second):
            rest = answer.text[at:at + context]
            lines.append(f"  {answer.label}: " + (repr(rest) if rest else _("(ends here)")))
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
