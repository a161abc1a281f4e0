"""Messages kept in their source language until they are shown.

The engine raises its errors where no catalog is held (a data reader, a config check); the CLI
and the workbench, which hold one, translate them when they show them. A Phrase is the message
id and its values, marked for Babel by `phrase(...)`; `str()` gives the English text, which is
what logs, status files and `--json` keep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce

Translate = Callable[[str], str]  # gettext: a message id to the text of the language shown


@dataclass(frozen=True)
class Phrase:
    msgid: str
    values: tuple[tuple[str, object], ...] = ()

    def __str__(self) -> str:
        return self.translate(str)

    def translate(self, gettext: Translate) -> str:
        """The message in gettext's language, values that are Phrases translated too."""
        values = {name: value.translate(gettext) if isinstance(value, Phrase) else value
                  for name, value in self.values}
        text = gettext(self.msgid)
        return text.format(**values) if values else text


def phrase(msgid: str, **values: object) -> Phrase:
    """A message to translate where it is shown: `phrase("no file {path}", path=path)`."""
    # an exception is kept as its text: the phrase outlives it in errors, events and statuses,
    # and its traceback's frames must not
    return Phrase(msgid, tuple((name, str(value) if isinstance(value, BaseException) else value)
                               for name, value in values.items()))


def joined(parts: Sequence[Phrase | str], msgid: str) -> Phrase | str:
    """Several phrases said as one, each still translated on its own; `msgid` joins two of them
    (`N_("{first}; {second}")`: "a; b; c" in English)."""
    return reduce(lambda first, second: phrase(msgid, first=first, second=second), parts)


def in_language(message: str | Phrase | None, gettext: Translate) -> str | None:
    """A Phrase translated; a plain string (a path, a library's own message) as it is."""
    return message.translate(gettext) if isinstance(message, Phrase) else message
