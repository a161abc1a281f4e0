"""Start work as a detached OS process in its own session, and ask it to stop.

The launcher takes the run's lock and hands the locked file to the child, so the run counts
as alive from the first instant and stays alive exactly as long as the child does, whatever
happens to the terminal, SSH session or TUI that started it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from engine.locking import try_lock
from engine.runs.rundir import RunDir, RunError


def launch_detached(run: RunDir, module: str, args: Sequence[str] = (), *, nproc: int = 1,
                    dist_args: Sequence[str] = ()) -> int:
    """Run `python -m module RUN_DIR args...` detached; with nproc > 1 under torchrun (DDP/FSDP)."""
    held = try_lock(run.lock_file)
    if held is None:
        raise RunError(f"{run.name} is already running", where=str(run.path),
                       hint=f"follow it with `tanren logs {run.name} -f`")
    try:
        command = [sys.executable, "-m", module, str(run.path), *args]
        if nproc > 1 or dist_args:
            command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", *dist_args,
                       "-m", module, str(run.path), *args]
        run.stop_file.unlink(missing_ok=True)
        env = {**os.environ, "TANREN_HOME": str(run.home.root), "PYTHONUNBUFFERED": "1"}
        with open(run.log_file, "ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=(held.fd,), env=env, close_fds=True,
            )
        run.pid_file.write_text(f"{process.pid}\n")
        return process.pid
    finally:
        held.release()  # the child keeps the lock through its inherited descriptor


def request_stop(run: RunDir) -> bool:
    """Ask a run to stop at its next step (saving a checkpoint). False if it is not running."""
    if not run.is_alive():
        return False
    run.stop_file.write_text("stop\n")
    pid = run.pid()
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return True
