"""The ASGI gateway in front of every API endpoint: key check, limits, validation, logging.

For each request to an API path it

1. assigns a request id (returned as ``X-Request-ID``);
2. checks ``X-API-Key`` (401 with a generic body; 403 for admin-only paths);
3. reads the body up to ``limits.max_body_bytes`` (413 beyond);
4. validates it against the endpoint's pydantic schema and against the loaded model
   (unknown tracts, categories, limits) and answers 422 listing every problem;
5. passes it to BentoML, holds the response until its prediction-log row is committed,
   then sends it. If the log cannot be written the caller gets 503, never an
   unlogged 200.

Health probes and the OpenAPI document (``keys.open_paths``) pass through untouched.
A pure ASGI class rather than Starlette's ``BaseHTTPMiddleware``, which costs an extra
task and stream per request.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from serving.predlog import RequestRecord, summary_json
from serving.runtime import Runtime
from serving.schemas import (
    AllocateRequest,
    EmptyRequest,
    ForecastRequest,
    HotspotsRequest,
    OutcomesRequest,
)

# path -> (endpoint name, request schema, needs an admin key)
ENDPOINTS: dict[str, tuple[str, type[BaseModel], bool]] = {
    "/forecast": ("forecast", ForecastRequest, False),
    "/hotspots": ("hotspots", HotspotsRequest, False),
    "/allocate": ("allocate", AllocateRequest, False),
    "/outcomes": ("outcomes", OutcomesRequest, False),
    "/model": ("model", EmptyRequest, False),
    "/reload": ("reload", EmptyRequest, True),
}
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

    def __init__(self, app: Any, runtime: list[Runtime]) -> None:
        self.app = app
        self._runtime = runtime

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self._runtime:
            await self.app(scope, receive, send)
            return
        runtime = self._runtime[0]
        path = scope["path"]
        if path in runtime.settings.keys.open_paths or path.startswith("/static_content/"):
            await self.app(scope, receive, send)
            return
        await self._guarded(runtime, scope, receive, send)

    async def _guarded(self, runtime: Runtime, scope: dict[str, Any], receive: Any,
                       send: Any) -> None:
        started = time.perf_counter()
        request_id = next(_REQUEST_IDS)
        path = scope["path"]
        endpoint, schema, admin_only = ENDPOINTS.get(path, (path.strip("/") or "/", None, False))
        presented = declared = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                presented = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
        key = runtime.keyring.identify(presented)
        info: dict[str, Any] = {"request_id": request_id, "key_name": key.name if key else None,
                                "endpoint": endpoint}
        body = b""

        async def reply(status: int, payload: dict[str, Any]) -> None:
            start, content = _json_response(status, payload)
            await self._finish(runtime, info, body, start, [content], started, send)

        if key is None:
            await reply(401, {"error": "unauthorized"})
            return
        if admin_only and not key.admin:
            await reply(403, {"error": "forbidden: this endpoint needs an admin key"})
            return

        limit = runtime.settings.limits.max_body_bytes
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
        headers = [h for h in start["headers"] if h[0].lower() != b"x-request-id"]
        headers.append((b"x-request-id", info["request_id"].encode()))
        await send({**start, "headers": headers})
        content = b"".join(chunks)
        await send({"type": "http.response.body", "body": content, "more_body": False})
