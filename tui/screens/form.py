"""A modal form over config fields: labels, the help text of the focused field, and errors.

Values become `section.field=value` overrides, exactly as `tanren ... --set` takes them, so a
form accepts and refuses the same things as the CLI and shows the same error messages.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Footer, Input, Label, Select, Static

from engine.config import RunConfig
from engine.config.fields import field_help
from engine.errors import TanrenError
from engine.paths import Home
from tui.errors import describe
from tui.i18n import Localized

T = TypeVar("T")


@dataclass(frozen=True)
class FormField:
    key: str  # section.field, or a top-level field such as "name"
    label: str
    text: bool = False  # free text, quoted for YAML; numbers and choices go as typed
    optional: bool = False  # empty means "none" (null) rather than empty text
    choices: tuple[str, ...] = ()  # shown as a list to pick from
    placeholder: str = ""  # what an empty field means

    @property
    def widget_id(self) -> str:
        return "field-" + self.key.replace(".", "-").replace("_", "-")

    def help(self) -> str:
        """The config field's help, as its message id (translated where it is shown)."""
        owner, name = RunConfig, self.key
        if "." in self.key:
            section, name = self.key.split(".")
            owner = typing.get_type_hints(RunConfig)[section]
        return field_help(owner, name)

    def value_of(self, config: RunConfig) -> Any:
        value: Any = config
        for part in self.key.split("."):
            value = getattr(value, part)
        return value

    def override(self, value: str) -> str:
        value = value.strip()
        if not value and self.optional:
            return f"{self.key}="
        return f"{self.key}={json.dumps(value, ensure_ascii=False) if self.text else value}"


def form_values(fields: tuple[FormField, ...], config: RunConfig) -> dict[str, str]:
    return {f.key: "" if f.value_of(config) is None else str(f.value_of(config)) for f in fields}


class FormScreen(Localized, ModalScreen[T], Generic[T]):
    """Subclasses set FIELDS, FORM_TITLE and BINDINGS (with a `submit` and a `cancel` action); the
    title, labels and placeholders are marked with N_() and translated here."""

    FIELDS: ClassVar[tuple[FormField, ...]]
    FORM_TITLE: ClassVar[str]
    CSS_PATH = Path(__file__).with_name("form.tcss")
    AUTO_FOCUS = ".form-fields Input, .form-fields Select"

    def __init__(self, home: Home, values: dict[str, str]) -> None:
        super().__init__()
        self.home = home
        self.values = values

    def compose(self) -> ComposeResult:
        with Vertical(classes="form"):
            yield Static(self._(self.FORM_TITLE), classes="form-title")
            with VerticalScroll(classes="form-fields"):
                for field in self.FIELDS:
                    with Horizontal(classes="form-row"):
                        yield Label(self._(field.label), classes="form-label")
                        yield self._widget(field)
            yield Static("", classes="form-help")
            yield Static("", classes="form-error")
        yield Footer(compact=True)

    def _widget(self, field: FormField) -> Widget:
        value = self.values.get(field.key, "")
        if field.choices:
            return Select([(c, c) for c in field.choices], value=value or field.choices[0], allow_blank=False,
                          id=field.widget_id, compact=True, tooltip=self._(field.help()))
        return Input(value, id=field.widget_id, compact=True, tooltip=self._(field.help()),
                     placeholder=self._(field.placeholder) if field.placeholder else "")

    def on_descendant_focus(self, event) -> None:
        field = next((f for f in self.FIELDS if f.widget_id == event.widget.id), None)
        if field is not None:
            self.query_one(".form-help", Static).update(Text(f"{field.key}: {self._(field.help())}"))

    def read_form(self) -> dict[str, str]:
        return {f.key: str(self.query_one(f"#{f.widget_id}").value) for f in self.FIELDS}

    def overrides(self) -> list[str]:
        values = self.read_form()
        return [field.override(values[field.key]) for field in self.FIELDS]

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        raise NotImplementedError

    def action_cancel(self) -> None:
        self.dismiss(None)

    def show_error(self, error: BaseException) -> None:
        """The error under the form, and the cursor on the field it names (by key or by the value typed)."""
        self.query_one(".form-error", Static).update(
            Text(describe(error, self.home.root / "logs" / "workbench.log", self._), style="bold red"))
        where = error.where if isinstance(error, TanrenError) else None
        values = self.read_form()
        field = next((f for f in self.FIELDS
                      if where and (where in (f.key, values[f.key]) or where.startswith(f.key + "["))), None)
        if field is not None:
            self.query_one(f"#{field.widget_id}").focus()
