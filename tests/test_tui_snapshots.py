"""Screenshots of the main screens at 80x24 and 120x40, compared with the accepted ones in
tests/__snapshots__ (update after a deliberate change: pytest --snapshot-update, then look at them).

Everything on screen is fixed: runs with a written history, a machine that never changes, an
empty Hugging Face cache, paths relative to the working folder, no clocks and no pids."""

from __future__ import annotations

from pathlib import Path

import json

import pytest
from textual.widgets import DataTable, Input, OptionList, Static

from engine.chat.backend import GenerationStats
from engine.chat.pool import TargetSpec
from engine.config import GenerationConfig
from engine.i18n import load_catalog
from engine.paths import Home
from evals.evaluate import RESULTS_FILE
from tests.data_files import write_chat_data
from tests.tui_helpers import finished_run, fixed_system, wait_until
from tui.app import TanrenApp
from tui.screens.picker import Picker

SIZES = [(80, 24), (120, 40)]
STATS = GenerationStats(prompt_tokens=14, new_tokens=12, ttft_s=0.05, tokens_per_s=41.0, total_s=0.35, stop_reason="stop",
                        seed=1)
EVAL_RESULTS = {
    "run": "ja-chat-qlora", "time": "2026-01-05T09:30:00+00:00", "duration_s": 42.0,
    "dataset": {"path": "chat.jsonl", "split": "test", "sha256": "0123456789abcdef", "examples": 11},
    "settings": {"assistant_only": True, "metrics": ["perplexity", "rouge"]},
    "results": [
        {"label": "base", "role": "base", "model": "smollm2-135m-instruct", "adapter": None, "backend": "transformers",
         "metrics": {"perplexity": 12.5, "rouge1": 0.21, "rouge2": 0.08, "rougeL": 0.19}},
        {"label": "ja-chat-qlora", "role": "tuned", "model": "smollm2-135m-instruct", "adapter": "adapter",
         "backend": "transformers", "metrics": {"perplexity": 4.2, "rouge1": 0.48, "rouge2": 0.31, "rougeL": 0.45}},
    ],
}


@pytest.fixture
def stage(home: Home, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A working folder with a data file and the tiny model, two runs, and no hub cache."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    write_chat_data(work / "chat.jsonl", examples=12)
    (work / "tiny-llama").symlink_to(tiny_model_dir)
    finished_run(home, "ja-chat-lora", state="cancelled")
    tuned = finished_run(home, "ja-chat-qlora")
    tuned.adapter.mkdir()
    (tuned.adapter / "adapter_config.json").write_text("{}")  # enough to be listed as trained
    (tuned.path / RESULTS_FILE).write_text(json.dumps(EVAL_RESULTS, ensure_ascii=False), encoding="utf-8")
    return home


def app_for(home: Home, language: str = "en") -> TanrenApp:
    return TanrenApp(home, catalog=load_catalog(language), sample_system=fixed_system)


def steady_cursors(pilot) -> None:
    """A blinking cursor would be on or off depending on the moment of the screenshot."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False


async def _dashboard_ready(pilot) -> None:
    screen = pilot.app.screen
    await wait_until(pilot, lambda: screen.query_one("#runs", DataTable).row_count == 2
                     and screen.query_one("#models", DataTable).row_count == 1
                     and "CPU" in str(screen.query_one("#system", Static).render()), "the dashboard")


@pytest.mark.parametrize("size", SIZES)
def test_dashboard(stage: Home, snap_compare, size) -> None:
    assert snap_compare(app_for(stage), terminal_size=size, run_before=_dashboard_ready)


def test_dashboard_light_theme(stage: Home, snap_compare) -> None:
    async def light(pilot) -> None:
        await _dashboard_ready(pilot)
        await pilot.press("ctrl+t")

    assert snap_compare(app_for(stage), run_before=light)


async def check_data(pilot) -> None:
    await pilot.press("2")
    screen = pilot.app.screen
    await wait_until(pilot, lambda: screen.query_one("#data-files", OptionList).option_count == 4, "files")
    await pilot.press("tab", "tab", "tab", "ctrl+a", "ctrl+k", *"tiny-llama", "ctrl+o", "end", "enter")
    await wait_until(pilot, lambda: str(screen.query_one("#data-preview", Static).render()).strip(), "preview")
    screen.set_focus(None)


async def watch_run(pilot) -> None:
    await pilot.press("3")
    view = pilot.app.screen.view
    await wait_until(pilot, lambda: view.status is not None and view.progress.done == 30, "the history")
    pilot.app.screen.set_focus(None)


async def open_form(pilot) -> None:
    await pilot.press("3", "n")
    steady_cursors(pilot)


async def converse(pilot) -> None:
    """Two answers beside each other, Japanese (wide) text included; written here, not generated."""
    await pilot.press("4")
    screen = pilot.app.screen
    await pilot.press("ctrl+b")  # side by side with the first target listed: the built-in base
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, Picker), "the target picker")
    await pilot.press("down", "enter")
    await wait_until(pilot, lambda: len(screen.panes()) == 2, "the second pane")
    assert screen.panes()[1].spec == TargetSpec("base", "smollm2-135m-instruct")
    for pane, answer in zip(screen.panes(), ("東京です。日本の首都は東京都です。", "The capital of Japan is Tokyo (東京).")):
        pane.add_user("日本の首都はどこですか？")
        pane.add_delta(answer)
        pane.finish("日本の首都はどこですか？", STATS.summary(pilot.app.catalog.gettext), GenerationConfig(seed=1))
    steady_cursors(pilot)
    await pilot.pause()


async def show_evals(pilot) -> None:
    await pilot.press("5")
    await wait_until(pilot, lambda: pilot.app.screen.query_one("#eval-results", DataTable).row_count == 2, "rows")
    steady_cursors(pilot)


async def show_export(pilot) -> None:
    await pilot.press("6")
    steady_cursors(pilot)


# Every screen as the snapshots show it (tests/test_tui_snapshots_ja.py shows them in Japanese).
SCREENS = {"dashboard": _dashboard_ready, "data": check_data, "train": watch_run, "new_run": open_form,
           "chat": converse, "evals": show_evals, "export": show_export}


@pytest.mark.parametrize("size", SIZES)
def test_data_check_and_preview(stage: Home, snap_compare, size) -> None:
    assert snap_compare(app_for(stage), terminal_size=size, run_before=check_data)


@pytest.mark.parametrize("size", SIZES)
def test_train_live_view(stage: Home, snap_compare, size) -> None:
    assert snap_compare(app_for(stage), terminal_size=size, run_before=watch_run)


def test_new_run_form(stage: Home, snap_compare) -> None:
    assert snap_compare(app_for(stage), run_before=open_form)


@pytest.mark.parametrize("size", SIZES)
def test_chat_side_by_side(stage: Home, snap_compare, size) -> None:
    assert snap_compare(app_for(stage), terminal_size=size, run_before=converse)


@pytest.mark.parametrize("size", SIZES)
def test_evals_before_and_after(stage: Home, snap_compare, size) -> None:
    assert snap_compare(app_for(stage), terminal_size=size, run_before=show_evals)


def test_export_ready(stage: Home, snap_compare) -> None:
    assert snap_compare(app_for(stage), run_before=show_export)
