"""Serving throughput and latency on loopback: crimecast vs a hello-world BentoML service
vs a bare Starlette endpoint, all doing the same forecast lookup.

    .venv/bin/python benchmarks/serving.py [--requests 3000] [--rounds 3] [--profile]

Builds a temporary project (a synthetic city of 408 tracts, like Philadelphia), trains and
registers the historical-average model with crimecast.lifecycle.tracking and gives it @champion,
then starts three servers on free ports:

- ``crimecast``: ``serving.service:CrimecastService`` with its defaults (API key check,
  validation, prediction log in SQLite WAL committed before each response);
- ``bentoml_hello``: a hello-world BentoML service with default settings
  (benchmarks/serving_peers.py, the peer);
- ``bare_starlette``: the same lookup as a bare Starlette endpoint on uvicorn (the limit);
- ``crimecast_2_workers``: crimecast with ``workers: 2`` (for scale, not part of the targets).

Each round sends ``--requests`` POST /forecast requests (5 tracts, one category) over 32
keep-alive connections from benchmarks/loadgen.py, servers in turn, so a busy machine
affects all three alike. Writes benchmarks/results/serving.json: req/s (median over
rounds), p50 and p99 latency (pooled), the ratio to bare Starlette, the targets, the
machine and the date. ``--profile`` also samples the crimecast worker with py-spy during
one extra round and writes the hottest frames to benchmarks/results/serving_profile.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# This file is benchmarks/serving.py: drop its folder from the path so that `serving`
# means the service package, and load the load generator by file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(REPO))
_spec = importlib.util.spec_from_file_location("loadgen", HERE / "loadgen.py")
loadgen = importlib.util.module_from_spec(_spec)
sys.modules["loadgen"] = loadgen
from crimecast.localserver import free_port, stop_process_tree, wait_until_ready

_spec.loader.exec_module(loadgen)
LoadResult, run_load = loadgen.LoadResult, loadgen.run_load

CONNECTIONS = 32
AREAS = 408
KEY = "bench-" + os.urandom(12).hex()


def build_project(home: Path) -> list[str]:
    """Synthetic city artifacts + a registered @champion; returns 5 area ids to ask for."""
    from crimecast.contracts import AreaGraph, ArtifactPaths, Panel
    from crimecast.data.synthetic import generate_city, save_city_artifacts
    from crimecast.lifecycle.registry import set_alias
    from crimecast.lifecycle.tracking import train_and_register

    shutil.copytree(REPO / "configs", home / "configs")
    os.environ["CRIMECAST_HOME"] = str(home)
    os.environ["CRIMECAST_TRACKING__LOG_MAP"] = "false"
    artifacts = ArtifactPaths(root=home / "artifacts")
    save_city_artifacts(generate_city(AREAS, 110, seed=11), artifacts)
    panel = Panel.load(artifacts.panel)
    graph = AreaGraph.load(artifacts.graph, artifacts.areas)

    def no_backtest(*_: object) -> tuple[pd.DataFrame, dict]:
        # Serving speed does not depend on backtest scores; skip the refits.
        return pd.DataFrame(columns=["area_id", "origin", "horizon", "mean", "count"]), {}

    result = train_and_register("historical_average", panel, graph, backtest=no_backtest)
    set_alias("champion", result.version, reason="serving benchmark")
    return [str(a) for a in graph.area_ids[:5]]


def start(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen:
    handle = open(log, "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)




def worker_pid(proc: subprocess.Popen) -> int | None:
    import psutil

    for child in psutil.Process(proc.pid).children(recursive=True):
        if "_bentoml_impl.worker.service" in " ".join(child.cmdline()):
            return child.pid
    return None


def summarise_profile(raw: Path, top: int = 25) -> str:
    """Hottest frames of the event-loop thread from py-spy raw output (own and inclusive)."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "MainThread" not in frames[0]:
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames[1:]):
            incl[frame] += n
    lines = [f"event-loop thread samples: {total}", "", "own time:"]
    lines += [f"{n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"{n / total:6.1%}  {f}" for f, n in incl.most_common(top * 2)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per round and server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="py-spy the crimecast worker")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "serving.json")
    args = parser.parse_args()

    from tqdm import tqdm

    from serving.auth import hash_key

    work = Path(tempfile.mkdtemp(prefix="crimecast-bench-serving-"))
    home = work / "project"
    procs: dict[str, subprocess.Popen] = {}
    try:
        print(f"building the benchmark project in {home} ...", flush=True)
        area_ids = build_project(home)
        env = {**os.environ, "CRIMECAST_HOME": str(home),
               "CRIMECAST_API_KEYS": f"bench:{hash_key(KEY)}",
               "CRIMECAST_SERVING__ALIAS_POLL_SECONDS": "0",
               "BENCH_AREAS": str(AREAS)}
        ports = {name: free_port()
                 for name in ("crimecast", "crimecast_2_workers", "bentoml_hello", "bare_starlette")}
        bentoml = [sys.executable, "-m", "bentoml", "serve"]
        procs["crimecast"] = start(
            [*bentoml, "serving.service:CrimecastService", "--host", "127.0.0.1",
             "--port", str(ports["crimecast"]), "--working-dir", str(REPO)],
            env, work / "crimecast.log", home)
        procs["crimecast_2_workers"] = start(
            [*bentoml, "serving.service:CrimecastService", "--host", "127.0.0.1",
             "--port", str(ports["crimecast_2_workers"]), "--working-dir", str(REPO)],
            {**env, "CRIMECAST_SERVING__WORKERS": "2"}, work / "crimecast2.log", home)
        procs["bentoml_hello"] = start(
            [*bentoml, "serving_peers:HelloService", "--host", "127.0.0.1",
             "--port", str(ports["bentoml_hello"]), "--working-dir", str(HERE)],
            env, work / "hello.log", HERE)
        procs["bare_starlette"] = start(
            [sys.executable, "-m", "uvicorn", "serving_peers:bare_app", "--host", "127.0.0.1",
             "--port", str(ports["bare_starlette"]), "--log-level", "warning",
             "--no-access-log"], env, work / "bare.log", HERE)
        for name, proc in procs.items():
            probe = "/readyz" if name != "bare_starlette" else "/forecast"
            if name == "bare_starlette":
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        httpx.post(f"http://127.0.0.1:{ports[name]}{probe}", timeout=2,
                                   json={"horizon": 1, "category": "violent", "area_ids": []})
                        break
                    except httpx.HTTPError:
                        time.sleep(0.3)
            else:
                wait_until_ready(f"http://127.0.0.1:{ports[name]}{probe}", proc, name=name)
        print(f"servers up: {ports}", flush=True)

        payloads = {
            "crimecast": {"horizon": 1, "category": "violent", "area_ids": area_ids},
            "crimecast_2_workers": {"horizon": 1, "category": "violent", "area_ids": area_ids},
            "bentoml_hello": {"horizon": 1, "category": "violent",
                              "area_ids": [f"42101{i:06d}" for i in range(5)]},
            "bare_starlette": {"horizon": 1, "category": "violent",
                               "area_ids": [f"42101{i:06d}" for i in range(5)]},
        }
        headers = {"X-API-Key": KEY}

        acknowledged = Counter()

        def load(name: str, total: int) -> LoadResult:
            result = asyncio.run(run_load("127.0.0.1", ports[name], "/forecast", payloads[name],
                                          total, CONNECTIONS, headers))
            acknowledged[name] += result.statuses.get(200, 0)
            return result

        for name in procs:  # warm-up: imports, caches, connection setup
            load(name, 300)
        results: dict[str, list[LoadResult]] = {name: [] for name in procs}
        loadavg_before = os.getloadavg()
        with tqdm(total=args.rounds * len(procs), desc="load rounds") as bar:
            for _ in range(args.rounds):
                for name in procs:
                    results[name].append(load(name, args.requests))
                    bar.update()
        loadavg_after = os.getloadavg()

        profile_note = None
        if args.profile:
            pid = worker_pid(procs["crimecast"])
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            if pid and Path(spy).exists():
                raw = work / "profile.txt"
                sampler = subprocess.Popen([spy, "record", "-p", str(pid), "-d", "8", "-f", "raw",
                                            "-t", "-o", str(raw)], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
                time.sleep(1)
                load("crimecast", args.requests)
                sampler.wait()
                target = args.out.parent / "serving_profile.txt"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(summarise_profile(raw))
                profile_note = str(target)

        # Every acknowledged crimecast request must be in the prediction log.
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{home / 'state' / 'predlog.db'}")
        with engine.connect() as conn:
            logged = conn.execute(sa.text(
                "SELECT count(*) FROM predictions WHERE endpoint='forecast' AND status=200"
            )).scalar_one()
        engine.dispose()

        summary: dict[str, dict] = {}
        for name, rounds in results.items():
            latencies = np.concatenate([r.latencies_ms for r in rounds])
            rates = [r.requests / r.seconds for r in rounds]
            statuses: Counter[str] = Counter()
            for r in rounds:
                statuses.update({str(k): v for k, v in r.statuses.items()})
            summary[name] = {
                "req_per_s": round(float(np.median(rates)), 1),
                "req_per_s_rounds": [round(x, 1) for x in rates],
                "p50_ms": round(float(np.percentile(latencies, 50)), 2),
                "p99_ms": round(float(np.percentile(latencies, 99)), 2),
                "statuses": dict(statuses),
                "errors": sum(r.errors for r in rounds),
            }
        bare = summary["bare_starlette"]["req_per_s"]
        for entry in summary.values():
            entry["ratio_to_bare"] = round(entry["req_per_s"] / bare, 3) if bare else None
        crimecast, hello = summary["crimecast"], summary["bentoml_hello"]
        report = {
            "benchmark": "serving",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpus": os.cpu_count(), "processor": platform.processor() or None,
                        "loadavg_before": [round(x, 2) for x in loadavg_before],
                        "loadavg_after": [round(x, 2) for x in loadavg_after]},
            "setup": {"connections": CONNECTIONS, "requests_per_round": args.requests,
                      "rounds": args.rounds, "areas": AREAS, "workers": 1,
                      "client": "benchmarks/loadgen.py (asyncio streams, keep-alive)",
                      "request": "POST /forecast, 5 tracts, one category, horizon 1"},
            "results": summary,
            "targets": {
                "crimecast_req_per_s_at_least_bentoml_hello": crimecast["req_per_s"] >= hello["req_per_s"],
                "crimecast_p99_ms_at_most_50": crimecast["p99_ms"] <= 50.0,
            },
            "predlog_rows_for_acknowledged_forecasts": int(logged),
            "acknowledged_forecasts": int(acknowledged["crimecast"]
                                          + acknowledged["crimecast_2_workers"]),
            "profile": profile_note,
        }
        from crimecast.io import write_json

        write_json(args.out, report)
        print(json.dumps(report["results"], indent=2))
        print(f"targets: {report['targets']}")
        print(f"wrote {args.out}")
    finally:
        for proc in procs.values():
            stop_process_tree(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
