"""The Data and Chat screens driven from the keyboard, on the tiny model."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Input, Static

from engine.chat.backend import ChatTarget
from engine.paths import Home
from tests.data_files import write_chat_data, write_pair_data
from tests.tui_helpers import fixed_system, pace, type_text, wait_until
from tui.app import TanrenApp
from tui.screens.chat import ChatParamsScreen, ChatPane, ChatScreen
from tui.screens.data import REJECTED_STYLE, TRAINED_STYLE
from tui.screens.picker import Picker


async def test_data_check_reports_and_previews_with_trained_tokens_marked(home: Home, tiny_model_dir: Path,
                                                                           tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_chat_data(tmp_path / "chat.jsonl", examples=12)
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("2")
        screen = app.screen
        screen.query_one("#data-base", Input).value = str(tiny_model_dir)
        options = screen.query_one("#data-files")
        await wait_until(pilot, lambda: options.option_count >= 4, "the file list")
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert labels[:3] == ["sample · ja_en_chat.jsonl", "sample · ja_en_alpaca.json", "sample · heldout.jsonl"]
        assert "here · chat.jsonl" in labels
        await pilot.press("ctrl+o")
        for _ in range(labels.index("here · chat.jsonl")):
            await pilot.press("down")
        await pilot.press("enter")
        assert screen.query_one("#data-path", Input).value == "chat.jsonl"
        preview = screen.query_one("#data-preview", Static)
        await wait_until(pilot, lambda: str(preview.render()).strip(), "the preview")
        report = str(screen.query_one("#data-report", Static).render())
        assert "chat.jsonl: messages format" in report and "12 usable examples" in report
        assert "duplicates" in report  # 12 examples cycle through 6 questions
        shown = preview.content
        assert isinstance(shown, Text) and "日本の首都はどこですか？" in shown.plain
        trained = [shown.plain[span.start:span.end] for span in shown.spans if span.style == TRAINED_STYLE]
        assert "東京です。<|im_end|>" in trained  # the answer and its end-of-turn token, nothing else
        assert not any("日本の首都" in piece for piece in trained)


async def test_a_preference_file_previews_its_chosen_and_rejected_answers(home: Home, tiny_model_dir: Path,
                                                                         tmp_path: Path) -> None:
    path = write_pair_data(tmp_path / "pairs.jsonl", examples=12)
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("2")
        screen = app.screen
        screen.query_one("#data-base", Input).value = str(tiny_model_dir)
        screen.query_one("#data-path", Input).value = str(path)
        screen.action_check()
        preview = screen.query_one("#data-preview", Static)
        await wait_until(pilot, lambda: str(preview.render()).strip(), "the preview")
        assert "preference format (detected from line 1), 12 usable preference pairs" in str(
            screen.query_one("#data-report", Static).render())
        shown = preview.content
        marked = {style: [shown.plain[s.start:s.end] for s in shown.spans if s.style == style]
                  for style in (TRAINED_STYLE, REJECTED_STYLE)}
        assert shown.plain.startswith("chosen (desirable) answers are green, rejected (undesirable) ones red")
        assert "Paris.<|im_end|>" in marked[TRAINED_STYLE] and "Lyon.<|im_end|>" in marked[REJECTED_STYLE]
        assert shown.plain.count("What is the capital of France? (0)") == 1  # the prompt once, both answers after it


async def test_chat_streams_from_the_tiny_model_and_esc_stops_it(home: Home, tiny_model_dir: Path,
                                                                 one_torch_thread, monkeypatch) -> None:
    pace(monkeypatch, ChatTarget, "stream_chat", 0.05)  # 400 tokens: 20 s unless stopped
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, Picker), "the target picker")
        await pilot.press("shift+tab")  # from the list to the field for a typed target
        await type_text(pilot, str(tiny_model_dir))
        await pilot.press("enter")
        pane = screen.query_one("#pane-a", ChatPane)
        assert pane.spec.model == str(tiny_model_dir) and pane.spec.kind == "model"

        await pilot.press("ctrl+g")  # parameters: a long greedy answer, so there is time to stop it
        assert isinstance(app.screen, ChatParamsScreen)
        params = app.screen
        params.query_one("#field-generation-temperature", Input).value = "0"
        params.query_one("#field-generation-max-new-tokens", Input).value = "400"
        params.query_one("#field-generation-system-prompt", Input).value = "日本語で答えてください。"
        await pilot.press("ctrl+s")
        assert screen.params.temperature == 0 and screen.params.max_new_tokens == 400
        assert screen.params.system_prompt == "日本語で答えてください。"

        await type_text(pilot, "こんにちは")
        await pilot.press("enter")
        assert screen.answering
        # Streamed: the answer shows up piece by piece while it is still being written.
        seen: set[str] = set()
        await wait_until(pilot, lambda: seen.add(pane.answer_text) or len(seen - {""}) >= 3, "a streaming answer")
        assert screen.answering
        await pilot.press("escape")
        await wait_until(pilot, lambda: not screen.answering, "the answer to stop")
        assert [m.role for m in pane.history] == ["user", "assistant"]
        assert pane.history[0].content == "こんにちは" and pane.history[1].content == pane.answer_text
        assert all(pane.answer_text.startswith(text) for text in seen)
        note = str(pane.query(".chat-note").last().render())
        assert "(cancelled)" in note and "400 tokens" not in note

        # Side by side: the same model with the same seed answers the same (greedy) question alike.
        screen.params = screen.params.__class__(temperature=0, max_new_tokens=12)
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: isinstance(app.screen, Picker), "the second picker")
        await pilot.press("shift+tab")
        await type_text(pilot, str(tiny_model_dir))
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(screen.panes()) == 2, "the second pane")
        first, second = screen.panes()
        await type_text(pilot, "富士山")
        await pilot.press("enter")
        await wait_until(pilot, lambda: not screen.answering and len(second.history) == 2, "both answers",
                         timeout=600)
        assert second.history[1].content == first.history[-1].content != ""
