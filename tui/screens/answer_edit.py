"""Edit the last answer into the one wanted: a small editor over the chat, Ctrl+S keeps the text."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TextArea

from engine.i18n import N_
from tui.i18n import Localized


class EditAnswerScreen(Localized, ModalScreen[str | None]):
    """Dismissed with the edited answer, or None."""

    CSS_PATH = "answer_edit.tcss"
    BINDINGS = [
        Binding("ctrl+s", "save", N_("Keep"), id="edit_answer.keep",
                tooltip=N_("write the edited answer (an SFT conversation and a pair where it beats the original)")),
        Binding("escape", "cancel", N_("Cancel"), id="edit_answer.cancel", tooltip=N_("close, write nothing")),
    ]

    def __init__(self, answer: str) -> None:
        super().__init__()
        self.answer = answer

    def compose(self) -> ComposeResult:
        with Vertical(classes="edit-answer"):
            yield Static(self._("The answer you wanted (Ctrl+S keeps it, Esc cancels)"), classes="section-title")
            yield TextArea(self.answer, id="edit-answer-text", soft_wrap=True, compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        text = self.query_one(TextArea)
        text.focus()
        text.move_cursor(text.document.end)  # most edits finish or fix the end of an answer

    def action_save(self) -> None:
        self.dismiss(self.query_one(TextArea).text)

    def action_cancel(self) -> None:
        self.dismiss(None)
