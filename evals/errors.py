"""What goes wrong in an evaluation, said for the user."""

from __future__ import annotations

from engine.errors import TanrenError


class EvalError(TanrenError):
    """An evaluation cannot run: nothing to measure, no references, an unknown target."""


class EvalCancelled(EvalError):
    """The user stopped the evaluation; nothing was written."""

    def __init__(self) -> None:
        super().__init__("evaluation cancelled; nothing was written")
