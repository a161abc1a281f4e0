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
from typing import ClassVar

from engine.errors import TanrenError

RUN_STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> str:
        return json.dumps({"event": self.kind, **asdict(self)}, ensure_ascii=False)


@dataclass(frozen=True)
class Status(Event):
    """A lifecycle change: queued, running, done, failed or cancelled (with the reason)."""

    kind: ClassVar[str] = "status"
    state: str
    reason: str = ""
    hint: str = ""

    def __post_init__(self) -> None:
        if self.state not in RUN_STATES:
            raise ValueError(f"unknown state {self.state!r}; expected one of {RUN_STATES}")


STAGES, PERCENT = "stages", "%"  # Progress units of exports: stages done, and how far one stage has come


@dataclass(frozen=True)
class Progress(Event):
    """How far an operation has come, in its own unit (steps, examples, bytes)."""

    kind: ClassVar[str] = "progress"
    done: int
    total: int | None = None
    unit: str = "steps"
    message: str = ""
    eta_s: float | None = None


@dataclass(frozen=True)
class Metrics(Event):
    """Named numbers at one step: loss, learning rate, tokens/s, peak memory, ..."""

    kind: ClassVar[str] = "metrics"
    step: int
    values: Mapping[str, float]


@dataclass(frozen=True)
class Log(Event):
    kind: ClassVar[str] = "log"
    message: str
    level: str = "info"


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
        return cls(**{k: v for k, v in raw.items() if k in names})
    except (ValueError, KeyError, TypeError) as exc:
        raise TanrenError(f"unreadable event line ({exc})", where=where) from exc


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
