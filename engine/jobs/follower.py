"""Following a job through its events file: the one reader behind `tanren logs -f`, every
`--follow`, the workbench's live views and its dashboard.

A follower starts at a byte offset of the events file (0: the whole history, so attaching -
or reattaching after the workbench was closed - shows everything) and then reads only what
was appended, never half a line. It knows when the job has ended: its newest status event is
final, or its process let go of the job's lock without writing one (then the job's status
says it failed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from engine.events import FINAL_STATES, Event, Status
from engine.jobs.jobdir import JobDir, JobStatus

POLL_S = 0.2


@dataclass(frozen=True)
class FollowUpdate:
    """One poll: the events appended since the last, and the job's status as of now."""

    events: list[Event]
    status: JobStatus
    alive: bool  # a job records its final state a moment before its process has ended
    status_changed: bool  # (status, alive) differs from the previous poll's (always true at the first)


class Follower:
    """Reads one job's events incrementally; a blocking iterator for a terminal, `poll()` and
    `watch()` for a worker thread or a periodic refresh."""

    def __init__(self, job: JobDir, *, offset: int = 0, poll_s: float = POLL_S):
        self.job = job
        self.offset = offset  # the byte in the events file after the last complete event read
        self.poll_s = poll_s
        self.last_state: str | None = None  # the newest status event read
        self._seen: tuple[JobStatus, bool] | None = None

    def read(self) -> list[Event]:
        """The complete events appended since the last read; a line still being written waits."""
        if self.job.events.size() <= self.offset:
            return []
        events, self.offset = self.job.events.read_from(self.offset)
        for event in events:
            if isinstance(event, Status):
                self.last_state = event.state
        return events

    @property
    def ended(self) -> bool:
        """The newest status event read is final (a resumed job's later `running` outweighs an earlier end)."""
        return self.last_state in FINAL_STATES

    def poll(self) -> FollowUpdate:
        """One step that never waits: what was appended, and the job's status and liveness now."""
        events = self.read()
        seen = (self.job.status(), self.job.is_alive())
        changed, self._seen = seen != self._seen, seen
        return FollowUpdate(events, *seen, status_changed=changed)

    def watch(self, cancelled: Callable[[], bool]) -> Iterator[FollowUpdate]:
        """Every poll that brought new events or a new status, until `cancelled()` holds.

        It does not stop when the job ends, since a job can be started again in the same
        folder (a resumed training run); a worker thread passes its own cancellation.
        """
        while not cancelled():
            update = self.poll()
            if update.events or update.status_changed:
                yield update
            time.sleep(self.poll_s)

    def __iter__(self) -> Iterator[Event]:
        """Every event as it is appended, until the job has ended: a final status was read, or
        the process let go of its lock (after one last read, so nothing it wrote is missed)."""
        while True:
            gone = not self.job.is_alive()
            yield from self.read()
            if self.ended or gone:
                return
            time.sleep(self.poll_s)

    def wait_until_released(self, *, timeout_s: float = 120.0) -> bool:
        """After the end: wait for the process to exit, so the next command finds the folder free."""
        return self.job.wait_until_released(timeout_s=timeout_s)

    def final_state(self) -> str:
        """How the job ended: the final status event read, else its status now (`failed` for a
        process that died without writing one)."""
        return self.last_state if self.ended and self.last_state else self.job.status().state
