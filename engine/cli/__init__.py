"""The headless `tanren` command line: parser assembly and the one place errors become text.

Each package contributes its subcommands through a `register(subparsers)` function; the
entry point in `tui.entry` assembles them, so this package never imports the TUI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from engine.config import ModelConfig
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


def add_loading_options(parser: argparse.ArgumentParser) -> None:
    """How a transformers model is loaded, for every command that loads one."""
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                        help="transformers weights dtype")
    parser.add_argument("--allow-pickle", action="store_true", help="accept pickle-based .bin/.pt weights")
    parser.add_argument("--trust-remote-code", action="store_true", help="run Python code shipped with the model")


def loading_config(args: argparse.Namespace, **fields) -> ModelConfig:
    """The ModelConfig of `add_loading_options`' flags, with other fields (base...) as given."""
    return ModelConfig(dtype=args.dtype, allow_pickle=args.allow_pickle, trust_remote_code=args.trust_remote_code,
                       **fields)


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
