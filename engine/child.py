"""What a failed child process said, short enough for a one-screen error."""

from __future__ import annotations

import subprocess

from engine.phrases import Phrase, phrase

_LOG_LINES_IN_ERROR = 5


def failure_summary(result: subprocess.CompletedProcess) -> str | Phrase:
    """The last few non-blank lines it wrote (stderr, then stdout, as they are), or its exit status."""
    log = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return " / ".join(log[-_LOG_LINES_IN_ERROR:]) or phrase("exit status {code}", code=result.returncode)
