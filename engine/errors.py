"""Errors that reach the user as one clear screen, never as a traceback."""

from __future__ import annotations

from engine.phrases import Phrase, Translate, in_language, phrase


class TanrenError(Exception):
    """An error whose message is written for the user.

    `where` names the file, line or field at fault; `hint` says what to do about it. Each is a
    Phrase, translated when the error is shown, or a plain string shown as it is (a path, a
    library's own message). `message`, `where` and `hint` are the English texts.
    """

    def __init__(self, message: str | Phrase, *, where: str | Phrase | None = None, hint: str | Phrase | None = None):
        super().__init__(str(message))
        self.phrases = (message, where, hint)
        self.message = str(message)
        self.where = str(where) if where is not None else None
        self.hint = str(hint) if hint is not None else None

    def render(self, gettext: Translate = str) -> str:
        """The error on one screen, in gettext's language (English without one)."""
        message, where, hint = (in_language(part, gettext) for part in self.phrases)
        lines = [phrase("error: {message}", message=message).translate(gettext)]
        if where:
            lines.append("  " + phrase("at: {where}", where=where).translate(gettext))
        if hint:
            lines.append("  " + phrase("hint: {hint}", hint=hint).translate(gettext))
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
