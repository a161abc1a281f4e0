"""Chat: stream answers from a base, an adapter, a merged model or a GGUF file, one target or
two side by side, in a worker thread; Esc stops an answer between two tokens. One key judges
the last answer (good, bad, edit; in compare mode the better side) into a dataset to train on."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Static

from engine.chat.collect import Dataset, Turn, default_dataset, list_datasets
from engine.chat.judge import Judge
from engine.chat.pool import TargetPool, TargetSpec, chat_targets, run_spec, spec_for
from engine.config import GenerationConfig, RunConfig, apply_overrides
from engine.errors import TanrenError
from engine.i18n import N_
from engine.messages import Message as ChatMessage
from engine.models.registry import DEFAULT_MODEL
from engine.phrases import in_language
from engine.runs.rundir import list_runs
from engine.textwidth import pad
from tui.errors import reports_errors
from tui.i18n import Localized
from tui.screens.answer_edit import EditAnswerScreen
from tui.screens.base import TanrenScreen
from tui.screens.form import FormField, FormScreen, form_values
from tui.screens.picker import Picked, Picker

NO_TARGET = "none"
# engine.chat.pool.KINDS, which the engine keeps in English, marked for the catalog here
TARGET_KINDS = (N_("base"), N_("adapter"), N_("merged"), N_("gguf"), N_("model"), N_("server"))
JUDGING = ("rate", "edit", "prefer", "dataset")  # the actions of the keys shown on the dataset line
USER_STYLE, ANSWER_STYLE, NOTE_STYLE = "bold", "", "italic dim"


def default_target(home) -> TargetSpec:
    """The adapter of the newest finished run, or the default base."""
    for run in list_runs(home):
        if run.has_adapter:
            try:
                return run_spec(run)
            except TanrenError:
                continue  # a damaged run folder: the Dashboard says so
    return TargetSpec("base", DEFAULT_MODEL)


class ChatPane(Localized, VerticalScroll):
    """One target's side of the conversation: the messages, the answer being written, its stats."""

    def __init__(self, spec: TargetSpec, *, id: str) -> None:
        super().__init__(id=id, classes="chat-pane")
        self.history: list[ChatMessage] = []
        self.answer: Static | None = None
        self.answer_text = ""
        self.turn: Turn | None = None  # the last finished answer, for judging it
        self.shown_answer: Static | None = None
        self.set_spec(spec)

    def set_spec(self, spec: TargetSpec) -> None:
        self.spec = spec
        self.border_title = f"{self._(spec.kind)}: {spec.label}"

    def clear(self) -> None:
        self.history, self.answer, self.answer_text, self.turn = [], None, "", None
        self.remove_children()

    def add_user(self, text: str) -> None:
        self.turn = None
        self.mount(Static(Text(text, style=USER_STYLE), classes="chat-user"))
        self.answer, self.answer_text = Static("…", classes="chat-answer"), ""
        self.mount(self.answer)
        self.scroll_end(animate=False)

    def add_delta(self, delta: str) -> None:
        self.answer_text += delta
        if self.answer is not None:
            self.answer.update(Text(self.answer_text, style=ANSWER_STYLE))
        self.scroll_end(animate=False)

    def finish(self, prompt: str, note: str, params: GenerationConfig) -> None:
        self.turn = Turn(tuple(self.history), prompt, self.answer_text, self.spec.label, params)
        self.history += [ChatMessage("user", prompt), ChatMessage("assistant", self.answer_text)]
        self.mount(Static(Text(note, style=NOTE_STYLE), classes="chat-note"))
        self.shown_answer, self.answer = self.answer, None
        self.scroll_end(animate=False)

    def replace_answer(self, text: str) -> None:
        """The last answer edited: the conversation goes on from the answer wanted."""
        self.history[-1] = ChatMessage("assistant", text)
        if self.shown_answer is not None:
            self.shown_answer.update(Text(text, style=ANSWER_STYLE))


