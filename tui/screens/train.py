"""Train: start a run from a validated form, watch it live, stop it and resume it.

Runs are detached processes: this screen only starts them and follows their folders, so
quitting the workbench or losing the SSH session never stops one.
"""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from engine.config import RunConfig
from engine.data.kinds import DEFAULT_OBJECTIVES, data_kind
from engine.errors import TanrenError
from engine.i18n import N_
from engine.jobs import JobStatus, request_stop
from engine.runs.rundir import RunDir, list_runs, open_run
from engine.runs.training import resume_training
from engine.serve.jobs import serve_target
from tui.errors import reports_errors
from tui.screens.base import TanrenScreen
from tui.screens.new_run import NewRunScreen, new_run_values
from tui.screens.picker import Picker
from tui.screens.serve import ServeScreen
from tui.widgets.run_view import RunView, state_name

STOPPABLE = ("queued", "running")


def _objective_for(data: str) -> str | None:
    """The objective a file's kind of records trains with (a file from the Data screen); None when
    the kind cannot be told, which the form reports when it starts the run."""
    try:
        return DEFAULT_OBJECTIVES[data_kind(data).kind]
    except TanrenError:
        return None


def alignable(run: RunDir, status: JobStatus | None) -> bool:
    """A finished SFT run (`status`: its state as the view follows it) with a result to start from (not
    a damaged run folder, which the Dashboard reports)."""
    try:
        return (status is not None and status.state == "done" and run.config().training.objective == "sft"
                and (run.has_adapter or run.has_model))
    except TanrenError:
        return False


def alignment_of(run: RunDir) -> RunConfig:
    """A DPO run that starts from `run`'s result: its adapter as adapter.init_adapter on its base (a
    fully fine-tuned model becomes the base), with the data left for the preference pairs."""
    config = run.config()
    training = replace(config.training, objective="dpo")
    if run.has_adapter:
        return replace(config, training=training, data=replace(config.data, path=None),
                       adapter=replace(config.adapter, init_adapter=str(run.adapter)))
    return replace(config, training=training, data=replace(config.data, path=None),
                   model=replace(config.model, base=str(run.path / "model")))
RESUMABLE = ("failed", "cancelled")


class TrainScreen(TanrenScreen):
    MODE = "train"
    CSS_PATH = "train.tcss"
    BINDINGS = [
        Binding("n", "new_run", N_("New run"), id="train.new", tooltip=N_("fill in the form and start a run")),
        Binding("o", "open_run", N_("Open run"), id="train.open", tooltip=N_("pick the run to watch")),
        Binding("s", "stop", N_("Stop"), id="train.stop", tooltip=N_("stop at the next step, saving a checkpoint")),
        Binding("r", "resume", N_("Resume"), id="train.resume", tooltip=N_("continue from the last checkpoint")),
        Binding("v", "serve", N_("Serve"), id="train.serve",
                tooltip=N_("serve the run's model over an OpenAI-compatible API, with its live request log")),
        Binding("a", "align", N_("Align"), id="train.align",
                tooltip=N_("align this finished SFT run with preference data: a DPO run that starts from its result")),
    ]

    def compose_body(self) -> ComposeResult:
        yield RunView(id="run-view")

    @reports_errors(N_("opening the newest run"))
    def on_mount(self) -> None:
        runs = list_runs(self.home)
        if runs and self.view.run is None:
            self.view.attach(runs[0])

    @property
    def view(self) -> RunView:
        return self.query_one("#run-view", RunView)

    @reports_errors(N_("opening the run"))
    def show_run(self, name: str) -> None:
        self.view.attach(open_run(name, self.home))
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Stop and resume are enabled only when they apply to the shown run (shown disabled otherwise)."""
        view = self.view if self.is_mounted else None
        status = view.status if view is not None else None
        if action == "stop":
            return status is not None and view.alive and status.state in STOPPABLE or None
        if action == "resume":
            return status is not None and not view.alive and status.state in RESUMABLE or None
        if action == "serve":
            return view is not None and view.run is not None and (view.run.has_adapter or view.run.has_model) or None
        if action == "align":
            return view is not None and view.run is not None and alignable(view.run, status) or None
        return True

    def on_run_view_followed(self, message: RunView.Followed) -> None:
        if message.update.status_changed:  # stop and resume depend on the run's state
            self.refresh_bindings()

    def action_new_run(self, data: str | None = None, base: str | None = None) -> None:
        shown = self.view.run
        values = new_run_values(shown.config() if shown is not None else RunConfig())
        values.update({key: value for key, value in (("data.path", data), ("model.base", base)) if value})
        if data and (objective := _objective_for(data)):
            values["training.objective"] = objective
        self.app.push_screen(NewRunScreen(self.home, values), self._started)

    @reports_errors(N_("aligning the run"))
    def action_align(self) -> None:
        run = self.view.run
        if run is not None and alignable(run, self.view.status):
            self.app.push_screen(NewRunScreen(self.home, new_run_values(alignment_of(run))), self._started)

    def _started(self, name: str | None) -> None:
        if name is not None:
            self.notify(self._("started {name}; it keeps running if you quit or lose the connection", name=name))
            self.show_run(name)

    def action_open_run(self) -> None:
        runs = [(Text.assemble(run.name, (f"  {state_name(run.status().state, self._)}", "italic")), run.name)
                for run in list_runs(self.home)]
        if not runs:
            self.notify(self._("no runs yet: press n to start one"))
            return
        current = self.view.run.name if self.view.run is not None else None
        self.app.push_screen(Picker(self._("Open run (Enter)"), runs, current=current),
                             lambda picked: picked and self.show_run(picked.value))

    @reports_errors(N_("stopping the run"))
    def action_stop(self) -> None:
        run = self.view.run
        if run is None:
            return
        if request_stop(run):
            self.notify(self._("asked {name} to stop at its next step; it saves a checkpoint first", name=run.name))
        else:
            self.notify(self._("{name} is not running ({state})", name=run.name,
                               state=state_name(run.status().state, self._)), severity="warning")

    @reports_errors(N_("resuming the run"))
    def action_resume(self) -> None:
        run = self.view.run
        if run is None:
            return
        resume_training(run)
        self.notify(self._("resumed {name} from its last checkpoint", name=run.name))

    @reports_errors(N_("serving the run"))
    def action_serve(self) -> None:
        run = self.view.run
        if run is not None:
            self.app.push_screen(ServeScreen(serve_target(run.name, self.home)))
