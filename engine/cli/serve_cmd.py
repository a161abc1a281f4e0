"""`tanren serve` and `tanren servers`: OpenAI-compatible servers as detached jobs."""

from __future__ import annotations

import argparse
import json
import sys
import time

from engine.config.arguments import add_loading_options, loading_config
from engine.errors import TanrenError
from engine.i18n import N_, Gettext
from engine.jobs import Follower
from engine.paths import Home
from engine.phrases import phrase
from engine.serve.jobs import ServeRequest, ServerDir, list_servers, open_server, start_server, stop_server
from engine.serve.settings import DEFAULT_PORT, ServeSettings
from engine.textwidth import format_table

SERVERS_HEADERS = (N_("NAME"), N_("STATE"), "URL", N_("MODELS"), N_("REQUESTS"))  # --json keeps its keys
READY_TIMEOUT_S = 900.0  # loading a large model from a slow disk


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    serve = subparsers.add_parser(
        "serve", help=_("serve models over an OpenAI-compatible API (detached; `tanren serve stop NAME` stops it)"),
        description=_("Serve TARGETs (default: the built-in model) at http://HOST:PORT/v1. A target is what "
                      "`tanren chat` takes: a base model, a run (its base + adapter), an adapter folder, a merged "
                      "model folder or a .gguf file. Adapters on one base share one loaded copy; a request's "
                      "`model` picks one."))
    serve.add_argument("targets", nargs="*", metavar="TARGET")
    serve.add_argument("--host", default="127.0.0.1", help=_(
        "address to listen on (default 127.0.0.1: this machine only; any other needs --api-key)"))
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=_("TCP port (default {port})", port=DEFAULT_PORT))
    serve.add_argument("--api-key", help=_("require `Authorization: Bearer KEY` on every /v1 request"))
    serve.add_argument("--name", help=_("the server's name (default: the first target's)"))
    serve.add_argument("--backend", choices=("auto", "transformers", "llama.cpp"), default="auto",
                       help=_("auto: llama.cpp for .gguf files, transformers otherwise"))
    serve.add_argument("--context", type=int, default=ServeSettings.context,
                       help=_("longest prompt + answer in tokens (default {tokens})", tokens=ServeSettings.context))
    serve.add_argument("--max-tokens", type=int, default=ServeSettings.max_tokens, help=_(
        "the longest answer a request may ask for (default {tokens})", tokens=ServeSettings.max_tokens))
    serve.add_argument("--max-batch", type=int, default=ServeSettings.max_batch, help=_(
        "answers decoded together per model (default {count}; llama.cpp answers one at a time)",
        count=ServeSettings.max_batch))
    serve.add_argument("--max-queue", type=int, default=ServeSettings.max_queue, help=_(
        "requests that may wait per model; more are refused with 429 (default {count})",
        count=ServeSettings.max_queue))
    serve.add_argument("--no-wait", action="store_true",
                       help=_("return at once instead of when the server is ready"))
    add_loading_options(serve)
    serve.set_defaults(handler=_serve)

    servers = subparsers.add_parser("servers", help=_("list servers, or show / follow one's request log"))
    servers.add_argument("name", nargs="?")
    servers.add_argument("-f", "--follow", action="store_true",
                         help=_("keep following its requests until it stops"))
    servers.add_argument("--json", action="store_true")
    servers.set_defaults(handler=_servers)


def _serve(args: argparse.Namespace) -> int:
    from engine.models.registry import DEFAULT_MODEL
    from engine.serve.models import checked_spec

    home, _ = Home.from_env(), args.catalog.gettext
    if args.targets[:1] == ["stop"]:
        return _stop(args.targets[1:], home, _)
    targets = tuple(args.targets) or (DEFAULT_MODEL,)
    for target in targets:
        checked_spec(target, home)
    settings = ServeSettings(host=args.host, port=args.port, api_key=args.api_key, context=args.context,
                             max_tokens=args.max_tokens, max_batch=args.max_batch, max_queue=args.max_queue)
    if settings.port:
        from engine.serve.listen import bind

        bind(settings).close()  # a port in use is an error now too
    model = loading_config(args, base=targets[0])
    loading = {"dtype": model.dtype, "allow_pickle": model.allow_pickle, "trust_remote_code": model.trust_remote_code}
    server = start_server(ServeRequest(targets, settings, args.backend, loading), home, args.name)
    print(_("server {name} starting; follow it with: {command}", name=server.name, command=server.follow_command),
          file=sys.stderr)
    return 0 if args.no_wait else _wait_until_ready(server, _)


def _stop(names: list[str], home: Home, _: Gettext) -> int:
    if len(names) != 1:
        raise TanrenError(phrase("say which server to stop: {command}", command="tanren serve stop NAME"),
                          hint=phrase("see `tanren servers`"))
    server = stop_server(names[0], home)
    server.wait_until_released(timeout_s=60)
    print(f"{server.name}: {server.status().shown_reason(_)}")
    return 0


def _wait_until_ready(server: ServerDir, _: Gettext) -> int:
    """Show the start as it happens; return once it serves (exit 0) or has failed (exit 1)."""
    from engine.presentation.event_lines import EventFormatter, state_name

    formatter, follower = EventFormatter(_), Follower(server)
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while (info := server.info()) is None and time.monotonic() < deadline:
            for event in follower.read():
                if line := formatter.format(event):
                    print(line, file=sys.stderr, flush=True)
            status = server.status()
            if status.final:
                print(_("{name} {state}: {reason}", name=server.name, state=state_name(status.state, _),
                        reason=status.shown_reason(_)) + (f"\n  {status.shown_hint(_)}" if status.hint else ""),
                      file=sys.stderr)
                return 1
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("\n" + _("stopped waiting; {name} keeps starting. Follow it: {command}",
                       name=server.name, command=server.follow_command), file=sys.stderr)
        return 0
    if info is None:
        print(_("{name} is still loading; follow it: {command}", name=server.name, command=server.follow_command),
              file=sys.stderr)
        return 0
    print(info.url)
    stop = f"tanren serve stop {server.name}"
    print(_("serving {models}; stop with: {command}", models=", ".join(info.models), command=stop), file=sys.stderr)
    return 0


def _servers(args: argparse.Namespace) -> int:
    home = Home.from_env()
    if args.name:
        return _show(open_server(args.name, home), args)
    servers = list_servers(home)
    rows = [_row(server) for server in servers]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    elif rows:
        from engine.presentation.event_lines import state_name

        _ = args.catalog.gettext
        print(format_table([_(header) for header in SERVERS_HEADERS],
                           [[r["name"], state_name(r["state"], _), r["url"] or "-", ", ".join(r["models"]) or "-",
                             str(r["requests"])]
                            for r in rows]))
    else:
        print(args.catalog.gettext("no servers; start one with `tanren serve [TARGET ...]`"), file=sys.stderr)
    return 0


def _row(server: ServerDir) -> dict:
    from engine.events import HttpRequest

    info, status = server.info(), server.status()
    live = status.state == "running"
    return {"name": server.name, "state": status.state, "reason": status.reason,
            "url": info.url if info and live else None, "models": list(info.models) if info else [],
            "requests": sum(isinstance(e, HttpRequest) for e in server.events.read())}


def _show(server: ServerDir, args: argparse.Namespace) -> int:
    from engine.jobs.print_follow import follow, print_events

    if args.follow:
        return follow(server, args.catalog.gettext)
    print_events(server, args.catalog.gettext)
    return 0
