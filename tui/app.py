"""The workbench application. Screens for data, training, chat, evals and export grow here."""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from engine.models.catalog import ModelEntry, list_models
from engine.models.registry import DEFAULT_MODEL
from engine.paths import Home
from engine.textwidth import human_bytes


class TanrenApp(App[int]):
    """Dashboard of bases and runs; the default model is the one selected on start."""

    TITLE = "鍛錬 tanren"
    SUB_TITLE = f"base: {DEFAULT_MODEL}"
    CSS_PATH = "tanren.tcss"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("r", "refresh", "Refresh", id="app.refresh"),
        Binding("ctrl+t", "toggle_dark", "Theme", id="app.theme"),
    ]

    @dataclass
    class ModelsLoaded(Message):
        entries: list[ModelEntry]

    def __init__(self, home: Home | None = None):
        super().__init__()
        self.home = home or Home.from_env()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Base models", classes="section-title")
        yield DataTable(id="models", cursor_type="row", zebra_stripes=True)
        yield Static(
            "Training, chat, evals and export screens arrive with their engine parts; "
            "every one of them is also a `tanren` CLI command.",
            id="hint",
        )
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#models", DataTable)
        table.add_columns("Name", "Kind", "Size", "Ready", "Location")
        self.action_refresh()

    def action_refresh(self) -> None:
        self.load_models()

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    @work(thread=True, exclusive=True)
    def load_models(self) -> None:
        self.post_message(self.ModelsLoaded(list_models(self.home)))

    def on_tanren_app_models_loaded(self, message: ModelsLoaded) -> None:
        table = self.query_one("#models", DataTable)
        table.clear()
        for entry in message.entries:
            table.add_row(entry.name, entry.kind, human_bytes(entry.size_bytes),
                          "yes" if entry.ready else "on first use", entry.location, key=entry.name)


def run_app() -> int:
    return TanrenApp().run() or 0
