"""A detached server: `python -m engine.serve.worker SERVER_DIR`.

It loads every target once, opens the port, records where it listens, and serves until
`tanren serve stop` (SIGTERM), finishing the requests under way. Each request leaves an event.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from engine.config import ModelConfig
from engine.events import Log
from engine.paths import Home
from engine.phrases import Phrase, phrase
from engine.serve.jobs import API_KEY_ENV, ServerDir, ServerInfo


class _Stopped(Exception):
    """SIGTERM before the server took over its signals (while the models load)."""


def _stop(_signum, _frame) -> None:
    raise _Stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.serve.worker")
    parser.add_argument("server_dir", type=Path)
    server = ServerDir(parser.parse_args(argv).server_dir)
    server.pid_file.write_text(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, _stop)
    try:
        requests = _serve(server)
    except _Stopped:
        server.set_status("cancelled", phrase("stopped while loading"))
        return 0
    except BaseException as exc:  # noqa: BLE001 - every crash must end as a recorded failure
        return server.record_failure(exc)
    server.set_status("done", _stopped_after(requests))
    return 0


def _stopped_after(requests: int) -> Phrase:
    # a status's phrase has no plural form, so the English one is chosen here
    if requests == 1:
        return phrase("stopped after 1 request")
    return phrase("stopped after {count} requests", count=requests)


def _serve(server: ServerDir) -> int:
    """Serve until stopped; returns how many requests came."""
    from engine.chat.pool import TargetPool
    from engine.serve.app import create_app
    from engine.serve.listen import Listener
    from engine.serve.models import ServedModels, target_spec

    request = server.request(os.environ.pop(API_KEY_ENV, None))
    settings = request.settings
    home = Home.from_env()
    server.set_status("running", phrase("loading {targets}", targets=", ".join(request.targets)))
    pool = TargetPool(home, max_context=settings.context, loading=ModelConfig(**request.loading),
                      on_status=lambda message: server.events.append(Log.said(message)))
    specs = [target_spec(target, home) for target in request.targets]
    models = ServedModels([_with_backend(spec, request.backend) for spec in specs], pool,
                          max_batch=settings.max_batch, max_queue=settings.max_queue)
    count = [0]

    def record(event) -> None:
        count[0] += 1
        server.events.append(event)

    try:
        listener = Listener(create_app(models, settings, record), settings)
        server.write_info(ServerInfo(listener.url, tuple(models.names), settings.api_key is not None))
        server.set_status("running", phrase("serving {models} at {url}", models=", ".join(models.names),
                                            url=listener.url))
        # uvicorn takes SIGTERM for a graceful shutdown, then raises it again for the handler it
        # found, which must now let the process record its end instead of aborting the load
        signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
        listener.run()
    finally:
        models.close()
    return count[0]


def _with_backend(spec, backend: str):
    import dataclasses

    return spec if backend == "auto" or spec.adapter else dataclasses.replace(spec, backend=backend)


if __name__ == "__main__":
    sys.exit(main())
