"""`tanren models`: list the bases, and prepare (convert) one ahead of use."""

from __future__ import annotations

import argparse
import json
import sys

from engine.config.schema import ModelConfig
from engine.i18n import Gettext
from engine.models.catalog import ModelEntry, list_models
from engine.models.loading import model_folder
from engine.models.registry import DEFAULT_MODEL
from engine.paths import Home
from engine.phrases import in_language
from engine.textwidth import format_table, human_bytes


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    parser = subparsers.add_parser("models", help=_("list base models (built-in, converted GGUF, hub cache)"))
    parser.add_argument("--json", action="store_true", help=_("print JSON instead of a table"))
    parser.set_defaults(handler=_list)
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION")
    prepare = actions.add_parser("prepare", help=_("resolve a base and convert it to an HF folder if it is a GGUF"))
    prepare.add_argument("base", nargs="?", default=DEFAULT_MODEL,
                         help=_("model to prepare (default {model})", model=DEFAULT_MODEL))
    prepare.add_argument("--allow-pickle", action="store_true", help=_("accept pickle-based .bin/.pt weights"))
    prepare.set_defaults(handler=_prepare)


def _list(args: argparse.Namespace) -> int:
    entries = list_models(Home.from_env())
    if args.json:
        print(json.dumps([e.to_json() for e in entries], ensure_ascii=False, indent=2))
        return 0
    print(_table(entries, args.catalog.gettext))
    return 0


def _table(entries: list[ModelEntry], _: Gettext) -> str:
    """The table of `tanren models`, then a line for each entry with a note."""
    rows = [[e.name, _(e.kind), human_bytes(e.size_bytes), _("yes") if e.ready else _("no"), e.location]
            for e in entries]
    table = format_table([_("NAME"), _("KIND"), _("SIZE"), _("READY"), _("LOCATION")], rows)
    notes = [f"  {e.name}: {in_language(e.note, _)}" for e in entries if e.note]
    return "\n".join([table, *notes])


def _prepare(args: argparse.Namespace) -> int:
    config = ModelConfig(base=args.base, allow_pickle=args.allow_pickle)
    _ = args.catalog.gettext
    folder = model_folder(config, Home.from_env(), on_status=lambda m: print(in_language(m, _), file=sys.stderr))
    print(folder)
    return 0