class ChatParamsScreen(FormScreen[GenerationConfig]):
    """Sampling settings and the system prompt; dismissed with the new settings."""

    FORM_TITLE = N_("Chat parameters")
    FIELDS = (
        FormField("generation.system_prompt", N_("System prompt"), text=True),
        FormField("generation.temperature", N_("Temperature")),
        FormField("generation.top_p", "Top p"),
        FormField("generation.top_k", "Top k"),
        FormField("generation.repetition_penalty", N_("Rep. penalty")),
        FormField("generation.max_new_tokens", N_("Max tokens")),
        FormField("generation.seed", N_("Seed"), optional=True, placeholder=N_("a new one for every answer")),
    )
    BINDINGS = [
        Binding("ctrl+s", "submit", N_("Apply"), id="chat_params.apply",
                tooltip=N_("use these settings from the next answer")),
        Binding("escape", "cancel", N_("Cancel"), id="chat_params.cancel",
                tooltip=N_("keep the settings as they were")),
    ]

    def __init__(self, home, params: GenerationConfig) -> None:
        super().__init__(home, form_values(self.FIELDS, RunConfig(generation=params)))
        self.params = params

    def action_submit(self) -> None:
        try:
            self.dismiss(apply_overrides(RunConfig(generation=self.params), self.overrides()).generation)
        except Exception as exc:  # noqa: BLE001 - shown in the form, to be fixed there
            self.show_error(exc)


