"""`tanren export`, `tanren exports` and `tanren push`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.errors import ExportError
from engine.i18n import Gettext
from engine.jobs.print_follow import follow, print_events
from engine.paths import Home
from engine.textwidth import format_table
from export.jobs import ExportDir, list_exports, open_export, prepare_export, start_export
from export.manifest import read_manifest
from export.quantize import QUANT_TYPES, SMALL_MODEL_PARAMETERS


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    export = subparsers.add_parser(
        "export", help="merge a run's adapter, write GGUF files, an Ollama Modelfile, and verify them (detached)")
    export.add_argument("run", nargs="?", help="the run to export")
    export.add_argument("--quant", metavar="TYPES",
                        help=f"GGUF types besides F16, comma-separated: {', '.join(QUANT_TYPES)} (the first one is "
                        f"what the Modelfile runs; default: Q8_0 under {SMALL_MODEL_PARAMETERS / 1e9:g}B parameters, "
                        "else Q4_K_M and Q8_0)")
    export.add_argument("--ollama", metavar="NAME", help="also `ollama create NAME` once verified")
    export.add_argument("--out", metavar="DIR", help="folder for the artifacts (default: inside the run's export folder)")
    export.add_argument("--name", help="the export's name (default: the date and time)")
    export.add_argument("--weight", type=float, default=1.0, help="scale of the run's adapter (default 1)")
    export.add_argument("--adapter", dest="adapters", action="append", default=[], metavar="RUN_OR_DIR[:WEIGHT]",
                        help="merge another LoRA adapter too (repeatable)")
    export.add_argument("--follow", action="store_true", help="stream progress and exit with the export's outcome")
    export.add_argument("--architectures", action="store_true",
                        help="list the causal LM architectures llama.cpp's installed converter turns into GGUF")
    export.set_defaults(handler=_export)

    exports = subparsers.add_parser("exports", help="list a run's exports, or show / follow one")
    exports.add_argument("run")
    exports.add_argument("export", nargs="?", help="the export's name")
    exports.add_argument("-f", "--follow", action="store_true", help="keep following until the export ends")
    exports.add_argument("--json", action="store_true")
    exports.set_defaults(handler=_exports)

    push = subparsers.add_parser("push", help="upload a verified export (or an adapter folder) to the Hugging Face Hub")
    push.add_argument("source", metavar="RUN|DIR", help="a run (its newest verified export) or a folder")
    push.add_argument("--repo", required=True, metavar="USER/NAME", help="the Hub repository (created if missing)")
    push.add_argument("--export", dest="export_name", metavar="NAME", help="push this export of the run")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.set_defaults(handler=_push)


def _export(args: argparse.Namespace) -> int:
    if args.architectures:
        print(architectures_listing())
        return 0
    if not args.run:
        raise ExportError("name the run to export", where="RUN", hint="see `tanren runs` for your runs")
    home = Home.from_env()
    request = prepare_export(args.run, home, quants=args.quant, weight=args.weight, adapters=args.adapters,
                             ollama=args.ollama, out=args.out, name=args.name)
    export = start_export(request, home)
    print(f"started export {export.run_name}/{export.name} (pid {export.pid()}); files go to {request.out}",
          file=sys.stderr)
    if not args.follow:
        print(f"follow it with: {export.follow_command}", file=sys.stderr)
        print(export.name)
        return 0
    return follow(export, args.catalog.gettext)


def architectures_listing(width: int = 78) -> str:
    """The installed converter's causal LM architectures, wrapped (the README shows this output)."""
    import textwrap

    from export.converters import causal_lm_architectures, installed_converters

    converters = installed_converters()
    names = causal_lm_architectures(converters.architectures())
    header = f"GGUF export: {len(names)} causal LM architectures (llama-cpp-python {converters.version}'s converter)"
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
    if not exports:
        print(f"{args.run} has no exports yet; start one with: tanren export {args.run}")
        return 0
    rows = [[r["name"], r["state"], r["verification"], ",".join(r["quants"]), r["out"]] for r in map(_row, exports)]
    print(format_table(["EXPORT", "STATUS", "VERIFIED", "TYPES", "FILES"], rows))
    return 0


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
        raise ExportError(f"{folder} does not exist", where=str(folder))
    print(f"pushing {folder} to {args.repo}", file=sys.stderr)
    url = push_folder(folder, args.repo, private=args.private)
    print(url)
    return 0
