"""A small closed-loop HTTP/1.1 load generator on asyncio streams.

``C`` keep-alive connections each send POST requests back to back until ``N`` requests
are done (or for ``seconds``); it records each request's start time, latency and status. It speaks just enough HTTP/1.1
(Content-Length bodies, keep-alive) for the servers measured here, which keeps the
client cheaper than httpx/aiohttp so it is less of a bottleneck on a small machine; the
bare Starlette run shows its ceiling.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field

import numpy as np

#: Latency buckets (ms) of the stall histogram.
STALL_BUCKETS_MS = (10, 25, 50, 100, 200, 500, 1000)


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    statuses: dict[int, int]
    errors: int
    #: seconds from the start of the run at which each request (same order) was sent
    starts_s: list[float] = field(default_factory=list, repr=False)

    def summary(self, skip_s: float = 1.0) -> dict[str, object]:
        """Throughput, p50/p99/max, and for requests sent after the first ``skip_s``
        seconds: the maximum, how many took over 100 ms, and a histogram of latencies."""
        lat = np.asarray(self.latencies_ms)
        starts = np.asarray(self.starts_s) if self.starts_s else np.zeros(lat.size)
        later = lat[starts >= skip_s]
        edges = [0, *STALL_BUCKETS_MS, np.inf]
        counts, _ = np.histogram(later, bins=edges)
        labels = [f"<{STALL_BUCKETS_MS[0]}"] + [
            f"{a}-{b}" for a, b in itertools.pairwise(STALL_BUCKETS_MS)
        ] + [f">={STALL_BUCKETS_MS[-1]}"]
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "req_per_s": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
            "max_ms": round(float(lat.max()), 2) if lat.size else None,
            f"max_ms_after_{skip_s:g}s": round(float(later.max()), 2) if later.size else None,
            f"over_100ms_after_{skip_s:g}s": int((later > 100).sum()),
            "latency_histogram_ms": dict(zip(labels, (int(c) for c in counts), strict=True)),
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


async def run_load(host: str, port: int, path: str, payload: dict, total: int | None,
                   connections: int = 32, headers: dict[str, str] | None = None,
                   seconds: float | None = None) -> LoadResult:
    """Send ``total`` POSTs of ``payload`` (JSON) over ``connections`` connections, or
    as many as fit in ``seconds`` when ``total`` is None."""
    body = json.dumps(payload).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
               ).encode() + body
    remaining = total if total is not None else 1 << 62
    latencies: list[float] = []
    starts: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    started = time.perf_counter()
    until = started + seconds if seconds is not None else float("inf")

    async def worker() -> None:
        nonlocal remaining, errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                if start >= until:
                    break
                try:
                    writer.write(request)
                    status, _ = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append((time.perf_counter() - start) * 1000)
                starts.append(start - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return LoadResult(len(latencies), time.perf_counter() - started, latencies, statuses,
                      errors, starts)
