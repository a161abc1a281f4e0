"""`tanren serve` as a detached job: started, listed, followed through its request events, stopped."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import openai
import pytest

from engine.events import HttpRequest, Log
from engine.paths import Home
from engine.serve.jobs import open_server
from tests.cli import tanren

KEY = "job-key-0123456789abcdef"


def test_a_detached_server_is_listed_logs_its_requests_and_stops(home: Home, tiny_model_dir: Path) -> None:
    started = tanren("serve", str(tiny_model_dir), "--port", "0", "--name", "s1", "--api-key", KEY, home=home)
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    server = open_server("s1", home)
    try:
        assert os.getsid(server.pid()) != os.getsid(0)  # its own session: a closed terminal does not stop it
        assert not any(KEY in p.read_text(errors="replace") for p in server.path.rglob("*") if p.is_file())

        client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=120)
        reply = client.chat.completions.create(model=tiny_model_dir.name, max_tokens=4, temperature=0,
                                               messages=[{"role": "user", "content": "hello"}])
        assert reply.choices[0].finish_reason in ("stop", "length")

        listed = tanren("servers", "--json", home=home)
        rows = json.loads(listed.stdout)
        assert [(r["name"], r["state"], r["url"], r["models"], r["requests"]) for r in rows] == \
            [("s1", "running", url, [tiny_model_dir.name], 1)]
        assert "s1" in tanren("servers", home=home).stdout

        events = server.events.read()
        requests = [e for e in events if isinstance(e, HttpRequest)]
        assert [(e.path, e.status, e.model, e.completion_tokens) for e in requests] == \
            [("/v1/chat/completions", 200, tiny_model_dir.name, reply.usage.completion_tokens)]
        loaded = [e.phrase.msgid for e in events if isinstance(e, Log) and e.phrase is not None]
        assert "loading {model} with transformers" in loaded  # shown in the user's language by `tanren servers`
        shown = tanren("servers", "s1", home=home).stdout
        assert f"POST /v1/chat/completions 200 {tiny_model_dir.name}" in shown
    finally:
        stopped = tanren("serve", "stop", "s1", home=home)
    assert stopped.returncode == 0 and "stopped after 1 request" in stopped.stdout
    assert server.status().state == "done" and not server.is_alive()
    assert "done" in tanren("servers", home=home).stdout


def test_what_cannot_be_served_is_refused_before_anything_starts(home: Home, tiny_model_dir: Path) -> None:
    unknown = tanren("serve", "no-such-model", home=home)
    assert unknown.returncode == 1 and "unknown model 'no-such-model'" in unknown.stderr
    public = tanren("serve", str(tiny_model_dir), "--host", "0.0.0.0", home=home)
    assert public.returncode == 1 and "--api-key" in public.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = tanren("serve", str(tiny_model_dir), "--port", str(taken.getsockname()[1]), home=home)
    assert busy.returncode == 1 and "already in use" in busy.stderr
    assert not (home.root / "servers").exists()
    missing = tanren("serve", "stop", "nope", home=home)
    assert missing.returncode == 1 and "no server named nope" in missing.stderr


@pytest.mark.parametrize("args", [("serve", "stop"), ("servers", "nope")])
def test_naming_no_server_is_a_clear_error(home: Home, args: tuple[str, ...]) -> None:
    result = tanren(*args, home=home)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "server" in result.stderr
