"""`tanren export`, `tanren exports` and `tanren push`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.errors import ExportError
from engine.i18n import N_, Gettext
from engine.jobs.print_follow import follow, print_events
from engine.paths import Home
from engine.phrases import phrase
from engine.presentation.event_lines import state_name
from engine.textwidth import format_table
from export.jobs import ExportDir, list_exports, open_export, prepare_export, start_export
from export.manifest import FAILED, PASSED, PASSED_WITH_EXCLUSIONS, read_manifest
from export.quantize import QUANT_TYPES, SMALL_MODEL_PARAMETERS

VERIFICATION_NAMES = {PASSED: N_("passed"), PASSED_WITH_EXCLUSIONS: N_("passed with exclusions"), FAILED: N_("failed"),
                      "unreadable": N_("unreadable")}


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    export = subparsers.add_parser(
        "export", help=_("merge a run's adapter, write GGUF files, an Ollama Modelfile, and verify them (detached)"))
    export.add_argument("run", nargs="?", help=_("the run to export"))
    export.add_argument("--quant", metavar="TYPES", help=_(
        "GGUF types besides F16, comma-separated: {types} (the first one is what the Modelfile runs; default: Q8_0 "
        "under {billions:g}B parameters, else Q4_K_M and Q8_0)", types=", ".join(QUANT_TYPES),
        billions=SMALL_MODEL_PARAMETERS / 1e9))
    export.add_argument("--ollama", metavar="NAME", help=_("also `ollama create NAME` once verified"))
    export.add_argument("--out", metavar="DIR",
                        help=_("folder for the artifacts (default: inside the run's export folder)"))
    export.add_argument("--name", help=_("the export's name (default: the date and time)"))
    export.add_argument("--weight", type=float, default=1.0, help=_("scale of the run's adapter (default 1)"))
    export.add_argument("--adapter", dest="adapters", action="append", default=[], metavar="RUN_OR_DIR[:WEIGHT]",
                        help=_("merge another LoRA adapter too (repeatable)"))
    export.add_argument("--follow", action="store_true", help=_("stream progress and exit with the export's outcome"))
    export.add_argument("--architectures", action="store_true",
                        help=_("list the causal LM architectures llama.cpp's installed converter turns into GGUF"))
    export.set_defaults(handler=_export)

    exports = subparsers.add_parser("exports", help=_("list a run's exports, or show / follow one"))
    exports.add_argument("run", help=_("the run whose exports to list"))
    exports.add_argument("export", nargs="?", help=_("the export's name"))
    exports.add_argument("-f", "--follow", action="store_true", help=_("keep following until the export ends"))
    exports.add_argument("--json", action="store_true", help=_("print JSON for scripts"))
    exports.set_defaults(handler=_exports)

    push = subparsers.add_parser("push",
                                 help=_("upload a verified export (or an adapter folder) to the Hugging Face Hub"))
    push.add_argument("source", metavar="RUN|DIR", help=_("a run (its newest verified export) or a folder"))
    push.add_argument("--repo", required=True, metavar="USER/NAME", help=_("the Hub repository (created if missing)"))
    push.add_argument("--export", dest="export_name", metavar="NAME", help=_("push this export of the run"))
    push.add_argument("--private", action="store_true", help=_("create the repository as private"))
    push.set_defaults(handler=_push)


def _export(args: argparse.Namespace) -> int:
    _ = args.catalog.gettext
    if args.architectures:
        print(architectures_listing(_))
        return 0
    if not args.run:
        raise ExportError(phrase("name the run to export"), where="RUN",
                          hint=phrase("see `{command}` for your runs", command="tanren runs"))
    home = Home.from_env()
    request = prepare_export(args.run, home, quants=args.quant, weight=args.weight, adapters=args.adapters,
                             ollama=args.ollama, out=args.out, name=args.name)
    export = start_export(request, home)
    print(_("started export {run}/{name} (pid {pid}); files go to {folder}", run=export.run_name, name=export.name,
            pid=export.pid(), folder=request.out), file=sys.stderr)
    if not args.follow:
        print(_("follow it with: {command}", command=export.follow_command), file=sys.stderr)
        print(export.name)
        return 0
    return follow(export, _)


def architectures_listing(_: Gettext, width: int = 78) -> str:
    """The installed converter's causal LM architectures, wrapped (the README shows this output)."""
    import textwrap

    from export.converters import causal_lm_architectures, installed_converters

    converters = installed_converters()
    names = causal_lm_architectures(converters.architectures())
    header = _("GGUF export: {n} causal LM architectures (llama-cpp-python {version}'s converter)", n=len(names),
               version=converters.version)
    return "\n".join([header, *textwrap.wrap(", ".join(names), width, break_on_hyphens=False)])


def _exports(args: argparse.Namespace) -> int:
    home = Home.from_env()
    if args.export:
        export = open_export(args.run, args.export, home)
        if args.follow:
            return follow(export, args.catalog.gettext)
        if args.json:
            print(json.dumps(read_manifest(export.out), ensure_ascii=False, indent=2))
            return 0
        print_events(export, args.catalog.gettext)
        return 0
    exports = list_exports(args.run, home)
    if args.json:
        print(json.dumps([_row(e) for e in exports], ensure_ascii=False, indent=2))
        return 0
    _ = args.catalog.gettext
    if not exports:
        print(_("{run} has no exports yet; start one with: {command}", run=args.run, command="tanren export " + args.run))
        return 0
    rows = [[r["name"], state_name(r["state"], _), _verification_name(r["verification"], _), ",".join(r["quants"]),
             r["out"]] for r in map(_row, exports)]
    print(format_table([_("EXPORT"), _("STATUS"), _("VERIFIED"), _("TYPES"), _("FILES")], rows))
    return 0


def _verification_name(status: str, _: Gettext) -> str:
    """A manifest's status in the user's language (the manifest keeps it in English)."""
    return _(VERIFICATION_NAMES[status]) if status in VERIFICATION_NAMES else status


def _row(export: ExportDir) -> dict:
    request, status = export.request(), export.status()
    manifest = read_manifest(Path(request.out)) or {}
    quants = (manifest.get("export") or {}).get("quants") or list(request.quants) or ["auto"]
    return {"name": export.name, "state": status.state, "verification": manifest.get("status", "-"),
            "quants": quants, "out": request.out, "reason": status.reason}


def _push(args: argparse.Namespace) -> int:
    from export.hub import check_repo_id, push_folder, push_source

    check_repo_id(args.repo)
    folder = push_source(args.source, Home.from_env(), export_name=args.export_name)
    if not folder.is_dir():
        raise ExportError(phrase("{folder} does not exist", folder=folder), where=str(folder))
    print(args.catalog.gettext("pushing {folder} to {repo}", folder=folder, repo=args.repo), file=sys.stderr)
    url = push_folder(folder, args.repo, private=args.private)
    print(url)
    return 0
