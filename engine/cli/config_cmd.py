"""`tanren config`: print a complete, commented run config to start a YAML file from."""

from __future__ import annotations

import argparse
import dataclasses
import re

from engine.config import RunConfig, apply_overrides, dump_yaml, load_yaml
from engine.config.schema import SECTIONS
from engine.i18n import Gettext


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    parser = subparsers.add_parser("config", help=_("print a run config as YAML (defaults, a file, overrides)"))
    parser.add_argument("--file", help=_("start from this YAML file instead of the defaults"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help=_("override one value, e.g. training.learning_rate=1e-4 (repeatable)"))
    parser.add_argument("--no-help", action="store_true", help=_("leave out the help comments"))
    parser.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    config = load_yaml(args.file) if args.file else RunConfig()
    config = apply_overrides(config, args.overrides)
    text = dump_yaml(config)
    print(text if args.no_help else _with_help(config, text, args.catalog.gettext), end="")
    return 0


def _with_help(config: RunConfig, text: str, _: Gettext) -> str:
    """Append each field's help as a YAML comment, in the user's language; the result still loads
    as the same config (keys and values are never translated)."""
    helps = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(config)}
    for section in SECTIONS:
        helps.update({f"{section}.{f.name}": f.metadata.get("help", "")
                      for f in dataclasses.fields(getattr(config, section))})
    out, section = [], ""
    for line in text.splitlines():
        match = _KEY_LINE.match(line)
        if match and not match.group(1):
            section = match.group(2)
        key = match and (match.group(2) if not match.group(1) else f"{section}.{match.group(2)}")
        out.append(f"{line}  # {_(helps[key])}" if key and helps.get(key) else line)
    return "\n".join(out) + "\n"


# A `key:` line at the top level or one level into a section; list items and continued
# multi-line strings never match, so comments cannot land inside a value.
_KEY_LINE = re.compile(r"^( {2})?([A-Za-z_]+):(?: |$)")
