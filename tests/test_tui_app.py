"""The workbench shell: screens by key, themes, the command palette, errors, fast start-up."""

from __future__ import annotations

import json
import subprocess
import sys

from textual.command import CommandPalette
from textual.widgets import DataTable, Input

from engine.models.registry import DEFAULT_MODEL
from engine.paths import Home
from tests.conftest import REPO
from tests.tui_helpers import finished_run, fixed_system, wait_until
from tui.app import TanrenApp
from tui.commands import BindingsProvider
from tui.nav import PLACES
from tui.screens.answer_edit import EditAnswerScreen
from tui.screens.chat import ChatParamsScreen, ChatScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.data import DataScreen
from tui.screens.evals import EvalsScreen
from tui.screens.export import ExportScreen
from tui.screens.new_run import NewRunScreen
from tui.screens.picker import Picker
from tui.screens.train import TrainScreen

SCREENS = (DashboardScreen, DataScreen, TrainScreen, ChatScreen, EvalsScreen, ExportScreen)
MODALS = (NewRunScreen, ChatParamsScreen, EditAnswerScreen, Picker)


async def test_every_screen_is_one_key_away_and_q_quits(home: Home) -> None:
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
        for place, screen in zip(PLACES, SCREENS):
            await pilot.press("escape", place.key)  # escape leaves a text field, so digits switch screens
            assert isinstance(app.screen, screen), place
        await pilot.press("f2")  # F-keys switch even while typing in the chat prompt
        assert isinstance(app.screen, DataScreen)
        await pilot.press("ctrl+t")
        assert app.theme == "textual-light"
        await pilot.press("ctrl+t")
        assert app.theme == "textual-dark"
        await pilot.press("escape", "q")
    assert app.return_code == 0


async def test_the_dashboard_lists_system_use_runs_and_models(home: Home) -> None:
    finished_run(home, "ja-run")
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = app.screen.query_one("#runs", DataTable)
        models = app.screen.query_one("#models", DataTable)
        await wait_until(pilot, lambda: runs.row_count == 1 and models.row_count >= 1, "the tables")
        last_loss = f"{2.0 / (1 + 30 / 8) + 0.4:.4f}"  # as finished_run wrote it
        assert [str(cell) for cell in runs.get_row_at(0)[:4]] == ["ja-run", "done", "30/30", last_loss]
        assert models.get_row_at(0)[0] == DEFAULT_MODEL
        system = str(app.screen.query_one("#system").render())
        assert "CPU 37% of 16" in system and "GPU0 NVIDIA H100 80GB HBM3 93% · 61.5/80.0 GiB" in system
        await pilot.press("o")  # opens the run under the cursor on the Train screen
        assert isinstance(app.screen, TrainScreen)
        assert app.screen.view.run.name == "ja-run"


def test_every_binding_has_an_id_and_a_description() -> None:
    for owner in (TanrenApp, *SCREENS, *MODALS):
        for binding in owner.BINDINGS:
            assert binding.id and binding.description, (owner.__name__, binding)


async def test_the_command_palette_lists_every_action_of_the_screen(home: Home) -> None:
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        provider = BindingsProvider(app.screen)
        names = {name for name, _help, _run in provider._commands()}
        assert {"New run", "Open run", "Theme", "Quit", "Dashboard", "Data", "Train", "Chat", "Evals",
                "Export"} <= names
        assert not {"Stop", "Resume"} & names  # offered only when there is a run they apply to
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"new run", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen), "the new-run form")


async def test_errors_become_notifications_and_the_app_stays_up(home: Home, tmp_path) -> None:
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        app.screen.query_one("#data-path", Input).value = str(tmp_path / "missing.jsonl")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app._notifications, "a notification")
        (note,) = list(app._notifications)
        assert note.severity == "error" and "missing.jsonl does not exist" in note.message
        assert "Traceback" not in note.message
        assert isinstance(app.screen, DataScreen)


async def test_a_damaged_run_folder_is_reported_not_a_crash(home: Home) -> None:
    finished_run(home, "fine")
    damaged = finished_run(home, "damaged")
    damaged.config_file.write_text("model: [unclosed\n", encoding="utf-8")
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = app.screen.query_one("#runs", DataTable)
        await wait_until(pilot, lambda: runs.row_count == 2, "both runs listed")
        states = {runs.get_row_at(i)[0]: str(runs.get_row_at(i)[1]) for i in range(2)}
        assert states == {"damaged": "unreadable", "fine": "done"}
        await pilot.press("3")  # the newest run is the damaged one: a notification says why
        await wait_until(pilot, lambda: app._notifications, "a notification")
        assert any("not valid YAML" in n.message and "config.yaml" in n.message for n in app._notifications)
        app.screen.show_run("fine")  # and the rest still works
        await wait_until(pilot, lambda: app.screen.view.status is not None, "the fine run")


def test_start_up_imports_no_model_library() -> None:
    code = ("import json, sys, tui.app, tui.entry\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'transformers', 'trl', 'peft', 'datasets', 'llama_cpp', 'numpy'})))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []
