"""The headless `tanren` command line: parser assembly and the one place errors become text.

Each package contributes its subcommands through a `register(subparsers, _)` function, `_`
being the user's catalog's gettext; the entry point in `tui.entry` assembles them, so this
package never imports the TUI. Handlers find the catalog on `args.catalog`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from engine.arguments import TanrenParser
from engine.errors import TanrenError
from engine.i18n import Catalog, Gettext
from engine.paths import Home
from engine.settings import user_catalog

Registrar = Callable[[argparse._SubParsersAction, Gettext], None]


def build_parser(registrars: Sequence[Registrar], catalog: Catalog) -> argparse.ArgumentParser:
    _ = catalog.gettext
    parser = TanrenParser(prog="tanren", gettext=_, description=_(
        "鍛錬 tanren — fine-tune, chat with, evaluate and export LLMs. "
        "Run `tanren` with no command to open the workbench."))
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in registrars:
        register(subparsers, _)
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
    try:
        catalog = user_catalog(Home.from_env())
    except TanrenError as exc:  # a settings file or TANREN_LANG tanren cannot speak with
        print(exc.render(), file=sys.stderr)
        return 1
    parser = build_parser(registrars, catalog)
    args = parser.parse_args(list(argv))
    args.catalog = catalog
    _quiet_libraries()
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except TanrenError as exc:
        print(exc.render(catalog.gettext), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(catalog.gettext("interrupted"), file=sys.stderr)
        return 130
