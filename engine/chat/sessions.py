"""Chat sessions saved as JSONL under $TANREN_HOME/chats: a header line, then one line per message.

    {"type": "session", "version": 1, "target": ..., "adapter": ..., "backend": ..., "params": {...}}
    {"type": "message", "role": "user", "content": "..."}
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from engine.atomic import atomic_write_text
from engine.config import GenerationConfig
from engine.errors import ConfigError, TanrenError
from engine.messages import Message
from engine.paths import Home, validate_name
from engine.phrases import phrase

VERSION = 1


@dataclass(frozen=True)
class ChatSession:
    target: str
    messages: tuple[Message, ...] = ()
    adapter: str | None = None
    backend: str = "auto"
    params: GenerationConfig = field(default_factory=GenerationConfig)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def session_path(home: Home, name: str) -> Path:
    return home.chats / f"{validate_name(name, what='chat name')}.jsonl"


def save_session(home: Home, name: str, session: ChatSession) -> Path:
    header = {"type": "session", "version": VERSION, "target": session.target, "adapter": session.adapter,
              "backend": session.backend, "created": session.created,
              "params": dataclasses.asdict(session.params)}
    lines = [header] + [{"type": "message", **m.as_dict()} for m in session.messages]
    path = session_path(home, name)
    atomic_write_text(path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    return path


def list_sessions(home: Home) -> list[str]:
    return sorted(p.stem for p in home.chats.glob("*.jsonl")) if home.chats.is_dir() else []


def load_session(home: Home, name: str) -> ChatSession:
    path = session_path(home, name)
    if not path.is_file():
        saved = ", ".join(list_sessions(home)) or phrase("none")
        raise TanrenError(phrase("no saved chat named {name!r}", name=name), where=str(path),
                          hint=phrase("saved chats: {names}", names=saved))
    records = [_parse(path, number, line)
               for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    if not records or records[0][1].get("type") != "session":
        raise TanrenError(phrase("{file} does not start with a session header line", file=path.name),
                          where=f"{path}:1")
    header = records[0][1]
    messages = []
    for number, record in records[1:]:
        try:
            messages.append(Message(record["role"], record["content"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise TanrenError(phrase("bad message in {file}: {why}", file=path.name, why=exc), where=f"{path}:{number}",
                              hint=phrase("each line after the header is {shape}",
                                          shape='{"type": "message", "role": ..., "content": ...}')) from None
    try:
        params = GenerationConfig(**header.get("params", {}))
    except (TypeError, ConfigError) as exc:
        message = exc.phrases[0] if isinstance(exc, ConfigError) else str(exc)
        raise TanrenError(phrase("bad generation parameters in {file}: {why}", file=path.name, why=message),
                          where=f"{path}:1") from None
    return ChatSession(target=header.get("target", ""), messages=tuple(messages), adapter=header.get("adapter"),
                       backend=header.get("backend", "auto"), params=params, created=header.get("created", ""))


def _parse(path: Path, number: int, line: str) -> tuple[int, dict]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TanrenError(phrase("{file} line {number} is not JSON ({why})", file=path.name, number=number,
                                 why=exc.msg),
                          where=f"{path}:{number}") from None
    if not isinstance(record, dict):
        raise TanrenError(phrase("{file} line {number} is not a JSON object", file=path.name, number=number),
                          where=f"{path}:{number}")
    return number, record
