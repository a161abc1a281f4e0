"""uvicorn serving the app on a socket bound first, so that a port in use is a clear error, not a
log line from inside the server; in the foreground (the detached job) or in a thread (tests)."""

from __future__ import annotations

import errno
import socket
import threading
import time

from engine.errors import ConfigError
from engine.phrases import phrase
from engine.serve.settings import ServeSettings


def bind(settings: ServeSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(phrase("port {port} on {host} is already in use", port=settings.port, host=settings.host),
                              where="--port",
                              hint=phrase("choose another --port, or stop what listens there (`tanren servers`)")) from None
        raise ConfigError(phrase("cannot listen on {host}:{port}: {why}", host=settings.host, port=settings.port,
                                 why=exc.strerror), where="--host") from None
    sock.listen(128)
    return sock


class Listener:
    def __init__(self, app, settings: ServeSettings):
        import uvicorn

        self.socket = bind(settings)
        self.host = settings.host
        self.port = self.socket.getsockname()[1]  # the real one when --port 0 asked for any free port
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                                    timeout_graceful_shutdown=5))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT (uvicorn's handlers), then finish the requests under way."""
        self.server.run(sockets=[self.socket])

    def start(self, timeout_s: float = 30.0) -> Listener:
        """Serve from a thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.run, name="tanren-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
