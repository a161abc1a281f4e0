"""Run the installed `tanren` command as a user would, against a given home folder, and wait for
what the detached processes it starts do."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from engine.paths import Home

TANREN = Path(sys.executable).with_name("tanren")


def tanren_env(home: Home) -> dict[str, str]:
    return {**os.environ, "TANREN_HOME": str(home.root)}


def tanren(*args: str, home: Home, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TANREN), *args], capture_output=True, text=True, env=tanren_env(home),
                          timeout=timeout)


def wait_for(condition: Callable[[], object], *, what: str, timeout: float = 300.0, interval: float = 0.1) -> None:
    """Poll `condition` until it holds; a detached run or export works at its own pace."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
