"""One training example, whatever file format it came from."""

from __future__ import annotations

from dataclasses import dataclass

from engine.messages import Message


@dataclass(frozen=True)
class Example:
    """A normalized record: a conversation, or raw text (then `messages` is empty).

    `source` is "path:line" (1-based; the row number for Parquet) so every later error can
    point back into the user's file.
    """

    messages: tuple[Message, ...]
    text: str | None
    source: str

    @property
    def is_text(self) -> bool:
        return self.text is not None

    def responses(self) -> tuple[str, ...]:
        """What the model learns to write: the assistant turns, or the whole raw text."""
        if self.text is not None:
            return (self.text,)
        return tuple([m.content for m in self.messages if m.role == "assistant"])

    def contents(self) -> tuple[str, ...]:
        return (self.text,) if self.text is not None else tuple([m.content for m in self.messages])

    def prompt_key(self) -> str:
        """The example's input, whitespace- and case-normalized, for leakage checks and the split.

        Everything before the last assistant turn (the raw text itself for text records), so
        two examples asking the same thing count as the same prompt even if answered differently.
        """
        if self.text is not None:
            return " ".join(self.text.split()).casefold()
        last = max((i for i, m in enumerate(self.messages) if m.role == "assistant"), default=len(self.messages))
        return "\n".join(f"{m.role}: {' '.join(m.content.split())}" for m in self.messages[:last]).casefold()
