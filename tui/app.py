"""The workbench application: screens as modes, keys for everything, errors as notifications.

Nothing here imports torch or transformers: screens load them in workers when a task needs
them, so the first frame comes in well under a second.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from engine.paths import Home
from engine.system import SystemSample, sample_system
from tui.commands import BindingsProvider
from tui.errors import describe
from tui.nav import place_bindings
from tui.screens.dashboard import DashboardScreen

DARK, LIGHT = "textual-dark", "textual-light"


def later(module: str, name: str) -> Callable[[], Screen]:
    """A screen whose module is imported when the screen is first shown, not at start-up."""
    return lambda: getattr(importlib.import_module(f"tui.screens.{module}"), name)()


class TanrenApp(App[int]):
    TITLE = "鍛錬 tanren"
    CSS_PATH = "tanren.tcss"
    MODES = {"dashboard": DashboardScreen, "data": later("data", "DataScreen"),
             "train": later("train", "TrainScreen"), "chat": later("chat", "ChatScreen"),
             "evals": later("evals", "EvalsScreen"), "export": later("export", "ExportScreen")}
    COMMANDS = App.COMMANDS | {BindingsProvider}
    BINDINGS = [
        *place_bindings(),
        Binding("ctrl+t", "toggle_dark", "Theme", id="app.theme", tooltip="switch between the dark and light theme"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="quit the workbench; runs keep going"),
        Binding("escape", "leave_field", "Leave field", id="app.leave_field", show=False,
                tooltip="unfocus the text field, so that single-key shortcuts work again"),
    ]

    def __init__(self, home: Home | None = None, *,
                 sample_system: Callable[[Home], SystemSample] = sample_system) -> None:
        super().__init__()
        self.home = home or Home.from_env()
        self.sample_system = sample_system
        self.theme = DARK

    def on_mount(self) -> None:
        self.switch_mode("dashboard")

    def action_leave_field(self) -> None:
        self.screen.set_focus(None)

    def action_toggle_dark(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK

    async def open_run(self, name: str) -> None:
        """Show a run's live view on the Train screen."""
        await self.switch_mode("train")
        self.screen.show_run(name)

    async def new_run(self, *, data: str | None = None, base: str | None = None) -> None:
        """Open the new-run form on the Train screen, with a data file and base filled in."""
        await self.switch_mode("train")
        self.screen.action_new_run(data, base)

    def report_error(self, exc: BaseException, doing: str) -> None:
        """Show an error as a notification; safe to call from worker threads."""
        self.notify(describe(exc, self.home.root / "logs" / "workbench.log"), title=f"{doing} failed",
                    severity="error", timeout=15, markup=False)


def run_app() -> int:
    return TanrenApp().run() or 0
