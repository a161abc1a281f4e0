"""`tanren version`: what tanren runs on, to paste into a bug report or compare two machines."""

from __future__ import annotations

import argparse
import json

from engine.i18n import Gettext
from engine.textwidth import format_table
from engine.versions import NOT_INSTALLED, library_versions


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    parser = subparsers.add_parser("version", help=_("print the versions of tanren, Python and the libraries it uses"))
    parser.add_argument("--json", action="store_true", help=_("print JSON instead of a table"))
    parser.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    versions = library_versions()
    if args.json:
        print(json.dumps(versions, indent=2))
        return 0
    _ = args.catalog.gettext
    rows = [[name, _(version) if version == NOT_INSTALLED else version] for name, version in versions.items()]
    print(format_table([_("NAME"), _("VERSION")], rows))
    return 0
