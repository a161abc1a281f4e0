"""One training example, whatever file format it came from: an SFT Example, a PreferencePair
(DPO, ORPO) or a RatedExample (KTO).

All three answer the same questions for the data doctor and the split (`contents`,
`responses`, `desired`, `prompt_key`), and the preference kinds render as Examples
(`conversations`) that score only their final answer, so one renderer serves every kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.messages import Message, as_dicts


@dataclass(frozen=True)
class Example:
    """A normalized record: a conversation, or raw text (then `messages` is empty).

    `source` is "path:line" (1-based; the row number for Parquet) so every later error can
    point back into the user's file. `last_answer_only` marks an answer of a preference record:
    only its final assistant turn is scored, the turns before it being the prompt.
    """

    messages: tuple[Message, ...]
    text: str | None
    source: str
    last_answer_only: bool = False

    @property
    def is_text(self) -> bool:
        return self.text is not None

    def responses(self) -> tuple[str, ...]:
        """What the model learns to write: the assistant turns, or the whole raw text."""
        if self.text is not None:
            return (self.text,)
        return tuple([m.content for m in self.messages if m.role == "assistant"])

    desired = responses  # every answer of an SFT example is one the model should write

    def contents(self) -> tuple[str, ...]:
        return (self.text,) if self.text is not None else tuple([m.content for m in self.messages])

    def conversations(self) -> tuple[Example, ...]:
        return (self,)

    def prompt_key(self) -> str:
        """The example's input, whitespace- and case-normalized, for leakage checks and the split.

        Everything before the last assistant turn (the raw text itself for text records), so
        two examples asking the same thing count as the same prompt even if answered differently.
        """
        if self.text is not None:
            return " ".join(self.text.split()).casefold()
        return _prompt_key(self.messages[:_last_answer(self.messages)])


def _last_answer(messages: tuple[Message, ...]) -> int:
    return max((i for i, m in enumerate(messages) if m.role == "assistant"), default=len(messages))


def _prompt_key(prompt: tuple[Message, ...]) -> str:
    return "\n".join(f"{m.role}: {' '.join(m.content.split())}" for m in prompt).casefold()


def _answered(prompt: tuple[Message, ...], answer: str, source: str) -> Example:
    return Example((*prompt, Message("assistant", answer)), None, source, last_answer_only=True)


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a better (`chosen`) and a worse (`rejected`) answer, from any pair format.

    The prompt ends with a user turn; the answers are the assistant's next turn.
    """

    prompt: tuple[Message, ...]
    chosen: str
    rejected: str
    source: str

    def chosen_example(self) -> Example:
        return _answered(self.prompt, self.chosen, self.source)

    def rejected_example(self) -> Example:
        return _answered(self.prompt, self.rejected, self.source)

    def conversations(self) -> tuple[Example, ...]:
        return (self.chosen_example(), self.rejected_example())

    def contents(self) -> tuple[str, ...]:
        return (*[m.content for m in self.prompt], self.chosen, self.rejected)

    def responses(self) -> tuple[str, ...]:
        return (self.chosen, self.rejected)

    def desired(self) -> tuple[str, ...]:
        return (self.chosen,)

    def prompt_key(self) -> str:
        return _prompt_key(self.prompt)

    def to_trl(self) -> dict[str, Any]:
        """trl's conversational preference record with an explicit prompt."""
        return {"prompt": as_dicts(self.prompt), "chosen": [{"role": "assistant", "content": self.chosen}],
                "rejected": [{"role": "assistant", "content": self.rejected}]}


@dataclass(frozen=True)
class RatedExample:
    """A prompt with one answer, rated desirable (`label` True) or not: KTO's unpaired preference."""

    prompt: tuple[Message, ...]
    completion: str
    label: bool
    source: str

    def example(self) -> Example:
        return _answered(self.prompt, self.completion, self.source)

    def conversations(self) -> tuple[Example, ...]:
        return (self.example(),)

    def contents(self) -> tuple[str, ...]:
        return (*[m.content for m in self.prompt], self.completion)

    def responses(self) -> tuple[str, ...]:
        return (self.completion,)

    def desired(self) -> tuple[str, ...]:
        return (self.completion,) if self.label else ()

    def prompt_key(self) -> str:
        return _prompt_key(self.prompt)

    def to_trl(self) -> dict[str, Any]:
        """trl's conversational unpaired preference record."""
        return {"prompt": as_dicts(self.prompt), "completion": [{"role": "assistant", "content": self.completion}],
                "label": self.label}


AnyExample = Example | PreferencePair | RatedExample
