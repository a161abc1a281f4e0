"""The new-run form: the key settings of a run, validated by the config, then started here,
so that a missing file or a taken name is shown in the form to fix."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static

from engine.config import RunConfig, apply_overrides
from engine.config.schema import METHODS, OBJECTIVES
from engine.runs.training import start_training
from engine.train.memory import check, verdict
from tui.screens.form import FormField, FormScreen, form_values

FIELDS = (
    FormField("name", "Run name", text=True, optional=True, placeholder="made from the base and the time"),
    FormField("model.base", "Base model", text=True),
    FormField("data.path", "Data file", text=True, optional=True, placeholder=".jsonl .json .csv .parquet"),
    FormField("adapter.method", "Method", choices=METHODS),
    FormField("training.objective", "Objective", choices=OBJECTIVES),
    FormField("adapter.init_adapter", "Start from", text=True, optional=True,
              placeholder="an adapter to continue (optional)"),
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


class NewRunScreen(FormScreen[str]):
    """Dismissed with the started run's name, or None when cancelled."""

    FIELDS = FIELDS
    FORM_TITLE = "New training run"
    BINDINGS = [
        Binding("ctrl+s", "submit", "Start", id="new_run.start", tooltip="validate and start the run"),
        Binding("ctrl+g", "estimate", "Estimate", id="new_run.estimate",
                tooltip="the memory the run would need here, and the setting to change first if it does not fit"),
        Binding("escape", "cancel", "Cancel", id="new_run.cancel", tooltip="close the form, start nothing"),
    ]

    @dataclass
    class Failed(Message):
        error: BaseException

    def action_submit(self) -> None:
        self.query_one(".form-error", Static).update("starting…")
        self.start(self.overrides())

    @work(thread=True, exclusive=True)
    def start(self, overrides: list[str]) -> None:
        try:
            run, _pid = start_training(apply_overrides(RunConfig(), overrides), self.home)
        except Exception as exc:  # noqa: BLE001 - shown in the form, to be fixed there
            self.post_message(self.Failed(exc))
            return
        self.app.call_from_thread(self.dismiss, run.name)

    def action_estimate(self) -> None:
        self.query_one(".form-error", Static).update("estimating…")
        self.estimate(self.overrides())

    @work(thread=True, exclusive=True, group="estimate")
    def estimate(self, overrides: list[str]) -> None:
        try:
            lines = verdict(check(apply_overrides(RunConfig(), overrides), self.home))
        except Exception as exc:  # noqa: BLE001 - shown in the form, to be fixed there
            self.post_message(self.Failed(exc))
            return
        self.app.call_from_thread(self.query_one(".form-error", Static).update, Text("\n".join(lines)))

    def on_new_run_screen_failed(self, message: Failed) -> None:
        self.show_error(message.error)


def new_run_values(config: RunConfig) -> dict[str, str]:
    """The form filled from a config; the name is left empty, since names are unique."""
    return {**form_values(FIELDS, config), "name": ""}
