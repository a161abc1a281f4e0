"""How a server listens and what it bounds, checked before anything is loaded."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from engine.errors import ConfigError
from engine.phrases import phrase

DEFAULT_PORT = 8000


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str | None = None
    max_tokens: int = 2048           # the longest answer one request may ask for
    max_body_bytes: int = 4 * 2**20  # the largest request body
    context: int = 4096              # the longest prompt + answer, in tokens
    max_batch: int = 8               # answers decoded together, per model
    max_queue: int = 32              # requests waiting per model before a 429

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.api_key:
            raise ConfigError(
                phrase("serving on {host} would let anyone who can reach this machine use the model", host=self.host),
                where="--host", hint=phrase("give --api-key KEY (clients send it as a Bearer token), "
                                            "or keep the default --host 127.0.0.1 and reach it through an SSH tunnel"))
        if not 0 <= self.port < 65536:  # 0: any free port, which the server then reports
            raise ConfigError(phrase("--port {port} is not a TCP port", port=self.port), where="--port",
                              hint=phrase("use 1-65535"))
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError(phrase("the API key is shorter than 8 characters"), where="--api-key",
                              hint=phrase("use a long random key, e.g. from `openssl rand -hex 16`"))
        for name in ("max_tokens", "max_body_bytes", "context", "max_batch", "max_queue"):
            if getattr(self, name) < 1:
                option = f"--{name.replace('_', '-')}"
                raise ConfigError(phrase("{option} must be positive", option=option), where=option)
