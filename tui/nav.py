"""The workbench's screens, their keys, and the bar at the top that shows them."""

from __future__ import annotations

from typing import NamedTuple

from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget

from engine.i18n import N_
from tui.i18n import Localized


class Place(NamedTuple):
    mode: str
    label: str
    key: str


PLACES = (
    Place("dashboard", N_("Dashboard"), "1"),
    Place("data", N_("Data"), "2"),
    Place("train", N_("Train"), "3"),
    Place("chat", N_("Chat"), "4"),
    Place("evals", N_("Evals"), "5"),
    Place("export", N_("Export"), "6"),
)

def place_bindings() -> list[Binding]:
    """A digit for each screen, and the F-key of the same number, which also works while typing
    (descriptions in English: the App translates its bindings).

    The navigation bar on top shows these keys on every screen, so the footer keeps its width
    for the screen's own actions (at 80 columns it has none to spare).
    """
    return [
        Binding(f"{place.key},f{place.key}", f"switch_mode('{place.mode}')", place.label, show=False,
                id=f"app.screen.{place.mode}", tooltip=N_("go to this screen (its F-key works while typing)"))
        for place in PLACES
    ]


class NavBar(Localized, Widget):
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
        places = Text(no_wrap=True, overflow="crop")
        for place in PLACES:
            style = self.get_component_rich_style("nav-bar--current") if place.mode == self.current else ""
            places.append(f" {place.key} {self._(place.label)} ", style)
        title = Text(" 鍛錬 tanren ")
        # The screens and their keys matter more than the name: at 80 columns in Japanese both do not fit.
        if title.cell_len + places.cell_len > self.size.width:
            return places
        title.stylize(self.get_component_rich_style("nav-bar--title"))
        return Text(no_wrap=True, overflow="crop").append_text(title).append_text(places)
