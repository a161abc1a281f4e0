"""A real tanren server in a thread of the test process, on the models a test names."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai

from engine.chat.pool import TargetPool
from engine.events import HttpRequest
from engine.paths import Home
from engine.serve.app import create_app
from engine.serve.listen import Listener
from engine.serve.models import ServedModels, target_spec
from engine.serve.settings import ServeSettings


class Served:
    """A server in a thread, with the request events it reported."""

    def __init__(self, home: Home, targets: list[str], settings: ServeSettings):
        self.events: list[HttpRequest] = []
        self.models = ServedModels([target_spec(t, home) for t in targets], TargetPool(home, max_context=256),
                                   max_batch=settings.max_batch, max_queue=settings.max_queue)
        self.listener = Listener(create_app(self.models, settings, self.events.append), settings).start()
        self.url = f"http://127.0.0.1:{self.listener.port}"

    def client(self, key: str = "unused") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=120)

    def post(self, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + path, data=body, method="POST",
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def close(self) -> None:
        self.listener.stop()
        self.models.close()
