"""Errors reach the user as notifications, never as a traceback that ends the workbench.

A TanrenError is already written for the user; anything else is a bug or an environment
problem, so its traceback goes to a log file the notification names.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from engine.errors import TanrenError
from tui.i18n import Gettext

F = TypeVar("F", bound=Callable[..., Any])


def describe(exc: BaseException, log_file: Path, _: Gettext) -> str:
    """A TanrenError in the workbench's language; anything else in one line, with where its
    traceback went."""
    if isinstance(exc, TanrenError):
        return exc.render(_)
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            log.write("".join(traceback.format_exception(exc)))
        where = _("details in {log}", log=log_file)
    except OSError as log_error:
        where = _("the log {log} cannot be written either: {why}", log=log_file, why=log_error.strerror)
    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
    message = f"{type(exc).__name__}: {first_line}"
    return _("error: {message}", message=message) + f"\n  {where}"


def reports_errors(doing: str) -> Callable[[F], F]:
    """For methods of widgets and screens (also in worker threads): an exception becomes a
    notification titled `doing` instead of ending the app."""
    def decorate(method: F) -> F:
        @functools.wraps(method)
        def guarded(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the boundary where every error becomes a message
                self.app.report_error(exc, doing)
                return None
        return guarded  # type: ignore[return-value]
    return decorate
