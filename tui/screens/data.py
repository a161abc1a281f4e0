"""Data: pick a file, see what the data doctor says about it and how the model will see it."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from engine.chat.collect import list_datasets
from engine.config import RunConfig, apply_overrides
from engine.data import SAMPLE_ALPACA, SAMPLE_CHAT, SAMPLE_HELDOUT, check_file
from engine.data.readers import ensure_readable
from engine.data.render import base_tokenizer
from engine.i18n import N_
from engine.models.registry import DEFAULT_MODEL
from engine.phrases import in_language
from engine.presentation.data_preview import CHOSEN, REJECTED, TRAINED, Preview, previews
from engine.presentation.data_report import format_report
from engine.runs.rundir import list_runs
from tui.errors import reports_errors
from tui.i18n import Gettext
from tui.screens.base import TanrenScreen

PREVIEW_EXAMPLES = 3
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
TRAINED_STYLE = "bold green"
REJECTED_STYLE = "bold red"
STYLES = {TRAINED: TRAINED_STYLE, CHOSEN: TRAINED_STYLE, REJECTED: REJECTED_STYLE}


def shown_path(path: Path) -> str:
    """Relative to the working folder when inside it (as typed on the command line), else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


def data_files(home, _: Gettext) -> list[tuple[str, str]]:
    """(label, path) of the files a user likely wants: the samples, the datasets collected in
    chat, the data of earlier runs, and data files in the working folder."""
    found: dict[str, str] = {}
    for sample in (SAMPLE_CHAT, SAMPLE_ALPACA, SAMPLE_HELDOUT):
        found.setdefault(shown_path(sample), _("sample · {file}", file=sample.name))
    for dataset in list_datasets(home):
        for _kind, path in dataset.files():
            found.setdefault(shown_path(path), _("dataset {name} · {file}", name=dataset.name, file=path.name))
    for run in list_runs(home):
        data = run.config().data.path
        if data and Path(data).is_file():
            found.setdefault(shown_path(Path(data)), _("run {name} · {file}", name=run.name, file=Path(data).name))
    for path in sorted(Path.cwd().iterdir()):
        if path.suffix in DATA_SUFFIXES and path.is_file():
            found.setdefault(shown_path(path), _("here · {file}", file=path.name))
    return [(label, path) for path, label in found.items()]


def preview_text(preview: Preview) -> Text:
    text = Text(f"── {preview.source} · {preview.summary} ──\n", style="bold")
    for piece, mark in preview.pieces:
        text.append(piece, STYLES[mark] if mark else "")
    return text


def styled(template: str, **parts: tuple[str, str]) -> Text:
    """A translated `template` whose `{name}` fields are filled with (text, style): a translation
    may put the fields in another order."""
    pieces = re.split(r"\{(\w+)\}", template)  # text, a field's name, text, ...
    return Text.assemble(*[parts[piece] if index % 2 else piece for index, piece in enumerate(pieces)])


def legend(preview: Preview, _: Gettext) -> Text:
    green, red = (_("green"), TRAINED_STYLE), (_("red"), REJECTED_STYLE)
    if CHOSEN in preview.marks or REJECTED in preview.marks:
        return styled(_("chosen (desirable) answers are {chosen}, rejected (undesirable) ones {rejected}"),
                      chosen=green, rejected=red)
    return styled(_("trained tokens are {trained}"), trained=green)


