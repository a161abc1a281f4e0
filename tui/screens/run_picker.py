"""A list of every run to pick one from (the Train screen's "open run")."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option


class RunPicker(ModalScreen[str | None]):
    """Dismissed with the chosen run's name, or None."""

    CSS_PATH = "run_picker.tcss"

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="run_picker.cancel")]

    def __init__(self, runs: list[tuple[str, str]], current: str | None = None) -> None:
        super().__init__()
        self.runs = runs  # (name, state)
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="run-picker"):
            yield Static("Open run (Enter)", classes="section-title")
            options = [Option(Text.assemble(name, (f"  {state}", "italic")), id=name) for name, state in self.runs]
            yield OptionList(*options, id="run-picker-list")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        names = [name for name, _state in self.runs]
        if self.current in names:
            self.query_one(OptionList).highlighted = names.index(self.current)

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
