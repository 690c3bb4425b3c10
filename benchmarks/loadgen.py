"""A small closed-loop HTTP/1.1 load generator on asyncio streams.

``C`` keep-alive connections each send POST requests back to back until ``N`` requests
are done; it records each request's latency and status. It speaks just enough HTTP/1.1
(Content-Length bodies, keep-alive) for the servers measured here, which keeps the
client cheaper than httpx/aiohttp so it is less of a bottleneck on a small machine; the
bare Starlette run shows its ceiling.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    statuses: dict[int, int]
    errors: int

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        lat = np.asarray(self.latencies_ms)
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "req_per_s": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
        }


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


async def run_load(host: str, port: int, path: str, payload: dict, total: int,
                   connections: int = 32, headers: dict[str, str] | None = None) -> LoadResult:
    """Send ``total`` POSTs of ``payload`` (JSON) over ``connections`` connections."""
    body = json.dumps(payload).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
               ).encode() + body
    remaining = total
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    async def worker() -> None:
        nonlocal remaining, errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                try:
                    writer.write(request)
                    status, _ = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append((time.perf_counter() - start) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return LoadResult(total, time.perf_counter() - started, latencies, statuses, errors)
