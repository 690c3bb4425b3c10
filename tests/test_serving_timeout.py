"""The request timeout in front of the API: no per-request timer left alive (the cause of
periodic GC stalls under load with BentoML's own middleware), and still a 504 for a
request that takes too long."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import uvloop

from serving.gateway import RequestTimeout


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


def _live_objects_after(middleware: Any, requests: int) -> int:
    async def run() -> int:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        for _ in range(requests):
            # uvicorn runs each request as its own task
            await asyncio.get_running_loop().create_task(
                middleware({"type": "http", "path": "/forecast"}, _receive, send))
            sent.clear()
        gc.collect()
        return len(gc.get_objects())

    gc.collect()
    before = len(gc.get_objects())
    return uvloop.run(run()) - before


def test_requests_leave_no_live_timers_behind() -> None:
    growth = _live_objects_after(RequestTimeout(_ok, timeout=60), 20_000)
    assert growth < 1_000  # BentoML's TimeoutMiddleware: ~6 live objects per request


def test_a_request_past_the_timeout_gets_504_and_others_are_untouched() -> None:
    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(30)

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        timed, fine = [], []

        async def send_timed(message: dict[str, Any]) -> None:
            timed.append(message)

        async def send_fine(message: dict[str, Any]) -> None:
            fine.append(message)

        guard_slow = RequestTimeout(slow, timeout=0.2)
        guard_ok = RequestTimeout(_ok, timeout=0.2)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(asyncio.gather(
            loop.create_task(guard_slow({"type": "http", "path": "/forecast"}, _receive,
                                        send_timed)),
            loop.create_task(guard_ok({"type": "http", "path": "/forecast"}, _receive,
                                      send_fine))), timeout=5)
        return timed, fine

    timed, fine = uvloop.run(run())
    assert timed[0]["status"] == 504
    assert fine[0]["status"] == 200
