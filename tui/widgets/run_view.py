"""The live view of one training run, following its folder from a worker thread."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import ProgressBar, Static
from textual.worker import get_current_worker

from engine.i18n import N_
from engine.jobs import Follower, FollowUpdate, JobStatus
from engine.presentation.event_lines import EventFormatter, format_duration, state_name
from engine.runs.progress import RunProgress
from engine.runs.rundir import RunDir
from engine.textwidth import human_bytes
from tui.errors import reports_errors
from tui.i18n import Gettext, Localized
from tui.widgets.log_lines import LogLines
from tui.widgets.loss_plot import LossPlot

STATE_STYLES = {"running": "bold green", "queued": "yellow", "done": "cyan", "failed": "bold red",
                "cancelled": "magenta"}


def state_text(status: JobStatus, _: Gettext) -> Text:
    """The state, then the reason and hint the job wrote, in the user's language where it wrote their phrases."""
    text = Text(f"● {state_name(status.state, _)}", style=STATE_STYLES.get(status.state, ""))
    if status.reason:
        text.append(f"  {status.shown_reason(_)}")
    if status.hint:
        text.append("\n  " + _("hint: {hint}", hint=status.shown_hint(_)), style="italic")
    return text


def metrics_text(latest: dict[str, float], _: Gettext) -> str:
    """The newest metrics in one line that fits 80 columns (the CLI's log lines are wider)."""
    if "reward_margin" in latest:  # a preference run: its rewards take the optimizer's place
        shown = [("loss", "loss {:.4f}"), ("eval_loss", "eval {:.4f}"), ("reward_accuracy", "acc {:.0%}"),
                 ("reward_margin", "margin {:+.3f}"), ("kl", "kl {:.2f}"), ("tokens_per_s", "{:,.0f} tok/s")]
    else:
        shown = [("loss", "loss {:.4f}"), ("eval_loss", "eval {:.4f}"), ("learning_rate", "lr {:.1e}"),
                 ("grad_norm", "grad {:.2f}"), ("tokens_per_s", "{:,.0f} tok/s")]
    parts = [fmt.format(latest[key]) for key, fmt in shown if key in latest]
    if "peak_memory_mb" in latest:
        parts.append(f"mem {human_bytes(int(latest['peak_memory_mb'] * 2**20))}")
    return " · ".join(parts) or _("no metrics yet")


def steps_text(progress: RunProgress, _: Gettext) -> str:
    steps = (_("{done:,}/{total:,} steps", done=progress.done, total=progress.total) if progress.total
             else _("{done:,} steps", done=progress.done))
    return steps + (" · " + _("ETA {eta}", eta=format_duration(progress.eta_s)) if progress.eta_s is not None else "")


class RunView(Localized, Vertical):
    """Title, state, progress with ETA, latest metrics, the loss plot and the log tail of a run."""

    @dataclass
    class Followed(Message):
        run: str
        update: FollowUpdate  # new events, and the status with whether the process still lives

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run: RunDir | None = None
        self.progress = RunProgress(formatter=EventFormatter(self._))
        self.status: JobStatus | None = None
        self.alive = False

    def compose(self) -> ComposeResult:
        yield Static(self._("No run yet: press n to start one, or o to open one."), id="run-title")
        yield Static("", id="run-state")
        with Horizontal(id="run-progress"):
            yield ProgressBar(total=None, show_eta=False, id="run-bar")
            yield Static("", id="run-steps")
        yield Static("", id="run-metrics")
        yield LossPlot(id="run-plot")
        yield LogLines(id="run-log")

    def on_mount(self) -> None:
        self.query_one("#run-plot").border_title = self._("loss")
        self._set_visible(False)

    def _set_visible(self, visible: bool) -> None:
        for selector in ("#run-state", "#run-progress", "#run-metrics", "#run-plot", "#run-log"):
            self.query_one(selector).display = visible

    def attach(self, run: RunDir) -> None:
        """Show `run`, reading its history from the start and following it from there."""
        self.run, self.progress, self.status, self.alive = run, RunProgress(formatter=EventFormatter(self._)), None, False
        config = run.config()
        self.query_one("#run-title", Static).update(
            Text.assemble((run.name, "bold"), f"  {config.adapter.method} · {config.model.base}"))
        self.query_one("#run-log", LogLines).clear()
        self._set_visible(True)
        self._render_progress()
        self.follow(run)

    @work(thread=True, exclusive=True, group="follow")
    @reports_errors(N_("following the run"))
    def follow(self, run: RunDir) -> None:
        worker = get_current_worker()
        for update in Follower(run).watch(lambda: worker.is_cancelled):
            self.post_message(self.Followed(run.name, update))

    def on_run_view_followed(self, message: Followed) -> None:
        if self.run is None or message.run != self.run.name:
            return  # from the follower of a run no longer shown
        update = message.update
        if update.events:
            self.query_one("#run-log", LogLines).write_lines(self.progress.add(update.events))
            self._render_progress()
        if update.status_changed:
            self.status, self.alive = update.status, update.alive
            self.query_one("#run-state", Static).update(state_text(update.status, self._))

    def _render_progress(self) -> None:
        # Called for every batch of events, a few times a second while a run trains: the lines
        # have a fixed height, so they repaint without a layout pass over the whole screen.
        progress = self.progress
        self.query_one("#run-bar", ProgressBar).update(total=progress.total or 100,
                                                        progress=progress.done if progress.total else 0)
        self.query_one("#run-steps", Static).update(steps_text(progress, self._), layout=False)
        self.query_one("#run-metrics", Static).update(metrics_text(progress.latest, self._), layout=False)
        plot = self.query_one("#run-plot", LossPlot)
        plot.plot(progress.losses, progress.eval_losses)
        legend = "[$accent]⣀[/] " + self._("train")
        legend += " [$warning]⣀[/] " + self._("eval") if progress.eval_losses else ""
        if plot.border_subtitle != legend:
            plot.border_subtitle = legend
