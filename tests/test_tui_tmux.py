"""A real terminal: `tanren` inside tmux, driven with send-keys and read with capture-pane."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from engine.i18n import load_catalog
from engine.paths import Home
from tests.cli import TANREN, tanren_env
from tests.data_files import write_lines

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


def _start(tmux: Tmux, home: Home, *environment: str, folder: Path | None = None) -> None:
    """`tanren` in an 80x24 tmux window, started in `folder`; `environment` adds NAME=VALUE
    settings to the session's."""
    env = tanren_env(home)
    command = f"{TANREN}; echo tanren-exit=$?; sleep 600"
    settings = [f"TANREN_HOME={env['TANREN_HOME']}", f"PYTHONPATH={env.get('PYTHONPATH', '')}", "TERM=xterm-256color",
                *environment]
    tmux("new-session", "-d", "-s", "tanren", "-x", "80", "-y", "24", "-c", str(folder or Path.cwd()),
         *[option for setting in settings for option in ("-e", setting)], command)


def test_tanren_opens_moves_through_the_screens_and_quits_cleanly(tmux: Tmux, home: Home) -> None:
    _start(tmux, home)
    tmux.wait_for("smollm2-135m-instruct", "1 Dashboard", "4 Chat", "Base models")  # a worker fills the models
    for key, expected in (("2", "sample · ja_en_chat.jsonl"), ("3", "No run yet"), ("4", "Enter sends"),
                          ("F5", "No trained run yet"), ("6", "No trained run to export"), ("F2", "Pick a file"),
                          ("1", "Base models")):
        tmux("send-keys", "-t", "tanren", key)  # F-keys switch even from the chat prompt
        tmux.wait_for(expected)
    tmux("send-keys", "-t", "tanren", "q")
    screen = tmux.wait_for("tanren-exit=")
    assert "tanren-exit=0" in screen and "Traceback" not in screen


def test_under_a_japanese_locale_the_workbench_and_its_data_errors_are_japanese(tmux: Tmux, home: Home,
                                                                                 tmp_path: Path) -> None:
    write_lines(tmp_path / "bad.jsonl", ['{"messages": [{"role": "user", "content": "x"}]}'])
    # the suite's home fixture sets TANREN_LANG=en, which the tmux server inherits: an empty value unsets it
    _start(tmux, home, "TANREN_LANG=", "LC_ALL=", "LC_MESSAGES=", "LANG=ja_JP.UTF-8", folder=tmp_path)
    screen = tmux.wait_for("1 ダッシュボード", "4 チャット", "ベースモデル", "smollm2-135m-instruct")
    assert "o 開く" in screen and "r 更新" in screen and "q 終了" in screen  # the bindings too
    assert "Dashboard" not in screen and "Base models" not in screen
    tmux("send-keys", "-t", "tanren", "2")
    tmux.wait_for("bad.jsonl")  # the files of the working folder are listed last
    tmux("send-keys", "-t", "tanren", "End", "Enter")
    error = load_catalog("ja").gettext("no assistant turn after a user turn (roles: {roles})", roles="user")
    assert not error.isascii()  # the catalog has it in Japanese
    tmux.wait_for("bad.jsonl:1", error[:12])  # the start of it: the rest may wrap at 80 columns
    tmux("send-keys", "-t", "tanren", "q")
    screen = tmux.wait_for("tanren-exit=")
    assert "tanren-exit=0" in screen and "Traceback" not in screen
