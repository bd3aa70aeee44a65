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

The app runs every request on the event loop's thread, except the policy itself, which a decision runs on the
engine's worker thread (:meth:`~agents.app.service.service.DecisionService.decide_async`): meanwhile the loop
serves other accounts' requests, and the account's own wait on its lock (decisions, fills, resets), so the
decisions of one account keep their order and see their fills. The kill switch does not wait: a decision in
flight meets it at the breakers' pre-action check. Serve it with one uvicorn worker (the accounts live in memory).

The two routes a trading loop calls at every step, ``POST /api/v1/decision`` and ``POST /api/v1/fills``, are
answered by :class:`ServiceMiddleware` itself, in front of FastAPI's router: the same authentication, rate limit,
body limit, parsing and error answers (one function each, shared with the FastAPI routes), without the
router's per-request layers (a sixth of a decision's CPU: 1.30 against 1.54 ms per decision through the ASGI app,
measured in process on the loaded development machine; the "Decision service" section of
``benchmarks/README.md``). Every other route, and any other method on these two paths, goes through FastAPI.
"""

from __future__ import annotations

import gc
import json
import time
import traceback
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


def error_answer(err: Exception) -> tuple[int, dict[str, Any], dict[str, str] | None] | None:
    """``(status, body, headers)`` of the error answer to ``err`` (module docstring), None for an exception that
    is not a request error (a 500)."""
    if isinstance(err, _ApiError):
        return err.status, {"error": err.kind, "detail": [{"field": err.field, "message": err.message}]}, err.headers
    if isinstance(err, FieldError):
        kind = _KINDS.get(err.status, "invalid_request")
        return err.status, {"error": kind, "detail": [{"field": err.field, "message": err.message}]}, None
    if isinstance(err, ValidationError):
        status, detail = error_detail(err)
        return status, {"error": _KINDS[status], "detail": detail}, None
    return None


def dump_json(payload: Any) -> bytes:
    """An answer's body: compact JSON, ASCII, NaN refused (the service's answers hold finite numbers only)."""
    return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()


FastRoute = Callable[[str, bytes, float], Awaitable[Any]]
"""A route :class:`ServiceMiddleware` answers itself: ``await route(authorization header, body, perf_counter at
arrival)`` → the answer's payload (raises a request error)."""


class ServiceMiddleware:
    """ASGI middleware around the app: 413 for a body over ``limit`` bytes (by its ``Content-Length``, or while
    it streams), every answer counted by status (``janus_http_responses_total``), and the hot ``POST`` routes
    (``routes``: path → :data:`FastRoute`) answered here without FastAPI's router (module docstring).

    A plain ASGI layer rather than FastAPI's ``@app.middleware`` (Starlette's ``BaseHTTPMiddleware``, which
    costs a task and a stream per request).
    """

    def __init__(self, app: Any, limit: int, count: Callable[[int], None],
                 routes: dict[str, FastRoute] | None = None) -> None:
        self.app = app
        self.limit = int(limit)
        self.count = count
        self.routes = dict(routes or {})

    async def _answer(self, send: Callable[[dict[str, Any]], Awaitable[None]], status: int, body: bytes,
                      headers: dict[str, str] | None = None) -> None:
        raw = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        if headers:
            raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.count(status)
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def _fast(self, route: FastRoute, scope: dict[str, Any],
                    receive: Callable[[], Awaitable[dict[str, Any]]],
                    send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Answer a hot route: read the body (413 past ``limit``), call ``route``, send its answer or error."""
        started = time.perf_counter()
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                err = _ApiError(413, "payload_too_large", "body", _TOO_LARGE.format(self.limit))
                status, payload, headers = error_answer(err)  # type: ignore[misc]
                await self._answer(send, status, dump_json(payload), headers)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            body = dump_json(await route(authorization, b"".join(chunks), started))
        except Exception as err:
            answer = error_answer(err)
            if answer is None:  # as Starlette's ServerErrorMiddleware: a 500, the traceback to the log
                traceback.print_exc()
                self.count(500)
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-length", b"21"), (b"content-type", b"text/plain; charset=utf-8")]})
                await send({"type": "http.response.body", "body": b"Internal Server Error"})
                return
            status, payload, headers = answer
            await self._answer(send, status, dump_json(payload), headers)
            return
        await self._answer(send, 200, body)

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
        route = self.routes.get(scope["path"]) if scope["method"] == "POST" else None
        if route is not None:
            await self._fast(route, scope, receive, send)
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
        took = service.warm_up()  # the first client's decision does not pay for first-call costs
        print(f"decision service warmed up: one scratch decision in {took * 1e3:.1f} ms", flush=True)
        # what is loaded now (torch, the model, ONNX Runtime: ~480k objects) lives as long as the process. Frozen,
        # it is out of the cyclic collector's reach: a full collection (rare while serving: none in the 5,000-
        # decision load test, but ≈ 0.25 s of CPU over those objects, every client waiting) scans only what the
        # decisions allocated
        gc.collect()
        gc.freeze()
        yield
        if service.sleep is not None:
            await service.sleep.stop()
        accounts = len(service.slots)
        service.close()
        print(f"decision service stopped: {accounts} audit trail(s) flushed, store closed", flush=True)

    app = FastAPI(title="JANUS decision service", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)

    async def request_error(request: Request, err: Exception) -> JSONResponse:
        status, payload, headers = error_answer(err)  # type: ignore[misc]
        return JSONResponse(payload, status_code=status, headers=headers)

    for kind in (_ApiError, FieldError, ValidationError):
        app.add_exception_handler(kind, request_error)

    def principal(request: Request, scope: str | None) -> Principal:
        return authorize(request.headers.get("authorization", ""), scope)

    def authorize(header: str, scope: str | None) -> Principal:
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
        return Response(dump_json(payload), status_code=status, media_type="application/json")

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

    async def decide(authorization: str, raw: bytes, started: float) -> dict[str, Any]:
        who = authorize(authorization, "decide")
        return await service.decide_async(who, DecisionRequest.model_validate_json(raw), started)

    async def fill(authorization: str, raw: bytes, started: float) -> dict[str, Any]:
        who = authorize(authorization, "decide")
        request = FillRequest.model_validate_json(raw)
        async with service.account_lock(who.name):  # after the account's decision in flight, if any
            return service.fill(who, request)

    # answered by ServiceMiddleware (module docstring); declared here too, so the app lists them
    @app.post(f"{API}/decision")
    async def decision(request: Request) -> Response:
        started = time.perf_counter()
        return ok(await decide(request.headers.get("authorization", ""), await request.body(), started))

    @app.post(f"{API}/fills")
    async def fills(request: Request) -> Response:
        return ok(await fill(request.headers.get("authorization", ""), await request.body(), time.perf_counter()))

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
        async with service.account_lock(req.account):  # not under a decision in flight
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

    return ServiceMiddleware(app, max_body_bytes, lambda status: metrics.responses.inc(str(status)),
                             routes={f"{API}/decision": decide, f"{API}/fills": fill})


__all__ = ["API", "FastRoute", "ServiceMiddleware", "create_app", "dump_json", "error_answer"]
