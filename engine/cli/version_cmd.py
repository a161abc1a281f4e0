"""`tanren version`: what tanren runs on, to paste into a bug report or compare two machines."""

from __future__ import annotations

import argparse
import json

from engine.i18n import Gettext
from engine.textwidth import format_table
from engine.versions import library_versions


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    parser = subparsers.add_parser("version", help="print the versions of tanren, Python and the libraries it uses")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    versions = library_versions()
    rows = [[name, version] for name, version in versions.items()]
    print(json.dumps(versions, indent=2) if args.json else format_table(["NAME", "VERSION"], rows))
    return 0
