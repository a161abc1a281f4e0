"""`tanren data check` and `tanren data preview`: find what is wrong with a data file before a run."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from engine.config.fields import coerce, field_help
from engine.config.schema import DATA_FORMATS, DataConfig, TrainingConfig
from engine.data.check import check_file
from engine.data.problems import RecordError, title
from engine.data.readers import ensure_readable
from engine.data.render import base_tokenizer
from engine.i18n import Gettext
from engine.models.registry import DEFAULT_MODEL
from engine.phrases import in_language
from engine.presentation.data_preview import CHOSEN, REJECTED, TRAINED, Preview, previews
from engine.presentation.data_report import format_report
from engine.textwidth import human_bytes

DEFAULTS = DataConfig()
PREVIEW_EXAMPLES = 3
GREEN, RED, RESET = "\033[1;32m", "\033[1;31m", "\033[0m"
# How each mark is shown: in colour on a terminal, between brackets elsewhere
COLORS = {TRAINED: GREEN, CHOSEN: GREEN, REJECTED: RED}
BRACKETS = {TRAINED: ("⟦", "⟧"), CHOSEN: ("⟦", "⟧"), REJECTED: ("⟪", "⟫")}


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    parser = subparsers.add_parser("data", help=_("check and preview training data"))
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")

    check = actions.add_parser(
        "check", help=_("validate a data file: errors and warnings by file:line, lengths, the split"),
        description=_("Exit status 0 when the file is usable (warnings allowed), 1 when it has errors."),
    )
    _common(check, _)
    check.add_argument("--no-tokens", action="store_true", help=_("skip the token checks (loads no tokenizer)"))
    check.add_argument("--validation", metavar="PATH", help=_(field_help(DataConfig, "validation_path")))
    check.add_argument("--split", default=",".join(map(str, DEFAULTS.split)), help=_(field_help(DataConfig, "split")))
    check.add_argument("--seed", type=int, default=DEFAULTS.seed, help=_(field_help(DataConfig, "seed")))
    check.add_argument("--window-stride", type=int, metavar="N", help=_(field_help(DataConfig, "window_stride")))
    check.add_argument("--batch-size", type=int, default=TrainingConfig.micro_batch_size, metavar="N",
                       help=_("the micro-batch size training will use, for KTO's KL term (default {size}, as tanren "
                              "train's)", size=TrainingConfig.micro_batch_size))
    check.add_argument("--json", action="store_true", help=_("print the report as JSON"))
    check.set_defaults(handler=_check)

    preview = actions.add_parser("preview", help=_("show examples as the model sees them, trained tokens marked"))
    _common(preview, _)
    preview.add_argument("-n", type=int, default=PREVIEW_EXAMPLES,
                         help=_("how many examples (default {count})", count=PREVIEW_EXAMPLES))
    preview.set_defaults(handler=_preview)


def _common(parser: argparse.ArgumentParser, _: Gettext) -> None:
    parser.add_argument("path", help=_(field_help(DataConfig, "path")))
    parser.add_argument("--format", choices=DATA_FORMATS, default="auto", help=_("record format (default: detect)"))
    parser.add_argument("--base", default=DEFAULT_MODEL,
                        help=_("base model whose tokenizer and chat template are used (default {model}); only its "
                               "tokenizer is loaded", model=DEFAULT_MODEL))
    parser.add_argument("--max-length", type=int, default=DEFAULTS.max_length,
                        help=_(field_help(DataConfig, "max_length")))


def _config(args: argparse.Namespace) -> DataConfig:
    split = coerce(args.split, tuple[float, ...], "data.split") if hasattr(args, "split") else DEFAULTS.split
    return DataConfig(
        path=args.path, format=args.format, validation_path=getattr(args, "validation", None),
        split=split, seed=getattr(args, "seed", DEFAULTS.seed), max_length=args.max_length,
        window_stride=getattr(args, "window_stride", None),
    )


def _tokenizer(base: str, _: Gettext):
    from engine.paths import Home

    return base_tokenizer(base, Home.from_env(),
                          on_status=lambda message: print(in_language(message, _), file=sys.stderr))


class _ProgressLine:
    """Progress on stderr for files that take more than a moment; quiet for small ones."""

    def __init__(self, _: Gettext) -> None:
        self._ = _
        self.start = self.last = time.monotonic()
        self.shown = False
        self.tty = sys.stderr.isatty()

    def __call__(self, path: str, fraction: float) -> None:
        now = time.monotonic()
        if now - self.start < 1.0 or now - self.last < (0.5 if self.tty else 10.0):
            return
        self.last, self.shown = now, True
        size = human_bytes(Path(path).stat().st_size)
        line = self._("checking {path}: {fraction:.0%} of {size}", path=path, fraction=fraction, size=size)
        print(f"\r{line}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.shown and self.tty:
            print(file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    config = _config(args)
    for path in filter(None, (config.path, config.validation_path)):
        ensure_readable(path)  # before the tokenizer, which may take a while the first time
    _ = args.catalog.gettext
    tokenizer = None if args.no_tokens else _tokenizer(args.base, _)
    progress = _ProgressLine(_)
    try:
        report = check_file(
            config.path, format=config.format, validation_path=config.validation_path, tokenizer=tokenizer,
            max_length=config.max_length, window_stride=config.window_stride, split=config.split, seed=config.seed,
            micro_batch_size=args.batch_size, on_progress=progress,
        )
    finally:
        progress.done()
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(format_report(report, base=None if args.no_tokens else args.base, _=_))
    return 0 if report.usable else 1


def _preview(args: argparse.Namespace) -> int:
    config = _config(args)
    ensure_readable(config.path)
    _ = args.catalog.gettext
    tokenizer = _tokenizer(args.base, _)
    color = sys.stdout.isatty()

    def skipped(where: str, error: RecordError) -> None:
        print(_("skipped {where}: {problem}: {detail} (run `tanren data check` for all problems)", where=where,
                problem=title(error.code).translate(_), detail=in_language(error.detail, _)), file=sys.stderr)

    shown = previews(config.path, config.format, tokenizer, max_length=config.max_length, count=args.n, _=_,
                     on_skip=skipped)
    if not shown:
        print(_("no usable examples in {path}", path=config.path), file=sys.stderr)
        return 1
    print(_legend(shown[0], color, _))
    for preview in shown:
        print(f"\n── {preview.source} · {preview.summary} ──")
        print("".join(_marked(text, mark, color) for text, mark in preview.pieces).rstrip("\n"))
    return 0


def _legend(preview: Preview, color: bool, _: Gettext) -> str:
    def shown(mark: str) -> str:
        if color:
            return _marked(_("red") if mark == REJECTED else _("green"), mark, color)
        example = _marked(_("like this"), mark, color)
        return _("marked {example}", example=example)

    if CHOSEN in preview.marks or REJECTED in preview.marks:
        return _("chosen (desirable) answers are {chosen}, rejected (undesirable) ones {rejected}",
                 chosen=shown(CHOSEN), rejected=shown(REJECTED))
    return _("trained tokens are {trained}", trained=shown(TRAINED))


def _marked(text: str, mark: str | None, color: bool) -> str:
    if mark is None:
        return text
    if color:
        return f"{COLORS[mark]}{text}{RESET}"
    opening, closing = BRACKETS[mark]
    return f"{opening}{text}{closing}"
