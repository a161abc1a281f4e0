"""Run the installed `tanren` command as a user would, against a given home folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.paths import Home

TANREN = Path(sys.executable).with_name("tanren")


def tanren_env(home: Home) -> dict[str, str]:
    return {**os.environ, "TANREN_HOME": str(home.root)}


def tanren(*args: str, home: Home, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TANREN), *args], capture_output=True, text=True, env=tanren_env(home),
                          timeout=timeout)
