"""The workbench's screens, their keys, and the bar at the top that shows them."""

from __future__ import annotations

from typing import NamedTuple

from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget


class Place(NamedTuple):
    mode: str
    label: str
    key: str


PLACES = (
    Place("dashboard", "Dashboard", "1"),
    Place("data", "Data", "2"),
    Place("train", "Train", "3"),
    Place("chat", "Chat", "4"),
    Place("evals", "Evals", "5"),
    Place("export", "Export", "6"),
)

def place_bindings() -> list[Binding]:
    """A digit for each screen, and the F-key of the same number, which also works while typing.

    The navigation bar on top shows these keys on every screen, so the footer keeps its width
    for the screen's own actions (at 80 columns it has none to spare).
    """
    return [
        Binding(f"{place.key},f{place.key}", f"switch_mode('{place.mode}')", place.label, show=False,
                id=f"app.screen.{place.mode}", tooltip=f"go to {place.label} (F{place.key} works while typing)")
        for place in PLACES
    ]


class NavBar(Widget):
    """One line: the app's name and every screen with its key, the current one highlighted."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $panel; color: $text-muted; }
    NavBar > .nav-bar--current { background: $accent; color: $text; text-style: bold; }
    NavBar > .nav-bar--title { color: $text; text-style: bold; }
    """
    COMPONENT_CLASSES = {"nav-bar--current", "nav-bar--title"}

    def __init__(self, current: str):
        super().__init__()
        self.current = current

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="crop")
        text.append(" 鍛錬 tanren ", self.get_component_rich_style("nav-bar--title"))
        for place in PLACES:
            style = self.get_component_rich_style("nav-bar--current") if place.mode == self.current else ""
            text.append(f" {place.key} {place.label} ", style)
        return text
