"""A stand-in for a detached job's process (`python -m tests.job_worker JOB_DIR MODE`), so the
job layer is tested with real processes and no model: it records a few events, then
  done:   ends as done, and lingers a moment holding the lock, as a worker freeing a model does;
  vanish: dies without a final status, as a killed process does;
  stop:   waits for a stop request (SIGTERM), then ends as cancelled."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from engine.events import Log, Progress
from engine.jobs import JobDir
from engine.paths import Home


class FakeJob(JobDir):
    """A job of no particular kind, in <home>/jobs/<name>."""

    @property
    def home(self) -> Home:
        return Home(self.path.parent.parent)

    @property
    def crash_hint(self) -> str:
        return f"start {self.name} again"

    @property
    def follow_command(self) -> str:
        return f"follow {self.name}"


def main() -> None:
    job, mode = FakeJob(Path(sys.argv[1])), sys.argv[2]
    job.pid_file.write_text(f"{os.getpid()}\n")
    job.set_status("running", "started")
    for step in (1, 2):
        job.events.append(Progress(step, 2))
    job.events.append(Log(f"mode {mode}"))
    if mode == "vanish":
        os._exit(9)
    if mode == "stop":
        signal.signal(signal.SIGTERM, lambda *_: None)
        while not job.stop_file.exists():
            time.sleep(0.02)
        job.set_status("cancelled", "stopped on request")
    else:
        job.set_status("done", "two steps")
    time.sleep(0.5)


if __name__ == "__main__":
    main()
