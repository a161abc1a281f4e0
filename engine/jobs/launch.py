"""Start work as a detached OS process in its own session, and ask it to stop.

The launcher takes the job's lock and hands the locked file to the child, so the job counts
as alive from the first instant and stays alive exactly as long as the child does, whatever
happens to the terminal, SSH session or TUI that started it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence

from engine.jobs.jobdir import JobDir, JobError
from engine.locking import try_lock
from engine.phrases import phrase


def launch_detached(job: JobDir, module: str, args: Sequence[str] = (), *, nproc: int = 1,
                    dist_args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> int:
    """Run `python -m module JOB_DIR args...` detached; with nproc > 1 under torchrun (DDP/FSDP).

    `env` adds variables for the child alone: a secret (a server's API key) that must not be
    written into the job's folder or shown on its command line.
    """
    held = try_lock(job.lock_file)
    if held is None:
        raise JobError(phrase("{name} is already running", name=job.name), where=str(job.path),
                       hint=phrase("follow it with `{command}`", command=job.follow_command)
                       if job.follow_command else None)
    try:
        command = [sys.executable, "-m", module, str(job.path), *args]
        if nproc > 1 or dist_args:
            command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", *dist_args,
                       "-m", module, str(job.path), *args]
        job.stop_file.unlink(missing_ok=True)
        env = {**os.environ, **(env or {}), "TANREN_HOME": str(job.home.root), "PYTHONUNBUFFERED": "1"}
        with open(job.log_file, "ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=(held.fd,), env=env, close_fds=True,
            )
        job.pid_file.write_text(f"{process.pid}\n")
        return process.pid
    finally:
        held.release()  # the child keeps the lock through its inherited descriptor


def request_stop(job: JobDir) -> bool:
    """Ask a job to stop (a stop-requested file, then SIGTERM). False if it is not running."""
    if not job.is_alive():
        return False
    job.stop_file.write_text("stop\n")
    pid = job.pid()
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return True
