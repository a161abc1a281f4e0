"""Serving under load: concurrent requests share generation steps and still answer as alone, a full
queue answers 429, and a client that leaves mid-stream stops its generation."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from pathlib import Path

import openai
import pytest

from engine.chat.backend import BatchDecoder
from engine.chat.transformers_backend import TransformersBackend
from engine.events import HttpRequest
from engine.paths import Home
from engine.serve.settings import ServeSettings
from tests.serve_helpers import Served

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPTS = ("hello", "What is the capital of France? Tell me more.", "こんにちは、元気ですか", "a")


class Spy:
    """Counts the model's generation calls (one per batch, however many rows join it later) and the
    rows of each step; can slow each step, so that requests sent meanwhile queue up as they would
    under real load."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, first_s: float = 0.0, step_s: float = 0.0):
        self.sizes: list[int] = []  # rows at the start of each generation call
        self.rows: list[int] = []  # rows of each step
        original = TransformersBackend._batch_decoding

        @contextlib.contextmanager
        def spied(backend, prompts, adapter):
            self.sizes.append(len(prompts))
            if len(self.sizes) == 1:
                time.sleep(first_s)
            with original(backend, prompts, adapter) as decoder:
                def advance(tokens):
                    self.rows.append(len(tokens))
                    time.sleep(step_s)
                    return decoder.advance(tokens)
                yield BatchDecoder(decoder.logits, advance, decoder.keep, decoder.join)

        monkeypatch.setattr(TransformersBackend, "_batch_decoding", spied)

    @property
    def steps(self) -> int:
        return len(self.rows)


@pytest.fixture
def served(tiny_model_dir: Path, tmp_path: Path):
    server = Served(Home(tmp_path / "home"), [str(tiny_model_dir)], ServeSettings(port=0, max_tokens=64))
    yield server
    server.close()


def _ask(server: Served, model: str, prompt: str, **params) -> str:
    reply = server.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], **{"max_tokens": 16, "temperature": 0, **params})
    return reply.choices[0].message.content


def _concurrently(server: Served, model: str, prompts) -> list[str]:
    answers: list[str | None] = [None] * len(prompts)

    def ask(index: int) -> None:
        answers[index] = _ask(server, model, prompts[index])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # the first one reaches the model first; the others queue behind it
    for thread in threads:
        thread.join(timeout=120)
    return answers


def test_concurrent_requests_share_generation_steps_and_answer_as_alone(served, tiny_model_dir, monkeypatch) -> None:
    model = tiny_model_dir.name
    spy = Spy(monkeypatch, step_s=0.02)  # slow enough steps for requests sent 20 ms apart to overlap
    alone = [_ask(served, model, prompt) for prompt in PROMPTS]
    calls, steps = len(spy.sizes), spy.steps
    assert max(spy.rows) == 1 and steps >= 4 * 8  # one at a time: a step per token of each answer
    together = _concurrently(served, model, PROMPTS)
    assert len(spy.sizes) - calls < len(PROMPTS)  # fewer generation calls than requests
    assert spy.steps - steps < steps and max(spy.rows) > 1, spy.rows  # and far fewer model steps
    assert together == alone  # greedy: sharing steps, joining and leaving change nothing any answer sees
    batched = [e for e in served.events[-len(PROMPTS):] if isinstance(e, HttpRequest)]
    assert all(e.status == 200 for e in batched) and max(e.batch_size for e in batched) > 1


def test_a_full_queue_answers_429_with_retry_after(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    Spy(monkeypatch, step_s=0.05)  # 16 tokens: about a second per answer
    server = Served(Home(tmp_path / "home"), [str(tiny_model_dir)],
                    ServeSettings(port=0, max_tokens=64, max_batch=1, max_queue=1))
    try:
        busy = [threading.Thread(target=_ask, args=(server, tiny_model_dir.name, prompt)) for prompt in PROMPTS[:2]]
        for thread in busy:
            thread.start()
            time.sleep(0.2)  # one in the model, one waiting: the queue is full
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).encode()
        connection = http.client.HTTPConnection("127.0.0.1", server.listener.port, timeout=30)
        connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        error = json.loads(response.read())["error"]
        assert response.status == 429 and response.getheader("Retry-After") == "1"
        assert error["type"] == "rate_limit_error" and error["code"] == "queue_full"
        with pytest.raises(openai.RateLimitError):
            _ask(server, tiny_model_dir.name, "again")
        for thread in busy:
            thread.join(timeout=60)
        assert _ask(server, tiny_model_dir.name, "now", max_tokens=2) is not None  # served again once drained
    finally:
        server.close()


def test_a_client_that_leaves_mid_stream_stops_its_generation(served, tiny_model_dir, monkeypatch) -> None:
    spy = Spy(monkeypatch, step_s=0.05)
    body = json.dumps({"model": tiny_model_dir.name, "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": 64, "temperature": 0, "stream": True}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", served.listener.port, timeout=30)
    connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    response.fp.readline()  # the first event: generation is under way
    while spy.steps < 5:
        time.sleep(0.01)
    connection.sock.close()  # the client goes away mid-answer
    connection.close()
    time.sleep(1.0)
    stopped_at = spy.steps
    time.sleep(1.0)
    assert spy.steps == stopped_at < 63  # no step since: the answer left its batch
    event = served.events[-1]
    assert event.finish_reason is None and event.completion_tokens < 64  # recorded as the client leaving
