"""The workbench speaks through the catalog: in the pseudo language every catalog message is shown
as ⟦message⟧, so text outside the brackets bypassed the catalog, unless it is data, a name or a
number on the reviewed allowlist below. And at 80x24 long lines are shown whole (wrapped).

Scope: the workbench (tui/), the engine's text it shows included (reports, event lines, errors,
field help); tests/test_cli_i18n.py scans the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from engine.events import Artifact, Status
from engine.i18n import load_catalog
from engine.paths import Home
from engine.settings import read_settings
from engine.textwidth import display_width, shorten_middle
from export.jobs import ExportRequest, create_export
from tests.pseudo_scan import allowlist, outside_catalog
from tests.test_tui_snapshots import SCREENS, app_for, stage  # noqa: F401 - stage is a fixture
from tests.tui_helpers import finished_run, start_line, wait_until
from tui.app import RESTART, TanrenApp
from tui.widgets.log_lines import LogLines

# Widgets that show data: the records of a data file, and the conversation.
DATA = {
    "#data-preview": "the records of the data file, as the model sees them (its legend is scanned with the report)",
    ".chat-user, .chat-answer": "the conversation",
}
ALLOWED = allowlist(
    r"\^?[a-z]|esc|⏎|f\d+",  # keys as the footer shows them
    r"ja-chat-q?lora|smollm2-135m-instruct|tiny-llama|built-in|transformers",  # runs, models, backends
    r"base|\(fine-tuned\)|on",  # the engine's labels of models: eval rows, chat targets ("RUN on BASE")
    r"chat|▼|━+|[◀▶]|🔎",  # the sample's folder, widgets' marks
)


async def scan(pilot) -> list[str]:
    screen = pilot.app.screen
    for below in pilot.app.screen_stack:  # a modal screen shows the screens below it
        for selector in DATA:
            for widget in below.query(selector):
                widget.styles.visibility = "hidden"
    await pilot.pause()
    # the compositor's own rendering of the screen: what a terminal would show, row by row
    return outside_catalog("\n".join(strip.text for strip in screen._compositor.render_strips()), ALLOWED)


async def press(pilot, *keys: str) -> None:
    await pilot.press(*keys)
    await pilot.pause(0.3)  # a pushed screen composes, the palette lists its commands


# Besides the screens of the snapshots: the modal screens over them, and Textual's command palette.
MODALS = {
    "open_run_picker": lambda pilot: press(pilot, "3", "o"),
    "chat_parameters": lambda pilot: press(pilot, "4", "ctrl+g"),
    "command_palette": lambda pilot: press(pilot, "3", "ctrl+p"),
}


@pytest.mark.parametrize("screen", [*SCREENS, *MODALS])
async def test_every_screen_shows_only_catalog_text_names_and_data(stage: Home, screen: str) -> None:  # noqa: F811
    app = app_for(stage, "pseudo")
    async with app.run_test(size=(200, 50)) as pilot:
        await {**SCREENS, **MODALS}[screen](pilot)
        left = await scan(pilot)
        assert left == [], sorted(set(left))


async def test_at_80x24_a_long_log_line_wraps_whole(stage: Home) -> None:  # noqa: F811
    line = start_line(30).translate(load_catalog("ja").gettext)
    async with app_for(stage, "ja").run_test(size=(80, 24)) as pilot:
        await SCREENS["train"](pilot)
        log = pilot.app.screen.query_one("#run-log", LogLines)
        await pilot.pause()
        assert all(strip.cell_length <= log.scrollable_content_region.width for strip in log.lines)
        assert line.replace(" ", "") in "".join(strip.text.replace(" ", "") for strip in log.lines)


async def test_at_80x24_a_long_export_path_is_shown_whole(stage: Home, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "exports" / "a-folder-name-long-enough-to-wrap" / "ja-chat-qlora"
    path = str(out / "ja-chat-qlora-Q8_0.gguf")
    export = create_export(ExportRequest(run="ja-chat-qlora", name="e1", out=str(out), quants=("q8_0",)), stage)
    export.events.path.write_text(Artifact(path=path, role="gguf").to_json() + "\n"
                                  + Status("done", "exported", time=2.0).to_json() + "\n", encoding="utf-8")
    export.set_status("done", "exported")
    async with app_for(stage, "ja").run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        log = pilot.app.screen.query_one("#export-log", LogLines)
        await wait_until(pilot, lambda: any(path in line for line in log.messages), "the export's log")
        await pilot.pause()
        shown = [strip.text.rstrip() for strip in log.lines]
        assert len(path) > log.scrollable_content_region.width and max(len(row) for row in shown) <= 78
        assert path in "".join(shown)


def test_the_scan_finds_text_that_bypasses_the_catalog() -> None:
    assert outside_catalog("⟦Runs⟧ ja-chat-lora 0.8211 ⟦started ⟦x⟧⟧ Stop ⟦cut", ALLOWED) == ["Stop", "⟦cut"]


@pytest.mark.parametrize(("text", "width", "shown"), [
    ("/home/user/models/Qwen2.5-7B-Instruct", 24, "/ho…/Qwen2.5-7B-Instruct"),
    ("/a/b/c.gguf", 30, "/a/b/c.gguf"),
    ("日本語のとても長いモデルの名前です", 15, "日本語…名前です"),  # 15 cells: Japanese counts double
])
def test_a_long_text_is_shortened_in_the_middle_keeping_its_name(text: str, width: int, shown: str) -> None:
    assert shorten_middle(text, width) == shown and display_width(shown) <= width


async def test_at_80x24_a_long_base_path_keeps_its_name_on_the_dashboard(home: Home, tmp_path: Path
                                                                       ) -> None:
    base = tmp_path / "a-folder-of-models-with-a-long-name" / "Qwen2.5-7B-Instruct-ja"
    base.mkdir(parents=True)
    finished_run(home, "long-base", base=str(base))
    async with app_for(home, "ja").run_test(size=(80, 24)) as pilot:
        table = pilot.app.screen.query_one("#runs", DataTable)
        await wait_until(pilot, lambda: table.row_count == 1, "the run")
        shown = str(table.get_row_at(0)[5])
        assert shown.startswith(str(base)[:3]) and shown.endswith("…/Qwen2.5-7B-Instruct-ja")
        assert sum(column.get_render_width(table) for column in table.columns.values()) <= 78


async def test_f9_saves_the_other_language_and_reopens_the_workbench(home: Home) -> None:
    app = app_for(home, "en")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f9")
        await pilot.pause()
    assert app.return_value == RESTART and read_settings(home).ui.language == "ja"
    assert TanrenApp(home).catalog.language == "ja"  # the settings file comes before TANREN_LANG=en
