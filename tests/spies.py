"""Recording what a function is called with, while it still runs."""

from __future__ import annotations

from typing import Any, Callable

import pytest


def record_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, what: Callable[..., Any]) -> list:
    """The calls of `owner.name` from now on (each still runs), each recorded as `what(*positional_args)`."""
    calls: list = []
    original = getattr(owner, name)

    def spy(*args, **kwargs):
        calls.append(what(*args))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls
