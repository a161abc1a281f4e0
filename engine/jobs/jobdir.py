"""The folder of one detached job: the single source of truth about it.

The job's process writes it and every CLI or TUI instance reads it, so a closed terminal or
a second SSH session loses nothing. What the job makes (a model, GGUF files...) is the
business of the subclass that knows the job (`RunDir`, `ExportDir`).
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from engine.atomic import atomic_write_text
from engine.errors import TanrenError
from engine.events import (FINAL_STATES, EventLog, Explained, Said, Status, phrase_of, phrases_from_json,
                           phrases_to_json)
from engine.locking import file_lock
from engine.paths import Home
from engine.phrases import Phrase, phrase


class JobError(TanrenError):
    """A job cannot be found, started, stopped or removed."""


@dataclass(frozen=True)
class JobStatus(Explained):
    """The job's state now (status.json), its reason and hint in English and as the phrases they were made from."""

    state: str
    reason: str = ""
    hint: str = ""
    updated: float = 0.0
    reason_phrase: Phrase | None = None
    hint_phrase: Phrase | None = None

    @classmethod
    def said(cls, state: str, reason: Said = "", hint: Said = "", updated: float = 0.0) -> JobStatus:
        return cls(state, str(reason), str(hint), updated, phrase_of(reason), phrase_of(hint))

    @classmethod
    def from_json(cls, text: str) -> JobStatus:
        return cls(**phrases_from_json(json.loads(text), cls.phrase_fields))

    def to_json(self) -> str:
        return json.dumps(phrases_to_json(self))

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class JobDir:
    """A job's folder: events, status, lock, pid, stop request and log."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def home(self) -> Home:
        """The home folder the job belongs to; its process runs with it as TANREN_HOME."""
        raise NotImplementedError(f"{type(self).__name__} does not say where its home is")

    @property
    def crash_hint(self) -> Said:
        """What to do when the process died without recording why."""
        return ""

    @property
    def follow_command(self) -> str:
        """The command that follows this job in a terminal."""
        return ""

    @property
    def events(self) -> EventLog:
        return EventLog(self.path / "events.jsonl")

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def log_file(self) -> Path:
        return self.path / "run.log"

    @property
    def pid_file(self) -> Path:
        return self.path / "pid"

    @property
    def lock_file(self) -> Path:
        return self.path / "lock"

    @property
    def stop_file(self) -> Path:
        return self.path / "stop-requested"

    def record_crash(self, exc: BaseException) -> None:
        """An unexpected error as the failure: its first line in the status, the traceback in the log."""
        traceback.print_exc()
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        self.set_status("failed", f"{type(exc).__name__}: {first_line}",
                        phrase("the full traceback is in {path}", path=str(self.log_file)))

    def record_failure(self, exc: BaseException) -> int:
        """`exc` as the job's end, for a worker's last `except`: a TanrenError's own message and
        hint, anything else as a crash. Returns the process's exit code."""
        if isinstance(exc, TanrenError):
            self.record_error(exc)
        else:
            self.record_crash(exc)
        return 1

    def record_error(self, exc: TanrenError) -> None:
        """A TanrenError as the failure, with the phrases it was made from (shown in the reader's language)."""
        message, _where, hint = exc.phrases
        self.set_status("failed", message, hint or "")

    def set_status(self, state: str, reason: Said = "", hint: Said = "") -> None:
        """Record a lifecycle change in both status.json (current) and the events log (history)."""
        status = Status.said(state, reason, hint)
        self.events.append(status)
        atomic_write_text(self.status_file, JobStatus.said(state, reason, hint, status.time).to_json())

    def is_alive(self) -> bool:
        """True while the job's process holds its lock; the kernel frees it when the process dies."""
        if not self.lock_file.exists():
            return False
        with file_lock(self.lock_file, blocking=False) as acquired:
            return not acquired

    def wait_until_released(self, *, timeout_s: float = 120.0, poll_s: float = 0.05) -> bool:
        """Wait until the process lets go of the lock; False if it still holds it after `timeout_s`.

        A process records its final status a moment before it exits (freeing models, flushing
        logs), and the next command on the same folder needs the lock free.
        """
        deadline = time.monotonic() + timeout_s
        while self.is_alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(poll_s)
        return True

    def status(self) -> JobStatus:
        """The recorded status; a job whose process is gone without a final one counts as failed."""
        try:
            status = JobStatus.from_json(self.status_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return JobStatus.said("queued", phrase("not started yet"))
        if not status.final and not self.is_alive():
            return JobStatus.said(
                "failed", phrase("the process ended without saying why (killed, or the machine went down)"),
                self.crash_hint, status.updated)
        return status

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
