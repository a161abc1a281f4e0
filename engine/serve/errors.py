"""Errors in OpenAI's JSON shape, `{"error": {"message", "type", "param", "code"}}`, with the status
codes OpenAI's clients expect; whatever goes wrong in one request, the server answers and lives on."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engine.errors import TanrenError
from engine.serve.schemas import ErrorBody, ErrorDetail

log = logging.getLogger("tanren.serve")


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(message=message, type=error_type(status), param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]
    where = [str(part) for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid" or not where:
        return "the request body must be a JSON object, sent as Content-Type: application/json", None
    if first.get("type") == "extra_forbidden":
        return f"Unrecognized request argument supplied: {where[-1]}", where[-1]
    param = ".".join(where) or None
    return (f"{param}: {first.get('msg', 'invalid value')}" if param else str(first.get("msg"))), param


def install_error_handlers(app: FastAPI, on_error: Callable[[Request, int, str], None]) -> None:
    """Answer every failure in OpenAI's shape, and tell `on_error` (request, status, message)."""

    def respond(request: Request, status: int, message: str, **fields) -> JSONResponse:
        on_error(request, status, message)
        return error_response(status, message, **fields)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return respond(request, exc.status, exc.message, param=exc.param, code=exc.code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return respond(request, 400, message, param=param, code="invalid_json" if param is None else None)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return respond(request, exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(TanrenError)
    async def _tanren(request: Request, exc: TanrenError) -> JSONResponse:
        return respond(request, 400, exc.message + (f" ({exc.hint})" if exc.hint else ""))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return respond(request, 500, f"the server failed to answer: {type(exc).__name__}: {exc}")


def sse_error(status: int, message: str) -> str:
    """An error met after a stream began, as the data of one last event (OpenAI's shape)."""
    body = ErrorBody(error=ErrorDetail(message=message, type=error_type(status)))
    return json.dumps(body.model_dump(), ensure_ascii=False)
