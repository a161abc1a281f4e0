"""`tanren kernels`: the run-time kernels training can apply, where each applies, and whether this
machine's libraries are the releases it was verified against."""

from __future__ import annotations

import argparse
import json

from engine.i18n import Gettext
from engine.phrases import in_language
from engine.textwidth import format_table
from engine.train.kernels.catalog import KERNELS, METHODS, OBJECTIVES, PRECISIONS, STRATEGIES, Kernel
from engine.train.kernels.layer import unverified


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    parser = subparsers.add_parser(
        "kernels", help=_("list the run-time kernels training applies (training.kernels: auto, off or names)"))
    parser.add_argument("--json", action="store_true", help=_("print JSON instead of a table"))
    parser.set_defaults(handler=_show)


def _where(kernel: Kernel) -> str:
    parts = ["/".join(kernel.devices)]
    for values, every in ((kernel.precisions, PRECISIONS), (kernel.methods, METHODS),
                          (kernel.objectives, OBJECTIVES), (kernel.strategies, STRATEGIES)):
        if values != every:
            parts.append("/".join(values))
    return ", ".join(parts)


def _show(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps([{
            "name": k.name, "summary": k.summary, "switchable": k.switchable, "devices": list(k.devices),
            "precisions": list(k.precisions), "methods": list(k.methods),
            "objectives": list(k.objectives), "strategies": list(k.strategies), "verified": k.verified,
            "unverified_here": _english(unverified(k)),
        } for k in KERNELS], indent=2))
        return 0
    _ = args.catalog.gettext
    rows = [[k.name + ("" if k.switchable else " *"), _where(k), in_language(unverified(k), _) or _("verified")]
            for k in KERNELS]
    print(format_table([_("KERNEL"), _("APPLIES TO"), _("LIBRARIES HERE")], rows))
    print("\n" + "\n".join(f"{k.name}: {_(k.summary)}" for k in KERNELS))  # summaries are marked N_() where defined
    print("\n" + _("* kept with training.kernels: off (a safeguard, or what a strategy cannot train without)."))
    print(_("Choose with `tanren train --kernels auto|off|NAME,...` or training.kernels in a config."))
    return 0


def _english(reason: object) -> str | None:
    """The reason as --json keeps it: English text, a Phrase's too."""
    return None if reason is None else str(reason)
