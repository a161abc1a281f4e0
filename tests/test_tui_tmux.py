"""A real terminal: `tanren` inside tmux, driven with send-keys and read with capture-pane."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from engine.paths import Home
from tests.cli import TANREN, tanren_env

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (.ci/run installs it with apt-get)")


class Tmux:
    """One tmux server of our own (its own socket), so no user session is touched."""

    def __init__(self, socket: str):
        self.socket = socket

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "tanren")

    def wait_for(self, *texts: str, timeout: float = 120.0) -> str:
        """The screen once it shows every one of `texts`: a capture can catch a frame half written."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{texts!r} did not all appear within {timeout:.0f} s; the screen:\n{screen}")
            time.sleep(0.2)


@pytest.fixture
def tmux():
    server = Tmux(f"tanren-test-{os.getpid()}")
    yield server
    subprocess.run(["tmux", "-L", server.socket, "kill-server"], capture_output=True)


def test_tanren_opens_moves_through_the_screens_and_quits_cleanly(tmux: Tmux, home: Home) -> None:
    env = tanren_env(home)
    command = f"{TANREN}; echo tanren-exit=$?; sleep 600"
    tmux("new-session", "-d", "-s", "tanren", "-x", "80", "-y", "24", "-e", f"TANREN_HOME={env['TANREN_HOME']}",
         "-e", f"PYTHONPATH={env.get('PYTHONPATH', '')}", "-e", "TERM=xterm-256color", command)
    tmux.wait_for("smollm2-135m-instruct", "1 Dashboard", "4 Chat", "Base models")  # a worker fills the models
    for key, expected in (("2", "sample · ja_en_chat.jsonl"), ("3", "No run yet"), ("4", "Enter sends"),
                          ("F5", "No trained run yet"), ("6", "No trained run to export"), ("F2", "Pick a file"),
                          ("1", "Base models")):
        tmux("send-keys", "-t", "tanren", key)  # F-keys switch even from the chat prompt
        tmux.wait_for(expected)
    tmux("send-keys", "-t", "tanren", "q")
    screen = tmux.wait_for("tanren-exit=")
    assert "tanren-exit=0" in screen and "Traceback" not in screen
