"""`tanren models`: list the bases, and prepare (convert) one ahead of use."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from engine.config.schema import ModelConfig
from engine.i18n import Gettext
from engine.models.catalog import list_models
from engine.models.loading import model_folder
from engine.models.registry import DEFAULT_MODEL
from engine.paths import Home
from engine.textwidth import format_table, human_bytes


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    parser = subparsers.add_parser("models", help="list base models (built-in, converted GGUF, hub cache)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_list)
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION")
    prepare = actions.add_parser("prepare", help="resolve a base and convert it to an HF folder if it is a GGUF")
    prepare.add_argument("base", nargs="?", default=DEFAULT_MODEL, help=f"model to prepare (default {DEFAULT_MODEL})")
    prepare.add_argument("--allow-pickle", action="store_true", help="accept pickle-based .bin/.pt weights")
    prepare.set_defaults(handler=_prepare)


def _list(args: argparse.Namespace) -> int:
    entries = list_models(Home.from_env())
    if args.json:
        print(json.dumps([asdict(e) for e in entries], ensure_ascii=False, indent=2))
        return 0
    rows = [[e.name, e.kind, human_bytes(e.size_bytes), "yes" if e.ready else "no", e.location] for e in entries]
    print(format_table(["NAME", "KIND", "SIZE", "READY", "LOCATION"], rows))
    for e in entries:
        if e.note:
            print(f"  {e.name}: {e.note}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    config = ModelConfig(base=args.base, allow_pickle=args.allow_pickle)
    folder = model_folder(config, Home.from_env(), on_status=lambda m: print(m, file=sys.stderr))
    print(folder)
    return 0
