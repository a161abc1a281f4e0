"""What goes wrong in an evaluation, said for the user."""

from __future__ import annotations

from engine.errors import TanrenError
from engine.i18n import N_
from engine.phrases import phrase

# Said by the CLI on Ctrl-C and by the workbench on Esc too
CANCELLED = N_("evaluation cancelled; nothing was written")


class EvalError(TanrenError):
    """An evaluation cannot run: nothing to measure, no references, an unknown target."""


class EvalCancelled(EvalError):
    """The user stopped the evaluation; nothing was written."""

    def __init__(self) -> None:
        super().__init__(phrase(CANCELLED))
