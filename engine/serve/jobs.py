"""Servers as detached jobs: `$TANREN_HOME/servers/<name>/`, started, listed and stopped from the
CLI or the workbench, living on after the terminal that started them.

Besides a job's files (engine.jobs) the folder holds `request.json`, what to serve and how, and,
once the models are loaded and the port is open, `server.json`: the URL and the served names.
The API key never touches the disk: the launcher hands it to the process in its environment.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.atomic import atomic_write_text
from engine.errors import ConfigError
from engine.jobs import JobDir, JobError, launch_detached, request_stop
from engine.paths import Home, validate_name
from engine.phrases import Phrase, phrase
from engine.serve.settings import ServeSettings

WORKER = "engine.serve.worker"
API_KEY_ENV = "TANREN_SERVE_API_KEY"


@dataclass(frozen=True)
class ServeRequest:
    targets: tuple[str, ...]
    settings: ServeSettings  # without its api_key, which travels in the environment
    backend: str = "auto"
    loading: dict = field(default_factory=dict)  # ModelConfig fields: dtype, trust_remote_code, allow_pickle

    def to_json(self) -> str:
        data = asdict(self)
        data["settings"]["api_key"] = None
        data["api_key"] = self.settings.api_key is not None  # only whether one is needed
        return json.dumps(data, ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str, api_key: str | None) -> ServeRequest:
        data = json.loads(text)
        if data.pop("api_key") and not api_key:
            raise JobError(phrase("this server needs an API key, and none was handed to it"),
                           hint=phrase("start it again with tanren serve ... --api-key KEY"))
        settings = ServeSettings(**{**data.pop("settings"), "api_key": api_key})
        return cls(targets=tuple(data.pop("targets")), settings=settings, **data)


@dataclass(frozen=True)
class ServerInfo:
    url: str
    models: tuple[str, ...]
    api_key: bool  # whether requests need one


@dataclass(frozen=True)
class ServerDir(JobDir):
    @property
    def home(self) -> Home:
        return Home(self.path.parent.parent)

    @property
    def crash_hint(self) -> Phrase:
        return phrase("see {log}, then start it again with tanren serve", log=str(self.log_file))

    @property
    def follow_command(self) -> str:
        return f"tanren servers {self.name} -f"

    @property
    def request_file(self) -> Path:
        return self.path / "request.json"

    @property
    def info_file(self) -> Path:
        return self.path / "server.json"

    def request(self, api_key: str | None) -> ServeRequest:
        return ServeRequest.from_json(self.request_file.read_text(encoding="utf-8"), api_key)

    def info(self) -> ServerInfo | None:
        """Where it listens and what it serves, once it is ready (None before, or if unreadable)."""
        try:
            data = json.loads(self.info_file.read_text(encoding="utf-8"))
            return ServerInfo(data["url"], tuple(data["models"]), bool(data["api_key"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_info(self, info: ServerInfo) -> None:
        atomic_write_text(self.info_file, json.dumps(asdict(info), ensure_ascii=False) + "\n")


def servers_folder(home: Home) -> Path:
    return home.root / "servers"


def default_name(targets: tuple[str, ...]) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", Path(targets[0]).name if targets else "server")[:60].strip("-._")
    return name or "server"


def start_server(request: ServeRequest, home: Home, name: str | None = None) -> ServerDir:
    """A fresh folder for the server (a stopped one of the same name is replaced) and its process."""
    name = validate_name(name or default_name(request.targets), what="server name")
    server = ServerDir(servers_folder(home) / name)
    if server.is_alive():
        raise JobError(phrase("a server named {name} is already running", name=name), where=str(server.path),
                       hint=phrase("stop it with `tanren serve stop {name}`, or choose another --name", name=name))
    if server.path.exists():
        shutil.rmtree(server.path)
    server.path.mkdir(parents=True)
    atomic_write_text(server.request_file, request.to_json() + "\n")
    server.set_status("queued", phrase("starting"))
    env = {API_KEY_ENV: request.settings.api_key} if request.settings.api_key else {}
    launch_detached(server, WORKER, env=env)
    return server


def list_servers(home: Home) -> list[ServerDir]:
    """Every server folder, newest first."""
    folder = servers_folder(home)
    found = [ServerDir(p) for p in folder.iterdir() if (p / "request.json").is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda s: s.request_file.stat().st_mtime, reverse=True)


def open_server(name: str, home: Home) -> ServerDir:
    server = ServerDir(servers_folder(home) / validate_name(name, what="server name"))
    if not server.request_file.is_file():
        raise JobError(phrase("no server named {name}", name=name), where=str(server.path),
                       hint=phrase("see `tanren servers`"))
    return server


def stop_server(name: str, home: Home) -> ServerDir:
    server = open_server(name, home)
    if not request_stop(server):
        raise JobError(phrase("{name} is not running", name=name), where=str(server.path),
                       hint=phrase("see `tanren servers`"))
    return server


def serve_target(target: str, home: Home, *, name: str | None = None) -> ServerDir:
    """The workbench's one-key serving: the server already serving `target` under that name, or a
    new one on 127.0.0.1, port 8000 when it is free, else any free port (the URL says which)."""
    from engine.serve.listen import bind

    name = validate_name(name or default_name((target,)), what="server name")
    running = ServerDir(servers_folder(home) / name)
    if running.is_alive():
        return running
    settings = ServeSettings()
    try:
        bind(settings).close()
    except ConfigError:
        settings = ServeSettings(port=0)
    return start_server(ServeRequest((target,), settings), home, name)
