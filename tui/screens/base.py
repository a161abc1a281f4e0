"""What every workbench screen shares: the navigation bar on top and the footer of keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from engine.paths import Home
from tui.i18n import Localized
from tui.nav import NavBar

if TYPE_CHECKING:
    from tui.app import TanrenApp


class TanrenScreen(Localized, Screen):
    MODE: ClassVar[str]

    @property
    def tanren(self) -> TanrenApp:
        return cast("TanrenApp", self.app)

    @property
    def home(self) -> Home:
        return self.tanren.home

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError
