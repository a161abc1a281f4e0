"""Evals: perplexity and ROUGE of a run before and after its adapter (or of any model), in a
worker thread, shown as the before/after table that `tanren eval` prints."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Input, Label, ProgressBar, Select, Static

from engine.i18n import N_
from engine.phrases import Phrase, in_language
from engine.runs.rundir import trained_run_names
from tui.errors import reports_errors
from tui.screens.base import TanrenScreen
from tui.screens.picker import Picked, Picker
from tui.widgets.table import Table, fit_columns

METRIC_CHOICES = ((N_("perplexity and ROUGE"), "perplexity,rouge"), (N_("perplexity"), "perplexity"),
                  ("ROUGE", "rouge"), (N_("preference pairs"), "preference"))
# At 80 columns not every metric fits: the backend goes first, then the secondary ROUGE scores
# (engine.presentation.eval_table's column keys).
DROP_FIRST = ("backend", "rouge2", "rougeL", "preference_margin")


def saved_results(home, target: str) -> dict | None:
    """The report a run keeps from its last evaluation (eval_results.json), if it is a run and has one."""
    import json

    from engine.errors import InvalidNameError
    from evals.evaluate import RESULTS_FILE

    try:
        path = home.run_dir(target) / RESULTS_FILE
    except InvalidNameError:  # not a run name (a path or hub id): nothing saved
        return None
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


class EvalsScreen(TanrenScreen):
    MODE = "evals"
    CSS_PATH = "evals.tcss"
    AUTO_FOCUS = "#eval-results"
    BINDINGS = [
        Binding("ctrl+r", "run_eval", N_("Run eval"), id="evals.run",
                tooltip=N_("measure the target (before and after)")),
        Binding("escape", "stop", N_("Stop"), id="evals.stop", tooltip=N_("stop the evaluation; nothing is written")),
        Binding("ctrl+o", "pick_target", N_("Target"), id="evals.target", tooltip=N_("a run, or any model")),
    ]

    @dataclass
    class Status(Message):
        text: str

    @dataclass
    class Progressed(Message):
        what: Phrase
        done: int
        total: int

    @dataclass
    class Results(Message):
        results: dict
        note: str

    @dataclass
    class Finished(Message):
        pass

    def __init__(self) -> None:
        super().__init__()
        self.cancel = threading.Event()
        self.running = False
        self.results: dict | None = None  # shown in the table, fitted again to a new width

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label(self._("Target"), classes="form-label")
            yield Input(placeholder=self._("a run name, or a model: name, HF folder, .gguf file (Ctrl+O lists them)"),
                        id="eval-target", compact=True)
        with Horizontal(classes="form-row"):
            yield Label(self._("Data"), classes="form-label")
            yield Input(placeholder=self._("a data file; empty: the run's held-out split"), id="eval-data",
                        compact=True)
        with Horizontal(classes="form-row"):
            yield Label(self._("Metrics"), classes="form-label")
            yield Select([(self._(label), value) for label, value in METRIC_CHOICES], value="perplexity,rouge",
                         allow_blank=False, id="eval-metrics", compact=True)
            yield Label(self._("Examples"), classes="inline-label")
            yield Input(placeholder=self._("all"), id="eval-limit", compact=True, type="integer")
            yield Label(self._("Answer tokens"), classes="inline-label")
            yield Input(placeholder=self._("default"), id="eval-max-new-tokens", compact=True, type="integer")
        yield Static("", id="eval-status")
        with Horizontal(id="eval-progress"):
            yield ProgressBar(total=None, show_eta=False, id="eval-bar")
            yield Static("", id="eval-what")
        yield Static("", id="eval-data-line")
        yield Table(id="eval-results", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#eval-progress").display = False
        runs = trained_run_names(self.home)
        if runs:
            self._set_target(runs[0])
        else:
            self._show_status(self._("No trained run yet: train one (3), or type a model to measure."))

    @reports_errors(N_("reading the last evaluation"))
    def _set_target(self, target: str) -> None:
        self.query_one("#eval-target", Input).value = target
        results = saved_results(self.home, target)
        self._show_table(results)
        self._show_status(self._("last evaluation of {target}, {time}; Ctrl+R runs it again", target=target,
                                 time=results["time"]) if results
                          else self._("{target}: Ctrl+R evaluates it", target=target))

    def _show_status(self, text: str) -> None:
        self.query_one("#eval-status", Static).update(Text(text))

    def _show_table(self, results: dict | None) -> None:
        from engine.presentation.eval_table import describe_data, header, results_table

        self.results = results
        table = self.query_one("#eval-results", DataTable)
        table.clear(columns=True)
        self.query_one("#eval-data-line", Static).update(Text(describe_data(results, self._)) if results else "")
        if results:
            headers, rows = results_table(results, self._)
            headers, rows = fit_columns(headers, rows, self.size.width - 2,
                                        tuple(header(key, self._) for key in DROP_FIRST))
            table.add_columns(*headers)
            table.add_rows(rows)

    def on_resize(self) -> None:
        if self.results:
            self._show_table(self.results)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("run_eval", "pick_target"):
            return None if self.running else True
        return True

    def action_run_eval(self) -> None:
        if self.running:
            return
        target = self.query_one("#eval-target", Input).value.strip()
        if not target:
            self.notify(self._("name a run or a model to evaluate (Ctrl+O lists them)"), severity="warning")
            return
        self.running, self.cancel = True, threading.Event()
        self.refresh_bindings()
        self.query_one("#eval-progress").display = True
        numbers = {key: self.query_one(f"#eval-{key.replace('_', '-')}", Input).value.strip()
                   for key in ("limit", "max_new_tokens")}
        self.evaluate(target, self.query_one("#eval-data", Input).value.strip() or None,
                      str(self.query_one("#eval-metrics", Select).value),
                      {key: int(value) for key, value in numbers.items() if value}, self.cancel)

    @work(thread=True, exclusive=True, group="eval")
    def evaluate(self, target: str, data: str | None, metrics: str, numbers: dict[str, int],
                 cancel: threading.Event) -> None:
        from evals.errors import CANCELLED, EvalCancelled
        from evals.evaluate import Settings, evaluate, save_to_run
        from evals.targets import plan_targets, select_data

        last = [0.0]

        def progress(what: Phrase, done: int, total: int) -> None:
            now = time.monotonic()
            if done == total or now - last[0] > 0.1:  # a few updates a second are plenty
                last[0] = now
                self.post_message(self.Progressed(what, done, total))

        try:
            plan = plan_targets(target, self.home)
            settings = Settings.for_plan(plan, metrics=tuple(metrics.split(",")), **numbers)
            dataset = select_data(plan, data, limit=numbers.get("limit"))
            report = evaluate(plan, dataset, settings, self.home, cancel=cancel, progress=progress,
                              on_status=lambda said: self.post_message(self.Status(in_language(said, self._))))
            if plan.run is not None:
                save_to_run(plan.run, report)
            note = (self._("saved to the run {name} and its model card", name=plan.run.name) if plan.run is not None
                    else "")
            self.post_message(self.Results(report.to_dict(), note))
        except EvalCancelled:
            self.post_message(self.Status(self._(CANCELLED)))
        except Exception as exc:  # noqa: BLE001 - a notification says what went wrong
            self.app.report_error(exc, N_("evaluating"))
            self.post_message(self.Status(self._("the evaluation failed; see the notification")))
        finally:
            self.post_message(self.Finished())

    def on_evals_screen_status(self, message: Status) -> None:
        self._show_status(message.text)

    def on_evals_screen_progressed(self, message: Progressed) -> None:
        self.query_one("#eval-bar", ProgressBar).update(total=message.total, progress=message.done)
        what = message.what.translate(self._)
        self.query_one("#eval-what", Static).update(Text(f"{what} {message.done}/{message.total}"), layout=False)

    def on_evals_screen_results(self, message: Results) -> None:
        self._show_table(message.results)
        done = self._("done in {seconds:.0f} s", seconds=message.results["duration_s"])
        self._show_status(done + (f"; {message.note}" if message.note else ""))

    def on_evals_screen_finished(self) -> None:
        self.running = False
        self.query_one("#eval-progress").display = False
        self.refresh_bindings()

    def action_stop(self) -> None:
        if self.running:
            self.cancel.set()
            self._show_status(self._("stopping…"))
        else:
            self.set_focus(None)

    def action_pick_target(self) -> None:
        options = [(Text.assemble((self._("run") + "  ", "italic"), name), name)
                   for name in trained_run_names(self.home)]
        picker = Picker(self._("Evaluate (Enter)"), options,
                        typed=self._("or type a model: name, HF folder or .gguf file (Enter)"))
        self.app.push_screen(picker, self._picked)

    def _picked(self, picked: Picked | None) -> None:
        if picked is not None:
            self._set_target(picked.value)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_run_eval()
