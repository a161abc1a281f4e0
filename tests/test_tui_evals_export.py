"""The Evals and Export screens from the keyboard, on a run of the tiny model with an adapter."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from engine.chat.transformers_backend import TransformersBackend
from engine.events import FINAL_STATES
from engine.paths import Home
from evals.evaluate import RESULTS_FILE
from export.jobs import list_exports
from export.manifest import read_manifest
from tests.export_runs import run_with_adapter
from tests.tui_helpers import fill, fixed_system, pace, wait_until
from tui.app import TanrenApp
from tui.widgets.log_lines import LogLines
from tui.screens.evals import EvalsScreen
from tui.screens.export import ExportScreen


@pytest.fixture
def tuned(home: Home, gguf_model_dir: Path):
    return run_with_adapter(home, gguf_model_dir, "tuned")


async def test_evals_measure_before_and_after_and_esc_stops(home: Home, tuned, monkeypatch) -> None:
    pace(monkeypatch, TransformersBackend, "greedy_answers", 0.5)  # every held-out answer: many seconds unless stopped
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(130, 30)) as pilot:  # wide enough for every column (narrower drops some)
        await pilot.press("5")
        screen = app.screen
        assert isinstance(screen, EvalsScreen)
        assert screen.query_one("#eval-target", Input).value == "tuned"  # the newest trained run
        await fill(pilot, "eval-limit", "3")
        await fill(pilot, "eval-max-new-tokens", "8")
        await pilot.press("ctrl+r")
        table = screen.query_one("#eval-results", DataTable)
        await wait_until(pilot, lambda: not screen.running and table.row_count == 2, "the results")
        assert [str(c.label) for c in table.columns.values()] == ["model", "backend", "perplexity", "ROUGE-1",
                                                                 "ROUGE-2", "ROUGE-L"]
        assert [table.get_row_at(i)[0] for i in range(2)] == ["base", "tuned (fine-tuned)"]
        assert "%)" in table.get_row_at(1)[2]  # the perplexity change against the base
        assert "3 examples of" in str(screen.query_one("#eval-data-line", Static).render())
        saved = json.loads((tuned.path / RESULTS_FILE).read_text(encoding="utf-8"))
        assert [r["role"] for r in saved["results"]] == ["base", "tuned"]

        # A long one (every held-out example, long answers) stopped with Esc writes nothing.
        await fill(pilot, "eval-limit", "")
        await fill(pilot, "eval-max-new-tokens", "256")
        await pilot.press("ctrl+r")
        what = screen.query_one("#eval-what", Static)
        await wait_until(pilot, lambda: "answers" in str(what.render()), "ROUGE answers in progress")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not screen.running, "the stop")
        assert "cancelled" in str(screen.query_one("#eval-status", Static).render())
        assert json.loads((tuned.path / RESULTS_FILE).read_text(encoding="utf-8")) == saved


async def test_one_key_export_shows_progress_and_the_verification(home: Home, tuned) -> None:
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("6")
        screen = app.screen
        assert isinstance(screen, ExportScreen)
        assert screen.query_one("#export-run", Input).value == "tuned"
        await fill(pilot, "export-quants", "q8_0")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.export is not None, "the export to start")
        stages: set[str] = set()
        stage = screen.query_one("#export-stage", Static)
        await wait_until(pilot, lambda: stages.add(str(stage.render())) or (
            screen.export.status().state == "done" and not screen.alive and "verified" in str(stage.render())),
            "the export to finish", timeout=900)
        assert any(text.startswith("stage ") and "quantizing to Q8_0" in text for text in stages)
        table = screen.query_one("#export-verification", DataTable)
        assert [table.get_row_at(i)[0] for i in range(table.row_count)] == ["merged", "f16", "q8_0"]
        assert all(table.get_row_at(i)[-1] == "ok" for i in range(table.row_count))
        (export,) = list_exports("tuned", home)
        assert read_manifest(export.out)["status"] == "passed"

    # Reopened later, the workbench shows the export with its whole log and its verification.
    again = TanrenApp(home, sample_system=fixed_system)
    async with again.run_test(size=(100, 40)) as pilot:
        await pilot.press("6")
        screen = again.screen
        table = screen.query_one("#export-verification", DataTable)
        await wait_until(pilot, lambda: table.row_count == 3, "the verification")
        log = "\n".join(screen.query_one("#export-log", LogLines).messages)
        assert "merging tuned" in log and "verifying against the merged model" in log and "[done]" in log


@pytest.mark.real_model
async def test_one_key_exports_a_trained_run_of_the_built_in_model_with_the_defaults(home: Home,
                                                                                     default_model_dir: Path) -> None:
    """The first export anyone makes: default settings, one key, and it must pass (the 135M model
    gets Q8_0 alone, which verification allows, instead of a Q4_K_M that fails it)."""
    from engine.config import RunConfig, apply_overrides
    from engine.data import SAMPLE_CHAT
    from engine.runs.rundir import create_run
    from engine.train import worker

    config = apply_overrides(RunConfig(), [f"model.base={default_model_dir}", f"data.path={SAMPLE_CHAT}",
                                           "name=first", "training.max_steps=2", "data.max_length=128",
                                           "training.micro_batch_size=2", "training.gradient_accumulation=1"])
    previous = signal.getsignal(signal.SIGTERM)  # the worker handles `tanren stop` with its own
    try:
        assert worker.main([str(create_run(config, home).path)]) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        screen = app.screen
        assert screen.query_one("#export-run", Input).value == "first"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.export is not None, "the export to start")
        stage = screen.query_one("#export-stage", Static)
        await wait_until(pilot, lambda: screen.export.status().state in FINAL_STATES and not screen.alive,
                         "the export to finish", timeout=900)
        await wait_until(pilot, lambda: "verified" in str(stage.render()), "the verdict on screen")
        (export,) = list_exports("first", home)
        manifest = read_manifest(export.out)
        assert export.status().state == "done" and manifest["status"] == "passed", manifest.get("error")
        assert manifest["export"]["quants"] == ["q8_0"] and manifest["modelfile"]["from"] == "q8_0"
