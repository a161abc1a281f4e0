"""Following a run folder (a training run or an export) from a worker thread.

The follower reads the events file from its start, so attaching - or reattaching after the
workbench was closed - shows the whole history; then it reads only what is appended. It also
polls the status, which notices a process that died without writing a last event.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.worker import get_current_worker

from engine.events import Event
from engine.runs.rundir import RunDir, RunStatus

POLL_S = 0.25
STATUS_EVERY_S = 1.0


def follow_folder(run: RunDir, on_events: Callable[[list[Event]], None],
                  on_status: Callable[[RunStatus, bool], None]) -> None:
    """Until the worker is cancelled: new events to `on_events`, and (status, alive) to `on_status`
    whenever either changes. Both are called from this thread; they post messages."""
    worker = get_current_worker()
    offset, last_status, checked = 0, None, 0.0
    while not worker.is_cancelled:
        if run.events.size() > offset:
            events, offset = run.events.read_from(offset)
            if events:
                on_events(events)
        if time.monotonic() - checked >= STATUS_EVERY_S:
            checked = time.monotonic()
            status = (run.status(), run.is_alive())
            if status != last_status:
                last_status = status
                on_status(*status)
        time.sleep(POLL_S)
