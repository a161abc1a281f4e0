"""The headless `tanren` command line: parser assembly and the one place errors become text.

Each package contributes its subcommands through a `register(subparsers)` function; the
entry point in `tui.entry` assembles them, so this package never imports the TUI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from engine.errors import TanrenError

Registrar = Callable[[argparse._SubParsersAction], None]


def build_parser(registrars: Sequence[Registrar]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tanren",
        description="鍛錬 tanren — fine-tune, chat with, evaluate and export LLMs. "
        "Run `tanren` with no command to open the workbench.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in registrars:
        register(subparsers)
    return parser


def _quiet_libraries() -> None:
    """Libraries' notices to their own users (transformers' v6 renames, bitsandbytes' optional
    kernels) would clutter a terminal chat or a command's output; tanren's own errors still show."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def run(argv: Sequence[str], registrars: Sequence[Registrar]) -> int:
    parser = build_parser(registrars)
    args = parser.parse_args(list(argv))
    _quiet_libraries()
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except TanrenError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
