"""Pick one of a list (runs, chat targets), or type a value that is not in it."""

from __future__ import annotations

from typing import NamedTuple

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from engine.i18n import N_
from tui.i18n import Localized


class Picked(NamedTuple):
    value: str  # the option's id, or the text typed
    typed: bool


class Picker(Localized, ModalScreen[Picked | None]):
    """Dismissed with what was picked, or None; the caller translates the title and options."""

    CSS_PATH = "picker.tcss"
    BINDINGS = [Binding("escape", "cancel", N_("Cancel"), id="picker.cancel", tooltip=N_("close, pick nothing"))]

    def __init__(self, title: str, options: list[tuple[Text | str, str]], *, current: str | None = None,
                 typed: str | None = None) -> None:
        """`options` are (label, id); with `typed` (the placeholder) a field takes any other value."""
        super().__init__()
        self.title_text, self.options, self.current, self.typed = title, options, current, typed

    def compose(self) -> ComposeResult:
        with Vertical(classes="picker"):
            yield Static(self.title_text, classes="section-title")
            if self.typed is not None:
                yield Input(placeholder=self.typed, compact=True, id="picker-typed")
            yield OptionList(*[Option(Text(label) if isinstance(label, str) else label, id=option_id)
                               for label, option_id in self.options], id="picker-list")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        options = self.query_one("#picker-list", OptionList)
        ids = [option_id for _label, option_id in self.options]
        if ids:
            options.highlighted = ids.index(self.current) if self.current in ids else 0
        options.focus()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(Picked(event.option.id or "", typed=False))

    @on(Input.Submitted, "#picker-typed")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(Picked(event.value.strip(), typed=True))

    def action_cancel(self) -> None:
        self.dismiss(None)
