"""The ASGI gateway in front of every API endpoint: key check, limits, validation, logging.

For each request to an API path it

1. assigns a request id (returned as ``X-Request-ID``);
2. bounds the request headers (``limits.max_headers``, ``limits.max_header_bytes``: 431);
3. checks ``X-API-Key`` (401 with a generic body) and the key's scope for the endpoint
   (403: ``read`` for lookups, ``outcomes`` for ground truth, ``admin`` for ``/reload``);
4. reads the body up to ``limits.max_body_bytes`` (413 beyond);
5. validates it against the endpoint's pydantic schema and against the loaded model
   (unknown tracts, categories, limits) and answers 422 listing every problem;
6. passes it to BentoML, holds the response until its prediction-log row is committed,
   then sends it. If the log cannot be written the caller gets 503, never an
   unlogged 200.

Every request is logged under a known endpoint name, or ``unknown`` for any other path
(never the caller's string). Answers from a model carry ``X-Model-Version``. Health
probes and the OpenAPI document (``keys.open_paths``) pass through untouched.
A pure ASGI class rather than Starlette's ``BaseHTTPMiddleware``, which costs an extra
task and stream per request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from serving.openapi import SWAGGER_PAGE, document_bytes
from serving.predlog import RequestRecord, summary_json
from serving.runtime import Runtime
from serving.schemas import (
    AllocateRequest,
    DosageRequest,
    EmptyRequest,
    ForecastRequest,
    HotspotsRequest,
    OutcomesRequest,
)

# path -> (endpoint name, request schema, scope the key needs)
ENDPOINTS: dict[str, tuple[str, type[BaseModel] | None, str]] = {
    "/forecast": ("forecast", ForecastRequest, "read"),
    "/hotspots": ("hotspots", HotspotsRequest, "read"),
    "/allocate": ("allocate", AllocateRequest, "read"),
    "/outcomes": ("outcomes", OutcomesRequest, "outcomes"),
    "/dosage": ("dosage", DosageRequest, "dosage"),
    "/model": ("model", EmptyRequest, "read"),
    "/reload": ("reload", EmptyRequest, "admin"),
    "/metrics": ("metrics", None, "admin"),
}
#: What any other path is logged as (the caller's path never reaches the log).
UNKNOWN = ("unknown", None, "read")
SCOPE_KEY = "crimecast"


def _request_ids() -> Iterator[str]:
    """Unique request ids without a syscall per request: a random 64-bit prefix per
    process (so worker processes never collide) and a counter."""
    prefix = os.urandom(8).hex()
    for number in itertools.count():
        yield f"{prefix}{number:016x}"


_REQUEST_IDS = _request_ids()


def _json_response(status: int, payload: dict[str, Any],
                   extra: list[tuple[bytes, bytes]] | None = None) -> tuple[dict[str, Any], bytes]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), *(extra or [])]
    return {"type": "http.response.start", "status": status, "headers": headers}, body


def _problems(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)]


class Gateway:
    """ASGI middleware; ``runtime`` is the worker's :class:`~serving.runtime.Runtime`
    holder (a one-element list, filled when the service instance starts)."""

    def __init__(self, app: Any, runtime: list[Runtime],
                 descriptions: dict[str, str] | None = None) -> None:
        self.app = app
        self._runtime = runtime
        self._descriptions = descriptions or {}
        self._document: tuple[str | None, bytes] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self._runtime:
            await self.app(scope, receive, send)
            return
        runtime = self._runtime[0]
        path = scope["path"]
        if path in runtime.settings.keys.open_paths or path.startswith("/static_content/"):
            if path in ("/docs.json", "/") and scope["method"] in ("GET", "HEAD"):
                await self._docs(runtime, path, send)
                return
            await self.app(scope, receive, send)
            return
        await self._guarded(runtime, scope, receive, send)

    async def _docs(self, runtime: Runtime, path: str, send: Any) -> None:
        """Our OpenAPI document (rebuilt when the served version changes) or Swagger page."""
        if path == "/":
            content, kind = SWAGGER_PAGE, b"text/html; charset=utf-8"
        else:
            store = runtime.store
            version = store.card.version if store is not None else None
            if self._document is None or self._document[0] != version:
                api = {p: e for p, e in ENDPOINTS.items() if e[1] is not None}
                self._document = (version, document_bytes(
                    runtime.settings, store, self._descriptions,
                    {p: e[1] for p, e in api.items()}, {p: e[2] for p, e in api.items()}))
            content, kind = self._document[1], b"application/json"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", kind),
                                (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content, "more_body": False})

    async def _guarded(self, runtime: Runtime, scope: dict[str, Any], receive: Any,
                       send: Any) -> None:
        started = time.perf_counter()
        request_id = next(_REQUEST_IDS)
        path = scope["path"]
        endpoint, schema, needed = ENDPOINTS.get(path, UNKNOWN)
        limits = runtime.settings.limits
        presented = declared = None
        header_bytes = 0
        headers = scope["headers"]
        for name, value in headers:
            header_bytes += len(name) + len(value) + 4  # ": " and CRLF
            if name == b"x-api-key":
                presented = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
        info: dict[str, Any] = {"request_id": request_id, "key_name": None,
                                "endpoint": endpoint}
        body = b""

        async def reply(status: int, payload: dict[str, Any]) -> None:
            start, content = _json_response(status, payload)
            await self._finish(runtime, info, body, start, [content], started, send)

        if len(headers) > limits.max_headers or header_bytes > limits.max_header_bytes:
            await reply(431, {"error": "request header fields too large",
                              "limit_headers": limits.max_headers,
                              "limit_header_bytes": limits.max_header_bytes})
            return
        key = runtime.keyring.identify(presented)
        if key is None:
            await reply(401, {"error": "unauthorized"})
            return
        info["key_name"] = key.name
        if not key.allows(needed):
            await reply(403, {"error": f"forbidden: this endpoint needs a key with the "
                                       f"'{needed}' scope", "scope": needed})
            return

        limit = limits.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await reply(413, {"error": "request body too large", "limit_bytes": limit})
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await reply(413, {"error": "request body too large", "limit_bytes": limit})
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)

        if schema is not None and scope["method"] == "POST":
            if not body.strip():
                body = b"{}"  # parameterless endpoints may be called with an empty body
            try:
                request = schema.model_validate_json(body)
            except ValidationError as exc:
                await reply(422, {"error": "invalid request", "problems": _problems(exc)})
                return
            store = runtime.store
            if store is None and endpoint not in ("reload", "model"):
                await reply(503, {"error": "no model is loaded yet"})
                return
            problems = store.problems(endpoint, request) if store is not None else []
            if problems:
                await reply(422, {"error": "invalid request", "problems": problems})
                return
            info["request"] = request
            # The body was validated as JSON; make BentoML parse it as JSON whatever the
            # client declared (curl -d sends a form content type).
            scope["headers"] = [h for h in scope["headers"] if h[0] != b"content-type"]
            scope["headers"].append((b"content-type", b"application/json"))

        scope[SCOPE_KEY] = info
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        held_start: dict[str, Any] | None = None
        held_body: list[bytes] = []

        async def hold(message: dict[str, Any]) -> None:
            nonlocal held_start
            if message["type"] == "http.response.start":
                held_start = message
                return
            if message["type"] == "http.response.body":
                held_body.append(message.get("body", b""))
                if not message.get("more_body", False) and held_start is not None:
                    await self._finish(runtime, info, body, held_start, held_body, started, send)
                return
            await send(message)

        await self.app(scope, replay, hold)

    async def _finish(self, runtime: Runtime, info: dict[str, Any], body: bytes,
                      start: dict[str, Any], chunks: list[bytes], started: float,
                      send: Any) -> None:
        """Commit the prediction-log row, then send the held response."""
        status = int(start["status"])
        summary = info.get("summary") or {}
        if status >= 400:
            summary = {"status": status}
        record = RequestRecord(
            request_id=info["request_id"], ts=datetime.now(UTC), key_name=info["key_name"],
            endpoint=info["endpoint"], status=status, model_version=info.get("model_version"),
            request_json=body.decode("utf-8", "replace") if body else None,
            response_summary=summary_json(summary),
            latency_ms=(time.perf_counter() - started) * 1000.0)
        try:
            assert runtime.predlog is not None, "prediction log not started"
            await runtime.predlog.record(record)
        except Exception:  # noqa: BLE001 - an unlogged answer must not be acknowledged
            start, content = _json_response(503, {"error": "prediction log unavailable"})
            chunks = [content]
        headers = [h for h in start["headers"]
                   if h[0].lower() not in (b"x-request-id", b"x-model-version")]
        headers.append((b"x-request-id", info["request_id"].encode()))
        if info.get("model_version") is not None:
            headers.append((b"x-model-version", str(info["model_version"]).encode()))
        await send({**start, "headers": headers})
        content = b"".join(chunks)
        await send({"type": "http.response.body", "body": content, "more_body": False})


class RequestTimeout:
    """BentoML's request timeout (``traffic.timeout``) without its leak.

    BentoML 1.4's ``TimeoutMiddleware`` starts a ``loop.call_later(timeout)`` timer per
    request and never cancels it, plus an extra future and task: ~6 objects per request
    that stay alive for the whole timeout (60 s). At ~2,000 requests/s that is ~700,000
    live objects, which reach the oldest GC generation and make every full collection
    scan them: pauses of every request in flight. Even a cancelled uvloop timer stays
    alive until its time comes, so this version starts no timer per request: it notes
    each request's deadline, and one sweeper task per worker cancels, once a second, the
    requests past theirs (answering 504 if nothing was sent yet). ``/reload`` is exempt:
    it waits for every worker to load a model.
    """

    def __init__(self, app: Any, timeout: float) -> None:
        self.app = app
        self.timeout = timeout
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for task, deadline in list(self._deadlines.items()):
                if deadline < now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        task = asyncio.current_task()
        if scope["type"] != "http" or scope["path"] == "/reload" or task is None:
            await self.app(scope, receive, send)
            return
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        started = False

        async def _send(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        self._deadlines[task] = time.monotonic() + self.timeout
        try:
            await self.app(scope, receive, _send)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            task.uncancel()
            if started:
                return
            start, body = _json_response(504, {"error": "not able to process the request "
                                                        f"in {self.timeout:g} seconds"})
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})
        finally:
            self._deadlines.pop(task, None)
            self._expired.discard(task)
