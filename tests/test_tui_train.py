"""Training from the workbench: the form, the live view, stop, resume, quitting and reattaching,
and two workbenches on the same runs. These start real (tiny) training runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Select, Static

from engine.jobs import JobError
from engine.paths import Home
from engine.runs.rundir import open_run
from engine.runs.training import resume_training
from tests.data_files import write_chat_data
from tests.tui_helpers import fill, finished_run, fixed_system, wait_until
from tui.app import TanrenApp
from tui.widgets.log_lines import LogLines
from tui.screens.new_run import NewRunScreen
from tui.screens.train import TrainScreen
from tui.widgets.loss_plot import LossPlot

STEPS = 16


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    return write_chat_data(tmp_path / "chat.jsonl")


async def test_train_from_the_form_watch_stop_resume_and_reattach(home: Home, tiny_model_dir: Path,
                                                                  data_file: Path) -> None:
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("3", "n")
        assert isinstance(app.screen, NewRunScreen)
        form = app.screen
        for field, text in (("field-name", "ui-run"), ("field-model-base", str(tiny_model_dir)),
                            ("field-data-path", str(data_file)), ("field-training-max-steps", str(STEPS)),
                            ("field-training-save-steps", "2"), ("field-data-max-length", "128"),
                            ("field-training-micro-batch-size", "2"), ("field-training-gradient-accumulation", "1"),
                            ("field-training-learning-rate", "nonsense")):
            await fill(pilot, field, text)
        await pilot.press("ctrl+s")
        # A bad value is shown in the form, with the cursor on its field; nothing is started.
        await wait_until(pilot, lambda: "learning_rate" in str(form.query_one(".form-error").render()), "the error")
        assert form.focused.id == "field-training-learning-rate" and not home.runs.exists()
        await fill(pilot, "field-training-learning-rate", "0.01")
        assert form.query_one("#field-adapter-method", Select).value == "lora"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, TrainScreen), "the run to start")

        view = app.screen.view
        run = open_run("ui-run", home)
        assert view.run == run
        # Progress, ETA and loss arrive while the run trains.
        await wait_until(pilot, lambda: len(view.progress.losses) >= 3, "three logged steps")
        steps = str(view.query_one("#run-steps", Static).render())
        assert f"/{STEPS} steps" in steps and "ETA" in steps
        assert "loss" in str(view.query_one("#run-metrics", Static).render())
        plot = view.query_one("#run-plot", LossPlot)
        assert "⠀" in str(plot.render())  # braille cells: the plot is drawn, not its "no loss yet" text

        await pilot.press("s")
        await wait_until(pilot, lambda: view.status is not None and view.status.state == "cancelled", "the stop")
        stopped_at = max(view.progress.losses)
        assert stopped_at < STEPS
        assert "[cancelled]" in "\n".join(view.query_one("#run-log", LogLines).messages)

        # Its process saves the checkpoint and ends a moment after it records the stop; then it can resume.
        await wait_until(pilot, lambda: app.screen.check_action("resume", ()) is True, "resume to be possible")
        # The footer follows the run's state: resume is offered once the process has ended.
        await wait_until(pilot, lambda: any(key.action == "resume" and not key.has_class("-disabled")
                                            for key in app.screen.query("FooterKey")), "the footer to offer resume")
        await pilot.press("r")
        await wait_until(pilot, lambda: view.status is not None and view.status.state == "running", "the resume")
        await pilot.press("q")  # quitting the workbench leaves the run going
    assert run.is_alive()

    # A new workbench (say, after the SSH session dropped) reattaches and shows the whole history.
    again = TanrenApp(home, sample_system=fixed_system)
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        view = again.screen.view
        assert view.run == run
        await wait_until(pilot, lambda: view.status is not None and view.status.state == "done", "the run to finish")
        await wait_until(pilot, lambda: max(view.progress.losses, default=0) == STEPS, "the last step")
        assert sorted(view.progress.losses) == list(range(1, STEPS + 1))
        log = "\n".join(view.query_one("#run-log", LogLines).messages)
        assert "[cancelled]" in log and "[done]" in log  # before and after the stop
        assert f"{STEPS}/{STEPS} steps" in str(view.query_one("#run-steps", Static).render())


async def test_two_workbenches_share_the_runs_without_stepping_on_each_other(home: Home, tiny_model_dir: Path,
                                                                             data_file: Path) -> None:
    first, second = TanrenApp(home, sample_system=fixed_system), TanrenApp(home, sample_system=fixed_system)
    async with first.run_test(size=(100, 40)) as one, second.run_test(size=(100, 40)) as two:
        await one.press("3", "n")
        form = first.screen
        for field, value in (("field-name", "shared"), ("field-model-base", str(tiny_model_dir)),
                             ("field-data-path", str(data_file)), ("field-training-max-steps", "200"),
                             ("field-data-max-length", "128")):
            form.query_one(f"#{field}", Input).value = value
        await one.press("ctrl+s")
        await wait_until(one, lambda: isinstance(first.screen, TrainScreen), "the run to start")
        await two.press("3")
        await two.press("o", "enter")  # the second workbench opens the same run from its list
        await wait_until(two, lambda: isinstance(second.screen, TrainScreen), "the picked run to open")
        view_one, view_two = first.screen.view, second.screen.view
        await wait_until(two, lambda: view_two.run is not None and view_two.run.name == "shared", "the second view")
        await wait_until(two, lambda: view_two.status is not None and view_two.status.state == "running", "running")
        # Resuming a run that the other workbench started, while it runs, is refused, not doubled.
        assert second.screen.check_action("resume", ()) is None
        with pytest.raises(JobError, match="already running"):
            resume_training(view_two.run)
        # Either one stops it; both see it stop.
        await two.press("s")
        for pilot, view in ((one, view_one), (two, view_two)):
            await wait_until(pilot, lambda: view.status is not None and view.status.state == "cancelled", "the stop")
        assert len(list(home.runs.iterdir())) == 1
        assert view_one.progress.losses == view_two.progress.losses


async def test_stop_and_resume_apply_only_to_runs_they_can(home: Home) -> None:
    finished_run(home, "stopped", state="cancelled")
    finished_run(home, "finished")
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        screen = app.screen
        await wait_until(pilot, lambda: screen.view.status is not None, "the status")
        assert screen.view.run.name == "finished"  # the newest run is shown first
        assert screen.check_action("stop", ()) is None and screen.check_action("resume", ()) is None
        screen.show_run("stopped")
        await wait_until(pilot, lambda: screen.view.status is not None, "the status")
        assert screen.check_action("stop", ()) is None and screen.check_action("resume", ()) is True
