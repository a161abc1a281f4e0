"""The OpenAI-compatible API as a FastAPI app: /v1/chat/completions, /v1/completions, /v1/models, /health.

Every endpoint is a thin shell: the prompt through `tanren chat`'s template, the request queued
with its model's scheduler (engine.serve.scheduler), which decodes it, batched with others, with
`tanren chat`'s sampler and stop set. A client that goes away sets the answer's cancel event,
which the scheduler checks at every step.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from fastapi.sse import format_sse_event
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from engine.messages import Message
from engine.serve.answer import Outcome, answer, sampling
from engine.serve.errors import ApiError, error_response, install_error_handlers, sse_error
from engine.serve.models import ServedModel, ServedModels
from engine.serve.scheduler import Ticket
from engine.events import HttpRequest
from engine.serve import requests
from engine.serve.schemas import (
    AnswerMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Completion,
    CompletionChoice,
    CompletionRequest,
    Delta,
    ModelCard,
    ModelList,
    new_id,
    now,
)
from engine.serve.settings import ServeSettings


DISCONNECT_POLL_S = 0.25  # how often a request waiting for a whole answer checks that its client is still there


@dataclass(frozen=True)
class _Prompt:
    served: ServedModel
    ids: list[int]


def create_app(models: ServedModels, settings: ServeSettings,
               on_request: Callable[[HttpRequest], None] = lambda event: None) -> FastAPI:
    """The app serving `models`; `on_request` gets an event for every request, answered or refused."""
    app = FastAPI(title="tanren", docs_url=None, redoc_url=None, openapi_url=None)
    # bounds a body sent without a length as it is read, raising the 413 that the handlers shape
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=settings.max_body_bytes)
    install_error_handlers(app, on_error=lambda request, status, message: on_request(
        requests.refused(request, status, message)))
    authorized = _bearer(settings.api_key)

    @app.middleware("http")
    async def _clock_and_bound(request: Request, call_next):
        request.state.started = time.perf_counter()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.max_body_bytes:
            # refused before reading it (Starlette's limiter would answer in plain text)
            message = f"the request body has {declared} bytes; this server takes at most {settings.max_body_bytes}"
            on_request(requests.refused(request, 413, message))
            return error_response(413, message)
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "models": models.names}

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=m.name, created=m.created) for m in models.models.values()])

    @app.post("/v1/chat/completions", dependencies=[Depends(authorized)])
    async def chat(body: ChatCompletionRequest, request: Request):
        served = models.get(body.model)
        messages = [_message(m, i) for i, m in enumerate(body.messages)]
        prompt = _Prompt(served, _checked(lambda: served.target.backend.encode(messages, served.target.adapter)))
        if body.stream:
            return _stream(request, body, prompt, settings, on_request, _chat_chunks)
        text, outcome = await _whole(request, body, prompt, settings)
        on_request(requests.answered(request, served.name, outcome))
        return ChatCompletion(model=served.name, usage=outcome.usage(), choices=[
            ChatChoice(message=AnswerMessage(content=text), finish_reason=outcome.finish_reason)])

    @app.post("/v1/completions", dependencies=[Depends(authorized)])
    async def complete(body: CompletionRequest, request: Request):
        served = models.get(body.model)
        tokenizer = served.target.backend.tokenizer
        prompt = _Prompt(served, _checked(lambda: list(tokenizer(body.prompt, add_special_tokens=True)["input_ids"])))
        if body.stream:
            return _stream(request, body, prompt, settings, on_request, _completion_chunks)
        text, outcome = await _whole(request, body, prompt, settings)
        on_request(requests.answered(request, served.name, outcome))
        return Completion(model=served.name, usage=outcome.usage(), choices=[
            CompletionChoice(text=text, finish_reason=outcome.finish_reason)])

    return app


def _bearer(api_key: str | None) -> Callable:
    """A dependency that checks `Authorization: Bearer KEY` in constant time (none without a key)."""
    async def check(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), api_key.encode()):
            raise HTTPException(401, "Incorrect API key provided: give it as `Authorization: Bearer KEY`",
                                headers={"WWW-Authenticate": "Bearer"})
    return check


def _message(message, index: int) -> Message:
    try:
        return Message("system" if message.role == "developer" else message.role, message.text())
    except ValueError as exc:
        raise ApiError(400, f"messages[{index}]: {exc}", param=f"messages.{index}.content") from None


def _checked(encode: Callable[[], list[int]]) -> list[int]:
    """The prompt's ids; a template that refuses the conversation (roles out of order...) is the client's error."""
    try:
        ids = encode()
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - jinja's and the tokenizers' errors name no common type
        raise ApiError(400, f"the model's chat template cannot format these messages: {exc}",
                       param="messages") from None
    if not ids:
        raise ApiError(400, "the prompt is empty", param="prompt")
    return ids


def _start(body, prompt: _Prompt, settings: ServeSettings) -> tuple[Callable[[], Iterator[str]], Outcome,
                                                                    threading.Event]:
    """Queue the request for its model (a full queue is a 429 now); its answer, outcome and cancel."""
    served = prompt.served
    params = sampling(body, prompt_tokens=len(prompt.ids), context_length=served.target.backend.context_length,
                      max_tokens_limit=settings.max_tokens)
    ticket = served.scheduler.submit(Ticket(prompt.ids, params, served.target.adapter))
    outcome = Outcome()
    return lambda: answer(ticket, body.stop, outcome), outcome, ticket.cancel


async def _whole(request: Request, body, prompt: _Prompt, settings: ServeSettings) -> tuple[str, Outcome]:
    """The whole answer; a client that leaves before it is done cancels it (its batch goes on without it)."""
    deltas, outcome, cancel = _start(body, prompt, settings)
    work = asyncio.ensure_future(run_in_threadpool(lambda: "".join(deltas())))
    while not work.done():
        await asyncio.wait({work}, timeout=DISCONNECT_POLL_S)
        if not work.done() and await request.is_disconnected():
            cancel.set()
    return work.result(), outcome


def _stream(request: Request, body, prompt: _Prompt, settings: ServeSettings,
            on_request: Callable[[HttpRequest], None], chunks) -> StreamingResponse:
    deltas, outcome, cancel = _start(body, prompt, settings)  # a bad request fails here, before the stream

    async def events() -> AsyncIterator[bytes]:
        try:
            async for data in chunks(prompt.served.name, _in_thread(deltas, cancel), outcome, body.include_usage):
                yield format_sse_event(data_str=data)
        except Exception as exc:  # noqa: BLE001 - the status line is sent: the error becomes the last event
            yield format_sse_event(data_str=sse_error(500, f"{type(exc).__name__}: {exc}"))
        finally:
            cancel.set()
            on_request(requests.answered(request, prompt.served.name, outcome))
        yield format_sse_event(data_str="[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _chat_chunks(model: str, deltas: AsyncIterator[str], outcome: Outcome,
                       include_usage: bool) -> AsyncIterator[str]:
    ids = dict(id=new_id("chatcmpl"), created=now(), model=model)
    chunk = lambda delta, reason=None: ChatCompletionChunk(  # noqa: E731
        **ids, choices=[ChunkChoice(delta=delta, finish_reason=reason)]).model_dump_json(exclude_none=True)
    yield chunk(Delta(role="assistant", content=""))
    async for text in deltas:
        yield chunk(Delta(content=text))
    yield chunk(Delta(), outcome.finish_reason or "stop")
    if include_usage:
        yield ChatCompletionChunk(**ids, choices=[], usage=outcome.usage()).model_dump_json()


async def _completion_chunks(model: str, deltas: AsyncIterator[str], outcome: Outcome,
                             include_usage: bool) -> AsyncIterator[str]:
    ids = dict(id=new_id("cmpl"), created=now(), model=model)
    async for text in deltas:
        yield Completion(**ids, choices=[CompletionChoice(text=text)]).model_dump_json(exclude_none=True)
    yield Completion(**ids, choices=[CompletionChoice(text="", finish_reason=outcome.finish_reason or "stop")]
                     ).model_dump_json(exclude_none=True)
    if include_usage:
        yield Completion(**ids, choices=[], usage=outcome.usage()).model_dump_json()


async def _in_thread(deltas: Callable[[], Iterator[str]], cancel: threading.Event) -> AsyncIterator[str]:
    """The answer's deltas, generated in a thread of their own; leaving early cancels the answer."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    end = object()

    def put(item) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
            pass

    def run() -> None:
        try:
            for delta in deltas():
                put(delta)
        except Exception as exc:  # noqa: BLE001 - handed to the stream, which reports it
            put(exc)
        finally:
            put(end)

    threading.Thread(target=run, name="tanren-answer", daemon=True).start()
    try:
        while (item := await queue.get()) is not end:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        cancel.set()
