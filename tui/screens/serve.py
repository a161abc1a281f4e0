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
from textual.widgets import Footer, Log, Static
from textual.worker import get_current_worker

from engine.jobs import Follower, FollowUpdate, request_stop
from engine.presentation.event_lines import EventFormatter
from engine.serve.jobs import ServerDir
from tui.errors import reports_errors
from tui.widgets.run_view import state_text


class ServeScreen(Screen):
    CSS_PATH = "serve.tcss"
    BINDINGS = [
        Binding("x", "stop_server", "Stop serving", id="serve.stop", tooltip="stop the server; requests under way finish"),
        Binding("escape", "close", "Back", id="serve.close", tooltip="back; the server keeps serving"),
    ]

    @dataclass
    class Followed(Message):
        update: FollowUpdate

    def __init__(self, server: ServerDir) -> None:
        super().__init__()
        self.server = server
        self.formatter = EventFormatter()
        self.alive = False

    def compose(self) -> ComposeResult:
        with Vertical(id="serve-head"):
            yield Static(Text.assemble(("Serving ", "bold"), (self.server.name, "bold")), id="serve-title")
            yield Static("", id="serve-state")
            yield Static("starting…", id="serve-url")
        yield Log(max_lines=500, id="serve-log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#serve-log", Log).border_title = "requests"
        self.follow()

    @work(thread=True, exclusive=True, group="follow-server")
    @reports_errors("following the server")
    def follow(self) -> None:
        worker = get_current_worker()
        for update in Follower(self.server).watch(lambda: worker.is_cancelled):
            self.post_message(self.Followed(update))

    def on_serve_screen_followed(self, message: Followed) -> None:
        update = message.update
        lines = [line for event in update.events if (line := self.formatter.format(event))]
        if lines:
            self.query_one("#serve-log", Log).write_lines(lines)
        if update.status_changed:
            self.alive = update.alive
            self.query_one("#serve-state", Static).update(state_text(update.status))
            self.refresh_bindings()
        info = self.server.info()
        if info is not None:
            key = " (needs its API key)" if info.api_key else ""
            url = Text.assemble(("URL ", "bold"), info.url, f"{key}\n", ("models ", "bold"), ", ".join(info.models))
            self.query_one("#serve-url", Static).update(url)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return (self.alive or None) if action == "stop_server" else True

    @reports_errors("stopping the server")
    def action_stop_server(self) -> None:
        if request_stop(self.server):
            self.notify(f"stopping {self.server.name}; requests under way finish first")

    def action_close(self) -> None:
        self.dismiss()