class DataScreen(TanrenScreen):
    MODE = "data"
    CSS_PATH = "data.tcss"
    AUTO_FOCUS = "#data-files"  # not the path field, so the screen keys work at once
    BINDINGS = [
        Binding("ctrl+r", "check", N_("Check"), id="data.check", tooltip=N_("validate the file and preview it")),
        Binding("ctrl+o", "files", N_("Files"), id="data.files", tooltip=N_("pick one of the known data files")),
        Binding("ctrl+y", "train_with", N_("Train on it"), id="data.train",
                tooltip=N_("open the new-run form with this file")),
    ]

    @dataclass
    class Busy(Message):
        text: str

    @dataclass
    class Checked(Message):
        report: str
        usable: bool
        preview: list[Preview]

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label(self._("File"), classes="form-label")
            yield Input(placeholder=self._("data file: .jsonl .json .csv .parquet (Enter checks it)"), id="data-path",
                        compact=True)
        with Horizontal(classes="form-row"):
            yield Label(self._("Base"), classes="form-label")
            yield Input(DEFAULT_MODEL, id="data-base", compact=True,
                        tooltip=self._("the base model whose tokenizer and chat template render the data"))
            yield Label(self._("Max length"), classes="inline-label")
            yield Input(str(RunConfig().data.max_length), id="data-max-length", compact=True, type="integer")
        yield OptionList(id="data-files")
        with VerticalScroll(id="data-result"):
            yield Static(self._("Pick a file (Ctrl+O) or type its path, then Enter."), id="data-report")
            yield Static("", id="data-preview")

    def on_mount(self) -> None:
        self.list_files()

    @work(thread=True, exclusive=True, group="files")
    @reports_errors(N_("listing data files"))
    def list_files(self) -> None:
        files = data_files(self.home, self._)
        self.app.call_from_thread(self._show_files, files)

    def _show_files(self, files: list[tuple[str, str]]) -> None:
        options = self.query_one("#data-files", OptionList)
        options.clear_options()
        options.add_options([Option(Text(label), id=path) for label, path in files])
        if files:
            options.highlighted = 0

    def action_files(self) -> None:
        self.query_one("#data-files", OptionList).focus()

    @on(OptionList.OptionSelected, "#data-files")
    def _file_picked(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#data-path", Input).value = event.option.id or ""
        self.action_check()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_check()

    def action_check(self) -> None:
        path = self.query_one("#data-path", Input).value.strip()
        if not path:
            self.notify(self._("type the path of a data file first, or pick one with Ctrl+O"), severity="warning")
            return
        self.query_one("#data-preview", Static).update("")
        self.check(path, self.query_one("#data-base", Input).value.strip(),
                   self.query_one("#data-max-length", Input).value.strip())

    async def action_train_with(self) -> None:
        path = self.query_one("#data-path", Input).value.strip()
        await self.tanren.new_run(data=path or None, base=self.query_one("#data-base", Input).value.strip() or None)

    @work(thread=True, exclusive=True, group="check")
    @reports_errors(N_("checking the data"))
    def check(self, path: str, base: str, max_length: str) -> None:
        config = apply_overrides(RunConfig(), [f"data.path={json.dumps(path)}", f"model.base={json.dumps(base)}",
                                               f"data.max_length={max_length}"])
        ensure_readable(path)  # before the tokenizer, which takes a while the first time
        worker = get_current_worker()
        busy = self._throttled_busy()
        busy(self._("loading the tokenizer of {base}…", base=base), force=True)
        tokenizer = base_tokenizer(base, self.home, on_status=lambda said: busy(in_language(said, self._), force=True))
        report = check_file(path, format=config.data.format, tokenizer=tokenizer, max_length=config.data.max_length,
                            split=config.data.split, seed=config.data.seed,
                            on_progress=lambda file, fraction: busy(self._("checking {file}: {fraction:.0%}",
                                                                                   file=file, fraction=fraction)))
        if worker.is_cancelled:
            return
        preview = [] if not report.usable else previews(path, config.data.format, tokenizer,
                                                        max_length=config.data.max_length, count=PREVIEW_EXAMPLES,
                                                        _=self._)
        if not worker.is_cancelled:
            self.post_message(self.Checked(format_report(report, base=base, _=self._), report.usable, preview))

    def _throttled_busy(self):
        last = [0.0]

        def busy(text: str, force: bool = False) -> None:
            now = time.monotonic()
            if force or now - last[0] > 0.25:
                last[0] = now
                self.post_message(self.Busy(text))
        return busy

    def on_data_screen_busy(self, message: Busy) -> None:
        self.query_one("#data-report", Static).update(Text(message.text, style="italic"))

    def on_data_screen_checked(self, message: Checked) -> None:
        self.query_one("#data-report", Static).update(Text(message.report, style="" if message.usable else "red"))
        shown = message.preview
        preview = Text("\n\n").join([legend(shown[0], self._), *map(preview_text, shown)]) if shown else ""
        self.query_one("#data-preview", Static).update(preview)
