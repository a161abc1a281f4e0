"""Export: one key runs merge -> F16 GGUF -> quantize -> Modelfile -> verify for a run, as a
detached process this screen follows (like a training run), ending with the verification."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Input, Label, ProgressBar, Static
from textual.worker import get_current_worker

from engine.events import STAGES, Progress
from engine.i18n import N_
from engine.jobs import Follower, FollowUpdate
from engine.presentation.event_lines import EventFormatter
from engine.runs.rundir import trained_run_names
from tui.errors import reports_errors
from tui.i18n import Gettext
from tui.screens.base import TanrenScreen
from tui.screens.picker import Picked, Picker
from tui.widgets.log_lines import LogLines
from tui.widgets.run_view import state_text
from tui.widgets.table import Table, fit_columns


COLUMNS = (N_("model"), N_("perplexity"), N_("change"), N_("answers"), N_("verdict"))
DROP_FIRST = ("answers", "change")  # at 80 columns the verdict matters more than how it was reached


def verification_rows(manifest: dict, _: Gettext) -> list[list[str]]:
    """One row per checked model: perplexity, its change against its reference, answers, verdict."""
    rows = []
    for model in (manifest.get("verification") or {}).get("models", []):
        change = (_("{delta:+.2%} vs {reference}", delta=model["perplexity_delta"], reference=model["reference"])
                  if model.get("perplexity_delta") is not None else _("reference"))
        answers = len(model.get("answers", []))
        same = (_("{same}/{answers} as merged", same=model["same_answers"], answers=answers)
                if model.get("same_answers") is not None else "-")
        rows.append([model["name"], f"{model['perplexity']:.3f}", change, same,
                     _("FAILED: {why}", why="; ".join(model["failures"])) if model.get("failures") else _("ok")])
    return rows


class ExportScreen(TanrenScreen):
    MODE = "export"
    CSS_PATH = "export.tcss"
    AUTO_FOCUS = "#export-log"
    BINDINGS = [
        Binding("ctrl+r", "export", N_("Export"), id="export.start",
                tooltip=N_("merge, GGUF, quantize, Modelfile and verify, as a detached process")),
        Binding("escape", "stop", N_("Stop"), id="export.stop", tooltip=N_("stop the export; finished files stay")),
        Binding("ctrl+o", "pick_run", N_("Run"), id="export.run", tooltip=N_("the run to export")),
        Binding("ctrl+f", "serve", N_("Serve"), id="export.serve",
                tooltip=N_("serve the export's GGUF over an OpenAI-compatible API, with its live request log")),
    ]

    @dataclass
    class Followed(Message):
        export: str
        update: FollowUpdate

    def __init__(self) -> None:
        super().__init__()
        self.export = None  # the ExportDir shown
        self.alive = False
        self.formatter = EventFormatter(self._)

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label(self._("Run"), classes="form-label")
            yield Input(placeholder=self._("the run to export (Ctrl+O lists them)"), id="export-run", compact=True)
        with Horizontal(classes="form-row"):
            yield Label(self._("GGUF types"), classes="form-label")
            yield Input(placeholder=self._("auto: by model size"), id="export-quants", compact=True,
                        tooltip=self._("besides F16, e.g. q8_0,q4_k_m; the first is what the Modelfile runs. "
                                       "Empty: Q8_0 below 2B parameters, else Q4_K_M and Q8_0"))
            yield Label(self._("Ollama name"), classes="inline-label")
            yield Input(placeholder=self._("none: print the command"), id="export-ollama", compact=True)
        yield Static("", id="export-title")
        yield Static("", id="export-state")
        with Horizontal(id="export-progress"):
            yield ProgressBar(total=None, show_eta=False, id="export-bar")
            yield Static("", id="export-stage")
        yield Table(id="export-verification", cursor_type="row", zebra_stripes=True)
        yield LogLines(id="export-log")

    def on_mount(self) -> None:
        self._set_shown(False)
        runs = trained_run_names(self.home)
        if runs:
            self._set_run(runs[0])
        else:
            self.query_one("#export-title", Static).update(self._("No trained run to export yet: train one first (3)."))

    @reports_errors(N_("opening the run's exports"))
    def _set_run(self, name: str) -> None:
        """Show the run's newest export, if it has one, followed live if it is still going."""
        from export.jobs import list_exports

        self.query_one("#export-run", Input).value = name
        exports = list_exports(name, self.home)
        if exports:
            self._show_export(exports[0])
        else:
            self.export = None
            self._set_shown(False)
            self.query_one("#export-title", Static).update(Text(self._("{name}: Ctrl+R exports it", name=name)))

    def _set_shown(self, shown: bool) -> None:
        for selector in ("#export-state", "#export-progress", "#export-verification", "#export-log"):
            self.query_one(selector).display = shown

    def _show_export(self, export) -> None:
        self.export, self.alive, self.formatter = export, False, EventFormatter(self._)
        self._set_shown(True)
        request = export.request()
        self.query_one("#export-title", Static).update(Text.assemble(
            (f"{export.run_name} / {export.name}", "bold"),
            f"  {', '.join(['f16', *(request.quants or ['auto'])])} → {request.out}"))
        self.query_one("#export-log", LogLines).clear()
        self.query_one("#export-verification", DataTable).clear()
        self.query_one("#export-bar", ProgressBar).update(total=100, progress=0)
        self.query_one("#export-stage", Static).update("")
        self.follow(export)

    @work(thread=True, exclusive=True, group="follow-export")
    @reports_errors(N_("following the export"))
    def follow(self, export) -> None:
        worker = get_current_worker()
        for update in Follower(export).watch(lambda: worker.is_cancelled):
            self.post_message(self.Followed(export.name, update))

    def on_export_screen_followed(self, message: Followed) -> None:
        if self.export is None or message.export != self.export.name:
            return
        if message.update.events:
            self._show_events(message.update.events)
        if message.update.status_changed:
            self._show_status(message.update)

    def _show_events(self, events) -> None:
        lines = []
        for event in events:
            if isinstance(event, Progress) and event.total and event.unit == STAGES:
                self.query_one("#export-bar", ProgressBar).update(total=event.total, progress=event.done)
                self.query_one("#export-stage", Static).update(
                    Text(self._("stage {stage}/{stages}: {what}", stage=min(event.done + 1, event.total),
                                stages=event.total, what=event.shown(self._))), layout=False)
            if line := self.formatter.format(event):
                lines.append(line)
        self.query_one("#export-log", LogLines).write_lines(lines)

    def _show_status(self, update: FollowUpdate) -> None:
        self.alive = update.alive
        self.query_one("#export-state", Static).update(state_text(update.status, self._))
        if update.status.final and not update.alive:
            self._show_verification()
        self.refresh_bindings()

    def _show_verification(self) -> None:
        from export.manifest import PUBLISHABLE, read_manifest

        manifest = read_manifest(self.export.out) or {}
        table = self.query_one("#export-verification", DataTable)
        headers, rows = fit_columns([self._(column) for column in COLUMNS], verification_rows(manifest, self._),
                                    self.size.width - 2, tuple(map(self._, DROP_FIRST)))
        table.clear(columns=True)
        table.add_columns(*headers)
        table.add_rows(rows)
        if manifest.get("status") in PUBLISHABLE:
            excluded = ", ".join(entry["type"].upper() for entry in manifest.get("excluded") or [])
            self.query_one("#export-bar", ProgressBar).update(total=1, progress=1)
            self.query_one("#export-stage", Static).update(
                Text(self._("verified") + (self._("; {types} excluded (failed)", types=excluded) if excluded else ""),
                     style="bold green"),
                layout=False)
        elif manifest:
            self.query_one("#export-stage", Static).update(
                Text(self._("not verified: {why}", why=manifest.get("error") or manifest.get("status")),
                     style="bold red"),
                layout=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("export", "pick_run"):
            return None if self.alive else True
        if action == "serve":
            return self.export is not None and not self.alive or None
        return True

    @reports_errors(N_("serving the export"))
    def action_serve(self) -> None:
        from engine.serve.jobs import serve_target
        from export.jobs import servable_gguf
        from tui.screens.serve import ServeScreen

        name = f"{self.export.run_name}-{self.export.name}"
        self.app.push_screen(ServeScreen(serve_target(str(servable_gguf(self.export)), self.home, name=name)))

    @reports_errors(N_("starting the export"))
    def action_export(self) -> None:
        from export.jobs import prepare_export, start_export

        run = self.query_one("#export-run", Input).value.strip()
        if not run:
            self.notify(self._("name the run to export (Ctrl+O lists them)"), severity="warning")
            return
        ollama = self.query_one("#export-ollama", Input).value.strip() or None
        request = prepare_export(run, self.home, quants=self.query_one("#export-quants", Input).value, ollama=ollama)
        self._show_export(start_export(request, self.home))
        self.notify(self._("export {name} started; it keeps going if you quit or lose the connection",
                           name=request.name))

    @reports_errors(N_("stopping the export"))
    def action_stop(self) -> None:
        from export.jobs import cancel_export

        if self.export is not None and self.alive:
            cancel_export(self.export)
            self.notify(self._("asked the export to stop; files it finished stay"))
        else:
            self.set_focus(None)

    def action_pick_run(self) -> None:
        options = [(name, name) for name in trained_run_names(self.home)]
        if not options:
            self.notify(self._("no trained run to export yet"), severity="warning")
            return
        self.app.push_screen(Picker(self._("Export which run (Enter)"), options), self._picked)

    def _picked(self, picked: Picked | None) -> None:
        if picked is not None:
            self._set_run(picked.value)

    @on(Input.Submitted, "#export-run")
    def _run_typed(self, event: Input.Submitted) -> None:
        self._set_run(event.value.strip())
