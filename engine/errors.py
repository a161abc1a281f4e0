"""Errors that reach the user as one clear screen, never as a traceback."""

from __future__ import annotations


class TanrenError(Exception):
    """An error whose message is written for the user.

    `where` names the file, line or field at fault; `hint` says what to do about it.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def render(self) -> str:
        lines = [f"error: {self.message}"]
        if self.where:
            lines.append(f"  at: {self.where}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class ConfigError(TanrenError):
    """A configuration value, file or override is invalid."""


class ModelNotFoundError(TanrenError):
    """A base model name, folder, file or hub id cannot be resolved locally."""


class UnsafeModelError(TanrenError):
    """Loading the model would run untrusted code or unpickle untrusted weights."""


class InvalidNameError(TanrenError):
    """A run or model name could escape the home folder or is otherwise unusable."""


class ExportError(TanrenError):
    """A model or adapter cannot be exported (bad input, unsupported model, or a write that failed)."""


class DataError(TanrenError):
    """A data file cannot be read, or one of its records is malformed."""
