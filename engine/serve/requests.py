"""The event each request leaves in a server's folder (engine.events.HttpRequest)."""

from __future__ import annotations

import time

from starlette.requests import Request

from engine.events import HttpRequest
from engine.serve.answer import Outcome


def _latency(request: Request) -> float:
    started = getattr(request.state, "started", None)
    return round(time.perf_counter() - started, 4) if started is not None else 0.0


def answered(request: Request, model: str, outcome: Outcome) -> HttpRequest:
    usage = outcome.usage()
    return HttpRequest(request.method, request.url.path, 200, model, usage.prompt_tokens, usage.completion_tokens,
                       _latency(request), outcome.finish_reason, queue_s=round(outcome.queue_s, 4),
                       batch_size=outcome.batch_size,
                       tokens_per_s=round(outcome.stats.tokens_per_s, 2) if outcome.stats else 0.0)


def refused(request: Request, status: int, message: str) -> HttpRequest:
    return HttpRequest(request.method, request.url.path, status, latency_s=_latency(request), error=message[:300])
