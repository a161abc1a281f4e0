"""The first line a detached worker logs: which process runs the job, and on which Python."""

from __future__ import annotations

import os
import sys

from engine.events import Log
from engine.phrases import phrase


def process_line() -> Log:
    return Log.said(phrase("process {pid}, Python {version}", pid=os.getpid(), version=sys.version.split()[0]))
