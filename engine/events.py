"""The one progress-event protocol: frozen dataclasses written as JSON lines.

Every long operation (training, export, evaluation) appends events to an `events.jsonl`
file in its run folder; the CLI and the TUI both read the same file, so neither needs the
process that wrote it to still be attached.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from engine.errors import TanrenError
from engine.phrases import Phrase, Translate, phrase

RUN_STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")

Said = str | Phrase  # text for people: a Phrase when it can be shown in their language


def phrase_of(text: Said) -> Phrase | None:
    return text if isinstance(text, Phrase) else None


def shown(text: str, said: Phrase | None, gettext: Translate) -> str:
    """Recorded text in gettext's language: its phrase translated, else the English as it is
    (a library's message, or a file written before events carried phrases)."""
    return said.translate(gettext) if said is not None else text


def phrase_to_json(said: Phrase) -> dict[str, Any]:
    """A Phrase as JSON: its message id and its values (a Phrase nested; what JSON cannot hold, as text)."""
    return {"msgid": said.msgid, "values": {name: _value_to_json(value) for name, value in said.values}}


def _value_to_json(value: object) -> object:
    if isinstance(value, Phrase):
        return phrase_to_json(value)
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def phrase_from_json(raw: Mapping[str, Any]) -> Phrase:
    values = raw.get("values", {})
    return phrase(raw["msgid"], **{name: phrase_from_json(value) if isinstance(value, Mapping) else value
                                   for name, value in values.items()})


def phrases_to_json(record: Any) -> dict[str, Any]:
    """A dataclass (an event, a job's status) as JSON-ready fields: its `phrase_fields` as message ids
    and values, those without a phrase left out (files stay as before)."""
    names = record.phrase_fields
    out = {name: value for name, value in asdict(record).items() if name not in names}
    out.update({name: phrase_to_json(getattr(record, name)) for name in names if getattr(record, name) is not None})
    return out


def phrases_from_json(raw: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: phrase_from_json(value) if name in names and value is not None else value
            for name, value in raw.items()}


class Explained:
    """A status as people read it: its reason and hint in their language (Status, a job's status)."""

    phrase_fields: ClassVar[tuple[str, ...]] = ("reason_phrase", "hint_phrase")
    reason: str
    hint: str
    reason_phrase: Phrase | None
    hint_phrase: Phrase | None

    def shown_reason(self, gettext: Translate) -> str:
        return shown(self.reason, self.reason_phrase, gettext)

    def shown_hint(self, gettext: Translate) -> str:
        return shown(self.hint, self.hint_phrase, gettext)


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    # fields holding the Phrase a text was made from: events.jsonl keeps the English for scripts,
    # and the message id with its values so that a reader can show it in the user's language
    phrase_fields: ClassVar[tuple[str, ...]] = ()
    time: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> str:
        return json.dumps({"event": self.kind, **phrases_to_json(self)}, ensure_ascii=False)


@dataclass(frozen=True)
class Status(Explained, Event):
    """A lifecycle change: queued, running, done, failed or cancelled (with the reason)."""

    kind: ClassVar[str] = "status"  # its phrase fields are Explained's
    state: str
    reason: str = ""
    hint: str = ""
    reason_phrase: Phrase | None = None
    hint_phrase: Phrase | None = None

    def __post_init__(self) -> None:
        if self.state not in RUN_STATES:
            raise ValueError(f"unknown state {self.state!r}; expected one of {RUN_STATES}")

    @classmethod
    def said(cls, state: str, reason: Said = "", hint: Said = "", **kw: Any) -> Status:
        """The status with its reason and hint in English and, for those that are Phrases, their phrases."""
        return cls(state, str(reason), str(hint), phrase_of(reason), phrase_of(hint), **kw)


STAGES, PERCENT = "stages", "%"  # Progress units of exports: stages done, and how far one stage has come


@dataclass(frozen=True)
class Progress(Event):
    """How far an operation has come, in its own unit (steps, examples, bytes)."""

    kind: ClassVar[str] = "progress"
    phrase_fields: ClassVar[tuple[str, ...]] = ("phrase",)
    done: int
    total: int | None = None
    unit: str = "steps"
    message: str = ""
    eta_s: float | None = None
    phrase: Phrase | None = None  # what `message` says, for people

    @classmethod
    def said(cls, done: int, total: int | None, unit: str, message: Said, **kw: Any) -> Progress:
        return cls(done, total, unit, str(message), phrase=phrase_of(message), **kw)

    def shown(self, gettext: Translate) -> str:
        return shown(self.message, self.phrase, gettext)


@dataclass(frozen=True)
class Metrics(Event):
    """Named numbers at one step: loss, learning rate, tokens/s, peak memory, ..."""

    kind: ClassVar[str] = "metrics"
    step: int
    values: Mapping[str, float]


@dataclass(frozen=True)
class Log(Event):
    kind: ClassVar[str] = "log"
    phrase_fields: ClassVar[tuple[str, ...]] = ("phrase",)
    message: str
    level: str = "info"
    phrase: Phrase | None = None

    @classmethod
    def said(cls, message: Said, level: str = "info", **kw: Any) -> Log:
        return cls(str(message), level, phrase_of(message), **kw)

    def shown(self, gettext: Translate) -> str:
        return shown(self.message, self.phrase, gettext)


@dataclass(frozen=True)
class Artifact(Event):
    """A finished output file or folder, written atomically before this event."""

    kind: ClassVar[str] = "artifact"
    path: str
    role: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class HttpRequest(Event):
    """One request a server answered or refused: for which model, how many tokens, how long."""

    kind: ClassVar[str] = "request"
    method: str
    path: str
    status: int
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None  # stop, length; None: the client left before the end
    error: str = ""
    queue_s: float = 0.0  # waiting for its batch
    batch_size: int = 0  # answers decoded together with it (itself included)
    tokens_per_s: float = 0.0  # its own decoding speed after the first token


EVENT_TYPES: Mapping[str, type[Event]] = {
    cls.kind: cls for cls in (Status, Progress, Metrics, Log, Artifact, HttpRequest)
}


def parse_event(line: str, *, where: str = "<events>") -> Event:
    try:
        raw = json.loads(line)
        cls = EVENT_TYPES[raw.pop("event")]
        names = {f.name for f in fields(cls)}
        return cls(**phrases_from_json({k: v for k, v in raw.items() if k in names}, cls.phrase_fields))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TanrenError(phrase("unreadable event line ({error})", error=str(exc)), where=where) from exc


class EventLog:
    """Append-only JSON-lines file; one line per event, flushed as it is written."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, event: Event) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One write() of a whole line in append mode, so concurrent readers never see half
        # an event, and a crash loses at most the line being written.
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(event.to_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[Event]:
        return self.read_from(0)[0]

    def read_from(self, offset: int) -> tuple[list[Event], int]:
        """The complete events after byte `offset`, and the offset after the last of them.

        A line still being written is left for the next call, so a follower (engine.jobs)
        never sees half an event.
        """
        if not self.path.exists():
            return [], offset
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        complete, _, _partial = chunk.rpartition(b"\n")
        if not complete and not chunk.endswith(b"\n"):
            return [], offset
        events = [
            parse_event(line.decode("utf-8"), where=f"{self.path}")
            for line in complete.split(b"\n")
            if line.strip()
        ]
        return events, offset + len(complete) + 1

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0
