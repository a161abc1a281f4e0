"""The new-run form: the key settings of a run, validated by the config, then started here,
so that a missing file or a taken name is shown in the form to fix."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input, Select, Static

from engine.config import RunConfig, apply_overrides
from engine.chat.collect import list_datasets
from engine.config.schema import METHODS, OBJECTIVES
from engine.i18n import N_
from engine.data.kinds import DEFAULT_OBJECTIVES, KIND_NAMES, data_kind
from engine.runs.training import start_training
from engine.train.memory import check, verdict
from tui.i18n import Gettext
from tui.screens.form import FormField, FormScreen, form_values
from tui.screens.picker import Picked, Picker

FIELDS = (
    FormField("name", N_("Run name"), text=True, optional=True, placeholder=N_("made from the base and the time")),
    FormField("model.base", N_("Base model"), text=True),
    FormField("data.path", N_("Data file"), text=True, optional=True, placeholder=".jsonl .json .csv .parquet"),
    FormField("adapter.method", N_("Method"), choices=METHODS),
    FormField("training.objective", N_("Objective"), choices=OBJECTIVES),
    FormField("adapter.init_adapter", N_("Start from"), text=True, optional=True,
              placeholder=N_("an adapter to continue (optional)")),
    FormField("training.max_steps", N_("Max steps")),
    FormField("training.epochs", N_("Epochs")),
    FormField("training.learning_rate", N_("Learning rate")),
    FormField("adapter.rank", N_("LoRA rank")),
    FormField("data.max_length", N_("Max length")),
    FormField("training.micro_batch_size", N_("Micro-batch")),
    FormField("training.gradient_accumulation", N_("Grad. accum.")),
    FormField("training.save_steps", N_("Save every")),
    FormField("training.eval_steps", N_("Eval every")),
)


class NewRunScreen(FormScreen[str]):
    """Dismissed with the started run's name, or None when cancelled."""

    FIELDS = FIELDS
    FORM_TITLE = N_("New training run")
    BINDINGS = [
        Binding("ctrl+s", "submit", N_("Start"), id="new_run.start", tooltip=N_("validate and start the run")),
        Binding("ctrl+g", "estimate", N_("Estimate"), id="new_run.estimate",
                tooltip=N_("the memory the run would need here, and the setting to change first if it does not fit")),
        Binding("ctrl+o", "collected", N_("Collected data"), id="new_run.collected",
                tooltip=N_("train on a dataset collected in Chat, with the objective that fits it")),
        Binding("escape", "cancel", N_("Cancel"), id="new_run.cancel", tooltip=N_("close the form, start nothing")),
    ]

    @dataclass
    class Failed(Message):
        error: BaseException

    def action_submit(self) -> None:
        self.query_one(".form-error", Static).update(self._("starting…"))
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
        self.query_one(".form-error", Static).update(self._("estimating…"))
        self.estimate(self.overrides())

    @work(thread=True, exclusive=True, group="estimate")
    def estimate(self, overrides: list[str]) -> None:
        try:
            lines = verdict(check(apply_overrides(RunConfig(), overrides), self.home), self._)
        except Exception as exc:  # noqa: BLE001 - shown in the form, to be fixed there
            self.post_message(self.Failed(exc))
            return
        self.app.call_from_thread(self.query_one(".form-error", Static).update, Text("\n".join(lines)))

    def action_collected(self) -> None:
        files = collected_files(self.home, self._)
        if not files:
            self.notify(self._("no collected data yet: judge answers in Chat (ctrl+y, ctrl+n, ctrl+r) to collect some"))
            return
        self.app.push_screen(Picker(self._("Train on collected data (Enter)"), files), self._use_data)

    def _use_data(self, picked: Picked | None) -> None:
        if picked is not None:
            self.query_one("#field-data-path", Input).value = picked.value
            self.query_one("#field-training-objective", Select).value = DEFAULT_OBJECTIVES[data_kind(picked.value).kind]

    def on_new_run_screen_failed(self, message: Failed) -> None:
        self.show_error(message.error)


def collected_files(home, _: Gettext) -> list[tuple[str, str]]:
    """(label, path) of each file of data collected in Chat, with the objective it trains."""
    return [(f"{dataset.name} · {path.name} ({count} {_(KIND_NAMES[kind])}) → {DEFAULT_OBJECTIVES[kind].upper()}",
             str(path))
            for dataset, counts in ((d, d.counts()) for d in list_datasets(home))  # each file read once
            for kind, path in dataset.files() if (count := getattr(counts, kind))]


def new_run_values(config: RunConfig) -> dict[str, str]:
    """The form filled from a config; the name is left empty, since names are unique."""
    return {**form_values(FIELDS, config), "name": ""}
