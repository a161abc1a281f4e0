"""Judging answers in the Chat screen, one key each at 80x24: mark, edit and pick, and the exact
records they write."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, OptionList, Static, TextArea

from engine.chat.collect import Dataset, edit, rate
from engine.chat.pool import TargetSpec, chat_targets
from engine.config import GenerationConfig
from engine.data import check_file
from engine.paths import Home
from tests import export_runs
from tests.judged import EDITED, SETTINGS, assistant, check_good_then_edit, records, user
from tests.test_chat_collect import TURN
from tests.tiny_model import make_adapter
from tests.tui_helpers import fixed_system, type_text, wait_until
from tui.app import TanrenApp
from tui.commands import BindingsProvider
from tui.screens.answer_edit import EditAnswerScreen
from tui.screens.chat import ChatPane, ChatScreen
from tui.screens.picker import Picker

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PARAMS = GenerationConfig(**SETTINGS)


SINGLE_KEYS = "  ^y good  ^n bad  ^r edit  ^s dataset"
COMPARE_KEYS = "  f7 ◀ better  f8 better ▶  ^s dataset"


def line(screen: ChatScreen, which: str) -> str:
    return str(screen.query_one(f"#chat-{which}", Static).render()).strip()


def palette(screen: ChatScreen) -> set[str]:
    """What the command palette offers: every judgement that applies, by name."""
    return {name for name, _help, _run in BindingsProvider(screen)._commands()}


async def ask(pilot, screen: ChatScreen, text: str) -> None:
    await type_text(pilot, text)
    await pilot.press("enter")
    await wait_until(pilot, lambda: not screen.answering and all(p.turn for p in screen.panes()), f"answers to {text}")


async def test_mark_edit_and_pick_answers_with_one_key_each(home: Home, tiny_model_dir: Path) -> None:
    run = export_runs.run_with_adapter(home, tiny_model_dir, "tuned")
    make_adapter(tiny_model_dir, run.adapter, seed=1)  # random B: the adapter answers unlike its base
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        left = screen.query_one("#pane-a", ChatPane)
        left.set_spec(TargetSpec("model", str(tiny_model_dir)))
        screen.params = PARAMS
        assert line(screen, "dataset") == "dataset chat: 0 SFT · 0 pairs · 0 KTO" + SINGLE_KEYS

        await ask(pilot, screen, "hello")
        assert {"Good", "Bad", "Edit", "Dataset"} <= palette(screen) and "◀ Better" not in palette(screen)
        await pilot.press("ctrl+y")
        assert line(screen, "dataset") == "dataset chat: 0 SFT · 0 pairs · 1 KTO" + SINGLE_KEYS
        assert line(screen, "status") == "marked good → dataset chat"
        await pilot.press("ctrl+n")  # one judgement per answer: a second key writes nothing
        await wait_until(pilot, lambda: app._notifications, "the refusal")
        assert "this answer is already judged (good)" in list(app._notifications)[-1].message
        first = left.history[1].content

        await ask(pilot, screen, "again")
        second = left.history[3].content
        await pilot.press("ctrl+r")
        editor = app.screen
        assert isinstance(editor, EditAnswerScreen) and editor.query_one(TextArea).text == second
        await pilot.press("f7")  # the editor's own key: select all, then type over it
        await type_text(pilot, "Paris.")
        await pilot.press("enter")
        await type_text(pilot, "It is Paris.")
        await pilot.press("ctrl+s")
        assert app.screen is screen
        assert left.history[3].content == EDITED  # the conversation goes on from the answer wanted
        assert line(screen, "dataset") == "dataset chat: 1 SFT · 1 pairs · 1 KTO" + SINGLE_KEYS
        assert line(screen, "status") == "edited answer kept → dataset chat"

        await pilot.press("ctrl+s")  # the dataset: a new one, typed
        await wait_until(pilot, lambda: isinstance(app.screen, Picker), "the dataset picker")
        await pilot.press("shift+tab")
        await type_text(pilot, "other")
        await pilot.press("enter")
        assert line(screen, "dataset") == "dataset other: 0 SFT · 0 pairs · 0 KTO" + SINGLE_KEYS

        targets = chat_targets(home)  # compare with the adapter, picked from the list by keys
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: isinstance(app.screen, Picker), "the second picker")
        await pilot.press(*["down"] * (1 + targets.index(TargetSpec("adapter", str(tiny_model_dir), "tuned"))))
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(screen.panes()) == 2, "the second pane")
        assert line(screen, "dataset") == "dataset other: 0 SFT · 0 pairs · 0 KTO" + COMPARE_KEYS
        await ask(pilot, screen, "next")
        assert {"◀ Better", "Better ▶", "Dataset"} <= palette(screen) and "Good" not in palette(screen)
        right = screen.query_one("#pane-b", ChatPane)
        await pilot.press("ctrl+y")  # not offered in compare mode: writes nothing
        await pilot.press("f8")
        assert line(screen, "dataset") == "dataset other: 0 SFT · 1 pairs · 0 KTO" + COMPARE_KEYS
        assert line(screen, "status") == "the right answer preferred → dataset other"
        third, tuned = left.history[-1].content, right.history[-1].content

        await pilot.press("ctrl+b")  # closing the second pane brings back the keys for one answer
        await wait_until(pilot, lambda: isinstance(app.screen, Picker), "the second picker")
        await pilot.press("enter")
        await wait_until(pilot, lambda: line(screen, "dataset").endswith(SINGLE_KEYS), "the keys for one answer")
        assert len(screen.panes()) == 1

    check_good_then_edit(home.root / "datasets" / "chat", first, second, "tiny-llama")
    other = home.root / "datasets" / "other"
    assert records(other / "pairs.jsonl") == [{
        "prompt": [{"role": "system", "content": "丁寧に"}, user("next")], "chosen": [assistant(tuned)],
        "rejected": [assistant(third)], "meta": {"judgement": "prefer", "generation": SETTINGS,
                                                 "models": {"chosen": "tuned on tiny-llama", "rejected": "tiny-llama"}}}]
    assert not (other / "kto.jsonl").exists() and not check_file(other / "pairs.jsonl").errors


async def test_the_data_screen_lists_collected_datasets(home: Home, tiny_model_dir: Path) -> None:
    dataset = Dataset.open(home, "capitals")
    rate(dataset, TURN, True)
    edit(dataset, TURN, "Paris.")
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        screen = app.screen
        screen.query_one("#data-base", Input).value = str(tiny_model_dir)
        options = screen.query_one("#data-files", OptionList)
        await wait_until(pilot, lambda: options.option_count >= 6, "the file list")
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert labels[3:6] == ["dataset capitals · sft.jsonl", "dataset capitals · pairs.jsonl",
                               "dataset capitals · kto.jsonl"]
        await pilot.press("ctrl+o", "down", "down", "down", "down", "enter")  # the pairs
        report = screen.query_one("#data-report", Static)
        await wait_until(pilot, lambda: "usable" in str(report.render()), "the check")
        assert "pairs.jsonl: preference format (detected from line 1), 1 usable preference pair" in str(report.render())
