"""A job's events in a terminal: `tanren logs`, `tanren exports RUN NAME`, and every --follow."""

from __future__ import annotations

import sys

from engine.i18n import Gettext
from engine.jobs.follower import Follower
from engine.jobs.jobdir import JobDir
from engine.presentation.event_lines import EventFormatter

EXIT_CODES = {"done": 0, "failed": 1, "cancelled": 130}


def print_events(job: JobDir, _: Gettext) -> None:
    """The job's history so far, one readable line per event that has one."""
    formatter = EventFormatter(_)
    for event in job.events.read():
        if line := formatter.format(event):
            print(line)


def follow(job: JobDir, _: Gettext, *, offset: int = 0) -> int:
    """Print the job's events as they come; the exit code is the job's outcome.

    It returns only once the process has let go of the job's lock, so that a command right
    after it (`tanren export`, `tanren resume`) never finds the job still running.
    """
    formatter, follower = EventFormatter(_), Follower(job, offset=offset)
    try:
        for event in follower:
            if line := formatter.format(event):
                print(line, flush=True)
        released = follower.wait_until_released()
    except KeyboardInterrupt:
        print("\n" + _("stopped following; {name} keeps running. Follow again: {command}", name=job.name,
                       command=job.follow_command), file=sys.stderr)
        return 0
    if not released:
        print(_("{name} recorded its end but its process (pid {pid}) has not exited yet", name=job.name,
                pid=job.pid()), file=sys.stderr)
    return EXIT_CODES.get(follower.final_state(), 1)
