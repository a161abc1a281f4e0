"""The new-run form: the key settings of a run, validated by the config itself, then started.

Values become `section.field=value` overrides on the defaults, exactly as `tanren train --set`
does, so the form accepts and refuses the same things as the CLI and shows the same errors.
Starting happens here too, so a missing file or a taken name is shown in the form to fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Footer, Input, Label, Select, Static

from engine.config import RunConfig, apply_overrides
from engine.config.fields import field_help
from engine.config.schema import METHODS, AdapterConfig, DataConfig, ModelConfig, TrainingConfig
from engine.errors import TanrenError
from engine.paths import Home
from engine.runs.training import start_training
from tui.errors import describe


@dataclass(frozen=True)
class FormField:
    key: str  # section.field, or "name"
    label: str
    text: bool = False  # free text (quoted for YAML) rather than a number

    @property
    def widget_id(self) -> str:
        return "field-" + self.key.replace(".", "-").replace("_", "-")

    def help(self) -> str:
        if "." not in self.key:
            return field_help(RunConfig, self.key)
        section, name = self.key.split(".")
        sections = {"model": ModelConfig, "data": DataConfig, "adapter": AdapterConfig, "training": TrainingConfig}
        return field_help(sections[section], name)

    def value_of(self, config: RunConfig) -> Any:
        value: Any = config
        for part in self.key.split("."):
            value = getattr(value, part)
        return value


FIELDS = (
    FormField("name", "Run name", text=True),
    FormField("model.base", "Base model", text=True),
    FormField("data.path", "Data file", text=True),
    FormField("adapter.method", "Method"),
    FormField("training.max_steps", "Max steps"),
    FormField("training.epochs", "Epochs"),
    FormField("training.learning_rate", "Learning rate"),
    FormField("adapter.rank", "LoRA rank"),
    FormField("data.max_length", "Max length"),
    FormField("training.micro_batch_size", "Micro-batch"),
    FormField("training.gradient_accumulation", "Grad. accum."),
    FormField("training.save_steps", "Save every"),
    FormField("training.eval_steps", "Eval every"),
)


def form_values(config: RunConfig) -> dict[str, str]:
    """The form's text for each field, from a config (the run name is left empty: names are unique)."""
    values = {field.key: "" if field.value_of(config) is None else str(field.value_of(config)) for field in FIELDS}
    values["name"] = ""
    return values


def config_from_form(values: dict[str, str]) -> RunConfig:
    """Build the config from the form's text; raises ConfigError naming the field at fault."""
    overrides = []
    for field in FIELDS:
        value = values.get(field.key, "").strip()
        if field.key == "name" and not value:
            continue  # a name is made from the base and the time
        overrides.append(f"{field.key}={json.dumps(value, ensure_ascii=False) if field.text and value else value}")
    return apply_overrides(RunConfig(), overrides)


class NewRunScreen(ModalScreen[str | None]):
    """Dismissed with the started run's name, or None when cancelled."""

    CSS_PATH = "new_run.tcss"

    BINDINGS = [
        Binding("ctrl+s", "start", "Start", id="new_run.start", tooltip="validate and start the run"),
        Binding("escape", "cancel", "Cancel", id="new_run.cancel"),
    ]

    @dataclass
    class Failed(Message):
        error: BaseException

    def __init__(self, home: Home, values: dict[str, str]) -> None:
        super().__init__()
        self.home = home
        self.values = values

    def compose(self) -> ComposeResult:
        with Vertical(id="new-run"):
            yield Static("New training run", id="new-run-title")
            with VerticalScroll(id="new-run-fields"):
                for field in FIELDS:
                    with Horizontal(classes="form-row"):
                        yield Label(field.label, classes="form-label")
                        yield self._widget(field)
            yield Static("", id="new-run-help")
            yield Static("", id="new-run-error")
        yield Footer(compact=True)

    def _widget(self, field: FormField) -> Widget:
        value = self.values.get(field.key, "")
        if field.key == "adapter.method":
            return Select([(m, m) for m in METHODS], value=value or RunConfig().adapter.method, allow_blank=False,
                          id=field.widget_id, compact=True, tooltip=field.help())
        placeholder = "made from the base and the time" if field.key == "name" else ""
        return Input(value, id=field.widget_id, compact=True, placeholder=placeholder, tooltip=field.help())

    def on_descendant_focus(self, event) -> None:
        field = next((f for f in FIELDS if f.widget_id == event.widget.id), None)
        if field is not None:
            self.query_one("#new-run-help", Static).update(Text(f"{field.key}: {field.help()}"))

    def read_form(self) -> dict[str, str]:
        values = {}
        for field in FIELDS:
            widget = self.query_one(f"#{field.widget_id}")
            values[field.key] = str(widget.value)
        return values

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        self.query_one("#new-run-error", Static).update("starting…")
        self.start(self.read_form())

    def action_cancel(self) -> None:
        self.dismiss(None)

    @work(thread=True, exclusive=True)
    def start(self, values: dict[str, str]) -> None:
        try:
            run, _pid = start_training(config_from_form(values), self.home)
        except Exception as exc:  # noqa: BLE001 - shown in the form, to be fixed there
            self.post_message(self.Failed(exc))
            return
        self.app.call_from_thread(self.dismiss, run.name)

    def on_new_run_screen_failed(self, message: Failed) -> None:
        error = message.error
        self.query_one("#new-run-error", Static).update(
            Text(describe(error, self.home.root / "logs" / "workbench.log"), style="bold red"))
        where = error.where if isinstance(error, TanrenError) else None
        values = self.read_form()
        # `where` names the field (data.split[1]) or, for files and models, the value typed into it
        field = next((f for f in FIELDS if where and (where in (f.key, values[f.key]) or where.startswith(f.key + "["))),
                     None)
        if field is not None:
            self.query_one(f"#{field.widget_id}").focus()
