"""The FastAPI app of the decision service: routes, authentication, rate limit, body-size limit, error format.

| route | auth | does |
| --- | --- | --- |
| ``GET /api/v1/health`` | none | liveness: ``{"status": "ok"}`` |
| ``GET /api/v1/ready`` | none | readiness: model loaded, store writable (503 if not); the run's shapes |
| ``GET /api/v1/metrics`` | none | Prometheus text (:mod:`~agents.app.service.metrics`) |
| ``POST /api/v1/decision`` | ``decide`` | a decision on the key's account |
| ``POST /api/v1/fills`` | ``decide`` | an execution of the key's open order |
| ``GET /api/v1/account`` | any key | the key's own account |
| ``GET /api/v1/accounts/{name}`` | any key | an account: the key's own, or any with ``admin`` |
| ``POST /api/v1/halt`` | ``admin`` | the kill switch: halt an account (or all), stored before the answer |
| ``POST /api/v1/resume`` | ``admin`` | clear a halt |
| ``POST /api/v1/sleep-cycle`` | ``admin`` | queue a sleep job (202; :mod:`~agents.app.service.sleep`) |
| ``GET /api/v1/jobs/{id}`` | ``admin`` | a sleep job's state, progress, result |
| ``GET /api/v1/model`` | ``admin`` | the version served and its parent |
| ``POST /api/v1/model/rollback`` | ``admin`` | serve the previous version again |
| ``POST /api/v1/accounts/reset`` | ``admin`` | start an account afresh: flat, no halt, new session (paper trading; :mod:`~agents.app.service.venue`) |

Requests carry ``Authorization: Bearer <key>``. Errors are JSON, ``{"error": <kind>, "detail": [{"field",
"message"}]}``: 400 (not JSON), 401 (no or unknown key, with ``WWW-Authenticate: Bearer``), 403 (a scope or an
account the key lacks), 404, 409 (a fill the open order cannot take, a resume of an account that is not
halted), 413 (a body over ``max_body_bytes``, refused before it is read whole), 422 (a field: which, and why),
429 (the key's rate limit, with ``Retry-After``). A failing part of the glass box halts the account (the
answer says so) rather than answering 500.

The app runs every request on the event loop's thread, one after another: the accounts need no locks and the
decisions of one account keep their order. Serve it with one uvicorn worker (the accounts live in memory).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from agents.app.service.keys import Principal
from agents.app.service.metrics import CONTENT_TYPE
from agents.app.service.ratelimit import RateLimiter
from agents.app.service.schemas import (
    DecisionRequest,
    FieldError,
    FillRequest,
    HaltRequest,
    MAX_BODY_BYTES,
    ResetRequest,
    ResumeRequest,
    error_detail,
)
from agents.app.service.service import DecisionService
from agents.app.service.sleep import SleepRequest
from agents.app.service.venue import reset_account

API = "/api/v1"

_NO_KEY = "expected `Authorization: Bearer <key>`"
_BAD_KEY = "unknown or malformed key"
_NO_SCOPE = "this key lacks the {!r} scope (it has {})"
_TOO_LARGE = "request body larger than {} bytes"
_RATE = "rate limit of this key exceeded ({:g} requests/s, bursts of {:g}); retry after {} s"


class _ApiError(Exception):
    def __init__(self, status: int, kind: str, field: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.kind, self.field, self.message, self.headers = status, kind, field, message, headers


def _error(status: int, kind: str, detail: list[dict[str, str]], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": detail}, status_code=status, headers=headers)


_KINDS = {400: "invalid_json", 403: "forbidden", 404: "not_found", 409: "conflict", 422: "invalid_request"}


class ServiceMiddleware:
    """ASGI middleware around the app: 413 for a body over ``limit`` bytes (by its ``Content-Length``, or while
    it streams) and every answer counted by status (``janus_http_responses_total``).

    A plain ASGI layer rather than FastAPI's ``@app.middleware`` (Starlette's ``BaseHTTPMiddleware``, which
    costs a task and a stream per request).
    """

    def __init__(self, app: Any, limit: int, count: Callable[[int], None]) -> None:
        self.app = app
        self.limit = int(limit)
        self.count = count

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.count(int(message["status"]))
            await send(message)

        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = 0
                if length > self.limit:
                    too_large = _error(413, "payload_too_large",
                                       [{"field": "body", "message": _TOO_LARGE.format(self.limit)}])
                    await too_large(scope, receive, counted)
                    return
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _ApiError(413, "payload_too_large", "body", _TOO_LARGE.format(self.limit))
            return message

        await self.app(scope, limited, counted)


def create_app(service: DecisionService, *, rate: float = 100.0, burst: float = 200.0,
               max_body_bytes: int = MAX_BODY_BYTES) -> Any:
    """The app serving ``service`` (module docstring).

    Args:
        service: the decision service (closed when the app shuts down).
        rate: sustained requests per second per key.
        burst: requests a key may send at once.
        max_body_bytes: largest request body.
    """
    limiter = RateLimiter(rate, burst)
    metrics = service.metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if service.sleep is not None:
            service.sleep.start()
        yield
        if service.sleep is not None:
            await service.sleep.stop()
        accounts = len(service.slots)
        service.close()
        print(f"decision service stopped: {accounts} audit trail(s) flushed, store closed", flush=True)

    app = FastAPI(title="JANUS decision service", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.exception_handler(_ApiError)
    async def api_error(request: Request, err: _ApiError) -> JSONResponse:
        return _error(err.status, err.kind, [{"field": err.field, "message": err.message}], err.headers)

    @app.exception_handler(FieldError)
    async def field_error(request: Request, err: FieldError) -> JSONResponse:
        return _error(err.status, _KINDS.get(err.status, "invalid_request"), [{"field": err.field,
                                                                               "message": err.message}])

    @app.exception_handler(ValidationError)
    async def validation_error(request: Request, err: ValidationError) -> JSONResponse:
        status, detail = error_detail(err)
        return _error(status, _KINDS[status], detail)

    def principal(request: Request, scope: str | None) -> Principal:
        header = request.headers.get("authorization", "")
        kind, _, key = header.partition(" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if kind.lower() != "bearer" or not key.strip():
            raise _ApiError(401, "unauthorized", "Authorization", _NO_KEY, challenge)
        who = service.authenticate(key.strip())
        if who is None:
            raise _ApiError(401, "unauthorized", "Authorization", _BAD_KEY, challenge)
        if scope is not None and scope not in who.scopes:
            raise _ApiError(403, "forbidden", "Authorization", _NO_SCOPE.format(scope, list(who.scopes)))
        wait = limiter.take(who.name)
        if wait is not None:
            after = limiter.retry_after(wait)
            raise _ApiError(429, "rate_limited", "Authorization", _RATE.format(rate, burst, after),
                            {"Retry-After": after})
        return who

    async def body(request: Request, model: type[BaseModel]) -> Any:
        return model.model_validate_json(await request.body())

    def ok(payload: Any, status: int = 200) -> Response:
        return Response(json.dumps(payload, allow_nan=False, separators=(",", ":")), status_code=status,
                        media_type="application/json")

    @app.get(f"{API}/health")
    async def health() -> Response:
        return ok({"status": "ok"})

    @app.get(f"{API}/ready")
    async def ready() -> Response:
        state = service.ready()
        return ok(state, 200 if state["ready"] else 503)

    @app.get(f"{API}/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.post(f"{API}/decision")
    async def decision(request: Request) -> Response:
        started = time.perf_counter()
        who = principal(request, "decide")
        return ok(service.decide(who, await body(request, DecisionRequest), started))

    @app.post(f"{API}/fills")
    async def fills(request: Request) -> Response:
        who = principal(request, "decide")
        return ok(service.fill(who, await body(request, FillRequest)))

    @app.get(f"{API}/account")
    async def own_account(request: Request) -> Response:
        return ok(service.account_view(principal(request, None)))

    @app.get(API + "/accounts/{name}")
    async def account(request: Request, name: str) -> Response:
        return ok(service.account_view(principal(request, None), name))

    @app.post(f"{API}/halt")
    async def halt(request: Request) -> Response:
        principal(request, "admin")
        req = await body(request, HaltRequest)
        return ok(service.halt(req.account, req.all, req.reason))

    @app.post(f"{API}/resume")
    async def resume(request: Request) -> Response:
        principal(request, "admin")
        req = await body(request, ResumeRequest)
        return ok(service.resume(req.account, req.all))

    @app.post(f"{API}/accounts/reset")
    async def reset(request: Request) -> Response:
        principal(request, "admin")
        req = await body(request, ResetRequest)
        return ok(reset_account(service, req.account))

    def sleep_side(request: Request) -> Any:
        principal(request, "admin")
        if service.sleep is None:
            raise _ApiError(404, "not_found", "route", "this service has no sleep side")
        return service.sleep

    @app.post(f"{API}/sleep-cycle")
    async def sleep_cycle(request: Request) -> Response:
        sleep = sleep_side(request)
        return ok(sleep.queue(await body(request, SleepRequest)), 202)

    @app.get(API + "/jobs/{job_id}")
    async def sleep_job(request: Request, job_id: str) -> Response:
        return ok(sleep_side(request).job(job_id))

    @app.get(f"{API}/model")
    async def model_info(request: Request) -> Response:
        return ok(sleep_side(request).model())

    @app.post(f"{API}/model/rollback")
    async def rollback(request: Request) -> Response:
        return ok(await sleep_side(request).rollback())

    return ServiceMiddleware(app, max_body_bytes, lambda status: metrics.responses.inc(str(status)))


__all__ = ["API", "ServiceMiddleware", "create_app"]
