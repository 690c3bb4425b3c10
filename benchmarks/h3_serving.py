"""Serving at H3 micro-places: store build time and /hotspots GeoJSON latency.

    .venv/bin/python benchmarks/h3_serving.py --home /tmp/h3r10 [--requests 300]

``--home`` is a project home whose data stages ran at an H3 unit (e.g.
``CRIMECAST_DATA__UNITS__KIND=h3 CRIMECAST_DATA__UNITS__RESOLUTION=10 crimecast pipeline
--stage panel``). The benchmark registers a historical-average model under the unit's
name (``crimecast-h3r10``) as ``@champion`` (no backtest: serving does not depend on it),
then measures

- ``store_build_seconds``: :func:`serving.runtime.load_store` (load the pyfunc from the
  registry, compute the full forecast table, index it, read and simplify every cell's
  hexagon), median of ``--rounds`` builds;
- ``/hotspots`` with ``format: geojson`` and ``area_share: 0.05`` (the top 5 % of the
  land area) from a single client, one request at a time over a keep-alive connection,
  against a real ``bentoml serve`` on a loopback port: p50 / p99 / max latency.

Targets (issue 11, r10): store build ≤ 30 s; p99 ≤ 200 ms. Writes
``benchmarks/results/h3_serving.json`` (one entry per unit).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "h3_serving.json"


def register_champion(home: Path) -> str:
    import pandas as pd

    from crimecast.contracts import AreaGraph, Panel
    from crimecast.lifecycle.registry import set_alias
    from crimecast.lifecycle.tracking import train_and_register

    def no_backtest(*_: object) -> tuple[pd.DataFrame, dict]:
        return pd.DataFrame(columns=["area_id", "origin", "horizon", "mean", "count"]), {
            "overall": {"mae": 1.0}}

    artifacts = home / "artifacts"
    graph = AreaGraph.load(artifacts / "graph.npz", artifacts / "areas.parquet")
    panel = Panel.load(artifacts / "panel.parquet")
    result = train_and_register("historical_average", panel, graph, backtest=no_backtest)
    set_alias("champion", result.version, reason="h3 serving benchmark")
    return result.version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = args.home.resolve()
    os.environ["CRIMECAST_HOME"] = str(home)
    os.environ["CRIMECAST_TRACKING__LOG_MAP"] = "false"
    os.chdir(home)

    import httpx
    import pandas as pd

    from crimecast.data.settings import DataSettings
    from crimecast.localserver import free_port, wait_until_ready
    from serving.auth import hash_key
    from serving.runtime import load_store
    from serving.settings import ServingSettings

    unit = DataSettings.load().units.tag
    cells = len(pd.read_parquet(home / "artifacts" / "areas.parquet", columns=["area_id"]))
    print(f"{unit}: {cells} cells in {home}", flush=True)
    version = register_champion(home)
    settings = ServingSettings.load()
    builds = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        load_store(version, "champion", settings)
        builds.append(time.perf_counter() - started)
    print(f"store build: {[round(b, 1) for b in builds]} s", flush=True)

    key = "bench-" + os.urandom(8).hex()
    port = free_port()
    env = {**os.environ, "CRIMECAST_API_KEYS": f"bench:{hash_key(key)}"}
    log = home / "h3_serving_server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", "serving.service:CrimecastService",
             "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(REPO)],
            cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url + "/readyz", proc, log, "server", timeout_s=180)
        body = {"area_share": 0.05, "format": "geojson"}
        latencies, features = [], 0
        with httpx.Client(headers={"X-API-Key": key}, timeout=30) as client:
            for _ in range(10):  # warm-up
                client.post(url + "/hotspots", json=body).raise_for_status()
            for _ in range(args.requests):
                started = time.perf_counter()
                reply = client.post(url + "/hotspots", json=body)
                latencies.append((time.perf_counter() - started) * 1000)
                reply.raise_for_status()
            answer = reply.json()
            features = len(answer["features"])
            kinds = {f["geometry"]["type"] for f in answer["features"]}
    finally:
        from crimecast.localserver import stop_process_tree

        stop_process_tree(proc)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    result = {
        "unit": unit, "cells": cells, "model_version": version,
        "store_build_seconds": round(statistics.median(builds), 2),
        "store_build_rounds": [round(b, 2) for b in builds],
        "hotspots_geojson": {"requests": len(latencies), "features": features,
                             "geometry_types": sorted(kinds),
                             "p50_ms": round(statistics.median(latencies), 1),
                             "p99_ms": round(p99, 1), "max_ms": round(latencies[-1], 1)},
        "targets": {"store_build_seconds": 30, "hotspots_p99_ms": 200},
        "met": {"store_build": statistics.median(builds) <= 30, "hotspots_p99": p99 <= 200},
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    from crimecast.io import write_json

    payload = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    payload[unit] = result
    write_json(RESULTS, payload)
    print(json.dumps(result, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
