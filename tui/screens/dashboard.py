"""Dashboard: how busy the machine is, every run with its state, and the base models."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.config import RunConfig
from engine.errors import TanrenError
from engine.i18n import N_
from engine.jobs import Follower
from engine.models.catalog import ModelEntry, list_models
from engine.phrases import in_language
from engine.presentation.event_lines import EventFormatter, state_name
from engine.runs.progress import RunProgress
from engine.runs.rundir import RunDir, list_runs
from engine.system import SystemSample
from engine.textwidth import human_bytes
from tui.errors import reports_errors
from tui.i18n import Gettext
from tui.screens.base import TanrenScreen
from tui.widgets.run_view import STATE_STYLES
from tui.widgets.table import Table, narrow_column

REFRESH_S = 2.0


@dataclass
class FollowedRun:
    """A run the dashboard lists, read incrementally: each refresh folds in only what was appended."""

    follower: Follower
    config: RunConfig  # fixed when the run is created
    progress: RunProgress

    @classmethod
    def of(cls, run: RunDir, _: Gettext) -> FollowedRun:
        return cls(Follower(run), run.config(), RunProgress(formatter=EventFormatter(_)))


@dataclass(frozen=True)
class RunRow:
    name: str
    state: str
    step: str
    loss: str
    method: str
    base: str


def format_system(sample: SystemSample, _: Gettext) -> str:
    gib, percent = 2**30, f"{sample.cpu_percent:.0f}%"
    parts = [_("CPU {percent} of {count}", percent=percent, count=sample.cpu_count),
             f"RAM {sample.ram_used / gib:.1f}/{sample.ram_total / gib:.1f} GiB",
             _("disk {size} free", size=human_bytes(sample.disk_free))]
    lines = [" · ".join(parts)]
    for index, gpu in enumerate(sample.gpus):
        util = f"{gpu.util_percent:.0f}%" if gpu.util_percent is not None else _("n/a")
        lines.append(f"GPU{index} {gpu.name} {util} · {gpu.memory_used / gib:.1f}/{gpu.memory_total / gib:.1f} GiB")
    if not sample.gpus:
        lines.append(f"GPU: {in_language(sample.gpu_note, _)}")
    return "\n".join(lines)


class DashboardScreen(TanrenScreen):
    MODE = "dashboard"
    CSS_PATH = "dashboard.tcss"
    BINDINGS = [
        Binding("o", "open_run", N_("Open run"), id="dashboard.open_run",
                tooltip=N_("show the run under the cursor live")),
        Binding("r", "refresh", N_("Refresh"), id="dashboard.refresh", tooltip=N_("read system use and runs now")),
    ]

    @dataclass
    class RunsRead(Message):
        rows: list[RunRow]

    @dataclass
    class SystemRead(Message):
        sample: SystemSample

    @dataclass
    class ModelsRead(Message):
        entries: list[ModelEntry]

    def __init__(self) -> None:
        super().__init__()
        self._followed: dict[str, FollowedRun] = {}
        self._rows: list[RunRow] | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("…", id="system")
        yield Static(self._("Runs"), classes="section-title")
        yield Table(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(self._("Base models"), classes="section-title")
        yield Table(id="models", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        _ = self._
        self.query_one("#runs", DataTable).add_columns(*self._run_columns())
        self.query_one("#models", DataTable).add_columns(_("Name"), _("Kind"), _("Size"), _("Ready"))
        self.action_refresh()
        self.load_models()
        self.set_interval(REFRESH_S, self.action_refresh)

    def _run_columns(self) -> list[str]:
        _ = self._
        return [_("Run"), _("Status"), _("Step"), _("Loss"), _("Method"), _("Base")]

    def action_refresh(self) -> None:
        self.read_system()
        self.read_runs()

    async def action_open_run(self) -> None:
        table = self.query_one("#runs", DataTable)
        if table.row_count == 0:
            self.notify(self._("no runs yet: press 3, then n, to start one"))
            return
        name = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        await self.tanren.open_run(name)

    @on(DataTable.RowSelected, "#runs")
    async def _row_selected(self) -> None:
        await self.action_open_run()

    @work(thread=True, exclusive=True, group="system")
    @reports_errors(N_("reading CPU, memory and GPU use"))
    def read_system(self) -> None:
        self.post_message(self.SystemRead(self.tanren.sample_system(self.home)))

    @work(thread=True, exclusive=True, group="runs")
    @reports_errors(N_("reading the runs"))
    def read_runs(self) -> None:
        rows = []
        for run in list_runs(self.home):
            try:
                rows.append(self._row(run))
            except TanrenError as exc:  # one damaged run folder must not hide the others
                self._followed.pop(run.name, None)
                rows.append(RunRow(run.name, "unreadable", "-", "-", "-", in_language(exc.phrases[0], self._)))
        self.post_message(self.RunsRead(rows))

    def _row(self, run: RunDir) -> RunRow:
        if run.name not in self._followed:
            self._followed[run.name] = FollowedRun.of(run, self._)
        followed = self._followed[run.name]
        update = followed.follower.poll()  # only what was appended since the last refresh
        progress, config = followed.progress, followed.config
        progress.add(update.events)
        loss = progress.latest.get("loss")
        return RunRow(run.name, update.status.state, f"{progress.done}/{progress.total or '?'}",
                      f"{loss:.4f}" if loss is not None else "-", config.adapter.method, config.model.base)

    @work(thread=True, exclusive=True, group="models")
    @reports_errors(N_("listing the base models"))
    def load_models(self) -> None:
        self.post_message(self.ModelsRead(list_models(self.home)))

    def on_dashboard_screen_system_read(self, message: SystemRead) -> None:
        self.query_one("#system", Static).update(format_system(message.sample, self._))

    def on_resize(self) -> None:
        self._rows = None  # the next reading of the runs (every REFRESH_S) fits them to the new width

    def on_dashboard_screen_runs_read(self, message: RunsRead) -> None:
        if message.rows == self._rows:
            return
        self._rows = message.rows
        table = self.query_one("#runs", DataTable)
        selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None
        table.clear()
        cells = [[row.name, state_name(row.state, self._), row.step, row.loss, row.method, row.base]
                 for row in message.rows]
        # a base given as a path can be as wide as the screen: it is shortened in the middle, keeping its name
        cells = narrow_column(self._run_columns(), cells, self.size.width - 2, column=5)
        for row, shown in zip(message.rows, cells):
            state = Text(shown[1], style=STATE_STYLES.get(row.state, ""))
            table.add_row(shown[0], state, *shown[2:], key=row.name)
        names = [row.name for row in message.rows]
        if selected in names:
            table.move_cursor(row=names.index(selected), animate=False)

    def on_dashboard_screen_models_read(self, message: ModelsRead) -> None:
        table = self.query_one("#models", DataTable)
        table.clear()
        for entry in message.entries:
            table.add_row(entry.name, self._(entry.kind), human_bytes(entry.size_bytes),
                          self._("yes") if entry.ready else self._("on first use"), key=entry.name)
