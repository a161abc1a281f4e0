"""Serve: one server's URL, what it serves and its live request log; x stops it.

Pushed by the Train screen (a run) and the Export screen (an export's model). The server is a
detached job: closing this screen, or the workbench, leaves it serving.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from engine.i18n import N_
from engine.jobs import Follower, FollowUpdate, request_stop
from engine.presentation.event_lines import EventFormatter
from engine.serve.jobs import ServerDir
from tui.errors import reports_errors
from tui.i18n import Localized
from tui.widgets.log_lines import LogLines
from tui.widgets.run_view import state_text


class ServeScreen(Localized, Screen):
    CSS_PATH = "serve.tcss"
    BINDINGS = [
        Binding("x", "stop_server", N_("Stop serving"), id="serve.stop",
                tooltip=N_("stop the server; requests under way finish")),
        Binding("escape", "close", N_("Back"), id="serve.close", tooltip=N_("back; the server keeps serving")),
    ]

    @dataclass
    class Followed(Message):
        update: FollowUpdate

    def __init__(self, server: ServerDir) -> None:
        super().__init__()
        self.server = server
        self.formatter = EventFormatter(self._)
        self.alive = False

    def compose(self) -> ComposeResult:
        with Vertical(id="serve-head"):
            yield Static(Text(self._("Serving {name}", name=self.server.name), style="bold"), id="serve-title")
            yield Static("", id="serve-state")
            yield Static(self._("starting…"), id="serve-url")
        yield LogLines(id="serve-log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#serve-log", LogLines).border_title = self._("requests")
        self.follow()

    @work(thread=True, exclusive=True, group="follow-server")
    @reports_errors(N_("following the server"))
    def follow(self) -> None:
        worker = get_current_worker()
        for update in Follower(self.server).watch(lambda: worker.is_cancelled):
            self.post_message(self.Followed(update))

    def on_serve_screen_followed(self, message: Followed) -> None:
        update = message.update
        lines = [line for event in update.events if (line := self.formatter.format(event))]
        if lines:
            self.query_one("#serve-log", LogLines).write_lines(lines)
        if update.status_changed:
            self.alive = update.alive
            self.query_one("#serve-state", Static).update(state_text(update.status, self._))
            self.refresh_bindings()
        info = self.server.info()
        if info is not None:
            key = self._(" (needs its API key)") if info.api_key else ""
            url = Text.assemble(("URL ", "bold"), info.url, f"{key}\n", (self._("models") + " ", "bold"),
                                ", ".join(info.models))
            self.query_one("#serve-url", Static).update(url)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return (self.alive or None) if action == "stop_server" else True

    @reports_errors(N_("stopping the server"))
    def action_stop_server(self) -> None:
        if request_stop(self.server):
            self.notify(self._("stopping {name}; requests under way finish first", name=self.server.name))

    def action_close(self) -> None:
        self.dismiss()
