"""Follow a run's or an export's events in a terminal, for every command that offers --follow."""

from __future__ import annotations

import sys

from engine.events import FINAL_STATES, Status
from engine.runs.rundir import RunDir
from engine.runs.summary import EventFormatter

EXIT_CODES = {"done": 0, "failed": 1, "cancelled": 130}


def follow(run: RunDir, *, offset: int = 0, again: str | None = None) -> int:
    """Print the run's events as they come; the exit code is the run's outcome.

    It returns only once the process has let go of the run's lock, so that a command right
    after it (`tanren export`, `tanren resume`) never finds the run still running.
    `again` is the command that follows it again, shown when the user stops following.
    """
    formatter = EventFormatter()
    last_state = None
    try:
        for event in run.events.follow(offset=offset, stop=lambda: not run.is_alive()):
            line = formatter.format(event)
            if line:
                print(line, flush=True)
            if isinstance(event, Status):
                last_state = event.state
        released = run.wait_until_released()
    except KeyboardInterrupt:
        print(f"\nstopped following; {run.name} keeps running. Follow again: {again or f'tanren logs {run.name} -f'}",
              file=sys.stderr)
        return 0
    if not released:
        print(f"{run.name} recorded its end but its process (pid {run.pid()}) has not exited yet", file=sys.stderr)
    state = last_state if last_state in FINAL_STATES else run.status().state
    return EXIT_CODES.get(state, 1)
