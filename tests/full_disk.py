"""Run export code in a child Python whose files cannot grow past 64 KiB, as on a disk that fills up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXPORT_ERROR_EXIT = 3


def run_on_a_full_disk(imports: str, call: str, *, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run `call` after `imports`; an ExportError is printed (as users see it) and exits 3."""
    script = (
        "import resource, signal, sys\n"
        "from engine.errors import ExportError\n"
        f"{imports}\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"  # a refused write, not a killed process
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))\n"
        "try:\n"
        f"    {call}\n"
        "except ExportError as exc:\n"
        f"    print(exc.render()); sys.exit({EXPORT_ERROR_EXIT})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False,
                          timeout=timeout)