class ChatScreen(TanrenScreen):
    MODE = "chat"
    CSS_PATH = "chat.tcss"
    AUTO_FOCUS = "#chat-prompt"
    BINDINGS = [
        Binding("enter", "send", N_("Send"), id="chat.send", priority=True, key_display="⏎",
                tooltip=N_("send the message to every shown target")),
        Binding("escape", "cancel", N_("Stop"), id="chat.stop", tooltip=N_("stop the answer being written")),
        Binding("ctrl+o", "pick_target", N_("Target"), id="chat.target",
                tooltip=N_("what to chat with: a base, an adapter, a merged model or a GGUF file")),
        Binding("ctrl+b", "pick_compare", N_("Vs"), id="chat.compare",
                tooltip=N_("a second target answering beside the first, with the same seed")),
        Binding("ctrl+g", "params", N_("Params"), id="chat.params", tooltip=N_("sampling settings and system prompt")),
        Binding("ctrl+l", "clear", N_("Clear"), id="chat.clear", tooltip=N_("start a new conversation")),
        # The judging keys are listed on the dataset line instead of the footer, which is full at 80 columns.
        Binding("ctrl+y", "rate(True)", N_("Good"), id="chat.good", show=False,
                tooltip=N_("mark the last answer good (a KTO rating)")),
        Binding("ctrl+n", "rate(False)", N_("Bad"), id="chat.bad", show=False,
                tooltip=N_("mark the last answer bad (a KTO rating)")),
        Binding("ctrl+r", "edit", N_("Edit"), id="chat.edit", show=False,
                tooltip=N_("rewrite the last answer into the one you wanted (an SFT conversation and a pair)")),
        Binding("f7", "prefer('left')", N_("◀ Better"), id="chat.prefer_left", show=False,
                tooltip=N_("the left answer is the better one (a preference pair)")),
        Binding("f8", "prefer('right')", N_("Better ▶"), id="chat.prefer_right", show=False,
                tooltip=N_("the right answer is the better one (a preference pair)")),
        Binding("ctrl+s", "dataset", N_("Dataset"), id="chat.dataset", show=False,
                tooltip=N_("the dataset judgements are written to")),
    ]

    @dataclass
    class Status(Message):
        text: str

    @dataclass
    class Delta(Message):
        pane: str
        text: str

    @dataclass
    class Finished(Message):
        pane: str
        prompt: str
        note: str
        params: GenerationConfig  # the settings of the answer, its seed included

    @dataclass
    class Done(Message):
        pass

    @dataclass
    class TargetsListed(Message):
        specs: list[TargetSpec]
        pane: str

    def __init__(self) -> None:
        super().__init__()
        self.params = GenerationConfig()
        self.cancel = threading.Event()
        self.answering = False
        self.pool: TargetPool | None = None
        self.judge: Judge | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="chat-panes"):
            yield ChatPane(default_target(self.home), id="pane-a")
        yield Static("", id="chat-dataset")
        yield Static("", id="chat-status")
        yield Input(placeholder=self._("message (Enter sends, Esc stops the answer)"), id="chat-prompt", compact=True)

    def on_mount(self) -> None:
        self.pool = TargetPool(self.home,
                               on_status=lambda said: self.post_message(self.Status(in_language(said, self._))))
        self.judge = Judge(default_dataset(self.home))
        self._show_status()
        self._show_dataset()

    def on_unmount(self) -> None:
        self.cancel.set()

    def panes(self) -> list[ChatPane]:
        return list(self.query(ChatPane))

    def _show_status(self, text: str = "") -> None:
        params = self.params
        line = text or (self._("temperature {temperature} · top_p {top_p} · max {tokens} tokens",
                               temperature=params.temperature, top_p=params.top_p, tokens=params.max_new_tokens)
                        + (self._(" · system prompt set") if params.system_prompt else ""))
        self.query_one("#chat-status", Static).update(Text(line, style="dim"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return True  # Esc also leaves the prompt when nothing is being written
        if action in ("pick_target", "pick_compare", "params", "clear"):
            return None if self.answering else True  # shown, but not while an answer is written
        if action in ("rate", "edit", "prefer"):  # a single answer is rated or edited, two are compared
            if (len(self.panes()) == 2) != (action == "prefer"):
                return False
            return None if self.answering else True
        return True

    def action_send(self) -> None:
        prompt_input = self.query_one("#chat-prompt", Input)
        prompt = prompt_input.value.strip()
        if self.answering:
            self.notify(self._("an answer is being written; Esc stops it"), severity="warning")
            return
        if not prompt:
            prompt_input.focus()
            return
        prompt_input.value = ""
        self.answering = True
        self.refresh_bindings()
        self.cancel = threading.Event()
        panes = self.panes()
        for pane in panes:
            pane.add_user(prompt)
        self.answer(prompt, [(pane.id or "", pane.spec, list(pane.history)) for pane in panes], self.params,
                    self.cancel)

    @work(thread=True, group="chat")
    def answer(self, prompt: str, panes: list[tuple[str, TargetSpec, list[ChatMessage]]],
               params: GenerationConfig, cancel: threading.Event) -> None:
        from engine.chat.sampling import fresh_seed

        # One seed for every target, so side-by-side answers differ by the model, not by chance.
        params = dataclasses.replace(params, seed=params.seed if params.seed is not None else fresh_seed())
        try:
            for pane, spec, history in panes:
                self._answer_one(pane, spec, [*history, ChatMessage("user", prompt)], params, cancel, prompt)
        finally:
            self.post_message(self.Done())

    def _answer_one(self, pane: str, spec: TargetSpec, messages: list[ChatMessage], params: GenerationConfig,
                    cancel: threading.Event, prompt: str) -> None:
        try:
            target = self.pool.open(spec)
            self.post_message(self.Status(self._("{label} is answering…", label=spec.label)))
            for delta in target.stream_chat(messages, params, cancel):
                self.post_message(self.Delta(pane, delta))
            stats = target.last_stats
            note = stats.summary(self._) if stats is not None else ""
        except Exception as exc:  # noqa: BLE001 - the pane says the answer failed; the app stays up
            self.app.report_error(exc, self._("answering with {label}", label=spec.label))
            note = self._("(no answer: see the error)")
        self.post_message(self.Finished(pane, prompt, note, params))

    def on_chat_screen_status(self, message: Status) -> None:
        self._show_status(message.text)

    def on_chat_screen_delta(self, message: Delta) -> None:
        self.query_one(f"#{message.pane}", ChatPane).add_delta(message.text)

    def on_chat_screen_finished(self, message: Finished) -> None:
        self.query_one(f"#{message.pane}", ChatPane).finish(message.prompt, message.note, message.params)

    def on_chat_screen_done(self) -> None:
        self.answering = False
        turns = [pane.turn for pane in self.panes()]
        if None in turns:  # a side that failed to answer: nothing to compare
            self.judge.forget()
        else:
            self.judge.answered(*turns)
        self.refresh_bindings()
        self._show_status()

    def action_cancel(self) -> None:
        if self.answering:
            self.cancel.set()
            self._show_status(self._("stopping…"))
        else:
            self.set_focus(None)

    def action_clear(self) -> None:
        for pane in self.panes():
            pane.clear()
        self.judge.forget()

    def _show_dataset(self) -> None:
        """The dataset and its counts, then the judging keys that apply (one answer, or two side by side)."""
        actions = [(b, b.action.partition("(")[0]) for b in self.BINDINGS if isinstance(b, Binding)]
        keys = [f"{self.app.get_key_display(b)} {self._(b.description).lower()}" for b, action in actions
                if action in JUDGING and self.check_action(action, ()) is not False]
        self.query_one("#chat-dataset", Static).update(Text.assemble(
            (self.judge.status(self._), "bold"), ("  " + "  ".join(keys), "dim")))

    def _judged(self, done: str) -> None:
        self._show_dataset()
        self._show_status(self._("{done} → dataset {name}", done=done, name=self.judge.dataset.name))

    @reports_errors(N_("judging the answer"))
    def action_rate(self, good: bool) -> None:
        self.judge.rate(good)
        self._judged(self._("marked good") if good else self._("marked bad"))

    @reports_errors(N_("picking the better answer"))
    def action_prefer(self, side: str) -> None:
        self.judge.prefer(side)
        self._judged(self._("the left answer preferred") if side == "left" else self._("the right answer preferred"))

    @reports_errors(N_("editing the answer"))
    def action_edit(self) -> None:
        self.app.push_screen(EditAnswerScreen(self.judge.to_edit().answer), self._edited)

    @reports_errors(N_("editing the answer"))
    def _edited(self, text: str | None) -> None:
        if text is not None:
            self.judge.edit(text)
            self.query_one("#pane-a", ChatPane).replace_answer(text)
            self._judged(self._("edited answer kept"))

    def action_dataset(self) -> None:
        options: list[tuple[Text | str, str]] = [
            (f"{d.name}  ({d.counts().describe(self._)})", d.name) for d in list_datasets(self.home)]
        picker = Picker(self._("Write judgements to (Enter)"), options, current=self.judge.dataset.name,
                        typed=self._("or type a new dataset name (Enter)"))
        self.app.push_screen(picker, self._dataset_picked)

    @reports_errors(N_("choosing the dataset"))
    def _dataset_picked(self, picked: Picked | None) -> None:
        if picked is not None:
            self.judge.use(Dataset.open(self.home, picked.value))
            self._show_dataset()
        self.query_one("#chat-prompt", Input).focus()

    def action_pick_target(self) -> None:
        self.list_targets("pane-a")

    def action_pick_compare(self) -> None:
        self.list_targets("pane-b")

    @work(thread=True, exclusive=True, group="targets")
    @reports_errors(N_("listing chat targets"))
    def list_targets(self, pane: str) -> None:
        self.post_message(self.TargetsListed(chat_targets(self.home), pane))

    def on_chat_screen_targets_listed(self, message: TargetsListed) -> None:
        specs = message.specs
        options: list[tuple[Text | str, str]] = [
            (Text.assemble((pad(self._(spec.kind), 10), "italic"), spec.label), str(index))
            for index, spec in enumerate(specs)]
        if message.pane == "pane-b":
            options.insert(0, (Text(self._("close the second pane"), style="italic"), NO_TARGET))
        title = self._("Chat with (Enter)") if message.pane == "pane-a" else self._("Side by side with (Enter)")
        picker = Picker(title, options, typed=self._("or type a model: name, HF folder or .gguf file (Enter)"))
        self.app.push_screen(picker, lambda picked: self._picked(message.pane, specs, picked))

    @reports_errors(N_("choosing the target"))
    def _picked(self, pane_id: str, specs: list[TargetSpec], picked: Picked | None) -> None:
        if picked is None:
            return
        panes = {pane.id: pane for pane in self.panes()}
        if picked.value == NO_TARGET and not picked.typed:
            if "pane-b" in panes:
                self.call_next(self._close, panes["pane-b"])
            return
        spec = spec_for(picked.value) if picked.typed else specs[int(picked.value)]
        if pane_id in panes:
            panes[pane_id].set_spec(spec)
            panes[pane_id].clear()  # a new target starts a new conversation
        else:
            self.query_one("#chat-panes").mount(ChatPane(spec, id=pane_id))
        self._panes_changed()

    async def _close(self, pane: ChatPane) -> None:
        await pane.remove()  # gone before the keys are worked out again
        self._panes_changed()

    def _panes_changed(self) -> None:
        """Answers of a conversation that changed targets are no longer judged; the keys follow the panes."""
        self.judge.forget()
        self.refresh_bindings()
        self._show_dataset()
        self.query_one("#chat-prompt", Input).focus()

    def action_params(self) -> None:
        def applied(params: GenerationConfig | None) -> None:
            if params is not None:
                self.params = params
                self._show_status()
        self.app.push_screen(ChatParamsScreen(self.home, self.params), applied)
