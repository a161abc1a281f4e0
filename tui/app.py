"""The workbench application: screens as modes, keys for everything, errors as notifications.

Nothing here imports torch or transformers: screens load them in workers when a task needs
them, so the first frame comes in well under a second.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import sys

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import CommandPalette
from textual.screen import Screen

from engine.errors import TanrenError
from engine.i18n import N_, Catalog
from engine.paths import Home
from engine.settings import read_settings, user_catalog, write_settings
from engine.system import SystemSample, sample_system
from tui.commands import BindingsProvider
from tui.errors import describe
from tui.i18n import translated_bindings
from tui.nav import place_bindings
from tui.screens.dashboard import DashboardScreen

DARK, LIGHT = "textual-dark", "textual-light"
RESTART = -1  # the app's return value that asks run_app to open it again (a new language)
# The commands Textual adds to the palette, by their English title and help, for the catalog.
TEXTUAL_COMMANDS = (N_("Theme"), N_("Change the current theme"), N_("Quit"),
                    N_("Quit the application as soon as possible"), N_("Keys"),
                    N_("Hide the keys and widget help panel"),
                    N_("Show help for the focused widget and a summary of available keys"), N_("Minimize"),
                    N_("Minimize the widget and restore to normal size"), N_("Maximize"),
                    N_("Maximize the focused widget"), N_("Screenshot"),
                    N_("Save an SVG 'screenshot' of the current screen"))


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
        Binding("ctrl+t", "toggle_dark", N_("Theme"), id="app.theme",
                tooltip=N_("switch between the dark and light theme")),
        Binding("q", "quit", N_("Quit"), id="app.quit", tooltip=N_("quit the workbench; runs keep going")),
        Binding("escape", "leave_field", N_("Leave field"), id="app.leave_field", show=False,
                tooltip=N_("unfocus the text field, so that single-key shortcuts work again")),
        # Textual adds this one itself when it is missing, with English text the catalog cannot reach.
        Binding("ctrl+p", "command_palette", N_("palette"), id="app.commands", show=False, priority=True,
                tooltip=N_("every action of this screen, by name")),
        Binding("f9", "switch_language", N_("Language: 日本語 / English"), id="app.language", show=False,
                tooltip=N_("switch the language and reopen the workbench (a chat starts over)")),
    ]

    def __init__(self, home: Home | None = None, *, catalog: Catalog | None = None,
                 sample_system: Callable[[Home], SystemSample] = sample_system) -> None:
        self.home = home or Home.from_env()
        self.catalog = catalog or user_catalog(self.home)
        super().__init__()
        self._bindings = translated_bindings(self._bindings, self.catalog.gettext)
        self.sample_system = sample_system
        self.theme = DARK

    def get_system_commands(self, screen: Screen):
        _ = self.catalog.gettext
        for command in super().get_system_commands(screen):
            yield SystemCommand(_(command.title), _(command.help), command.callback, command.discover)

    def action_command_palette(self) -> None:
        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(CommandPalette(id="--command-palette",
                                            placeholder=self.catalog.gettext("Search for commands…")))

    def action_switch_language(self) -> None:
        """The other language, saved in the settings file; every screen is built again in it."""
        language = "en" if self.catalog.language == "ja" else "ja"
        write_settings(self.home, read_settings(self.home).with_language(language))
        self.exit(RESTART)

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
        self.notify(describe(exc, self.home.root / "logs" / "workbench.log", self.catalog.gettext),
                    title=self.catalog.gettext("{doing} failed", doing=self.catalog.gettext(doing)),
                    severity="error", timeout=15, markup=False)


def run_app() -> int:
    try:
        while (result := TanrenApp().run()) == RESTART:
            pass
    except TanrenError as exc:  # a settings file or TANREN_LANG the workbench cannot start with
        print(exc.render(), file=sys.stderr)
        return 1
    return result or 0
