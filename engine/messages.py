"""The one conversation representation shared by data, training, chat and evals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {ROLES}")

    def as_dict(self) -> dict[str, str]:
        """The `{"role", "content"}` form that chat templates expect."""
        return {"role": self.role, "content": self.content}


def as_dicts(messages: Iterable[Message]) -> list[dict[str, str]]:
    return [m.as_dict() for m in messages]


def from_dicts(items: Iterable[Mapping[str, str]]) -> tuple[Message, ...]:
    return tuple(Message(item["role"], item["content"]) for item in items)
