"""Serving throughput, latency and stalls on loopback: crimecast with 1 and 2 workers vs
a bare Starlette endpoint doing the same forecast lookup, in the same run.

    .venv/bin/python benchmarks/serving.py [--seconds 60] [--peer] [--profile]

Builds a temporary project (a synthetic city of 408 tracts, like Philadelphia), trains and
registers the historical-average model with crimecast.lifecycle.tracking and gives it
@champion, then starts on free ports:

- ``crimecast``: ``serving.service:CrimecastService`` with its defaults (API key check,
  validation, prediction log in SQLite WAL committed before each response), 1 worker;
- ``crimecast_2_workers``: the same with ``workers: 2`` (its own prediction-log file);
- ``bare_starlette``: the same lookup as a bare Starlette endpoint on uvicorn (the limit);
- with ``--peer``: ``bentoml_hello``, a hello-world BentoML service with default
  settings (benchmarks/serving_peers.py).

Each server gets a warm-up and then ``--seconds`` of POST /forecast (5 tracts, one
category) over 32 keep-alive connections from benchmarks/loadgen.py, servers in turn.
For the crimecast servers the prediction log's WAL size is sampled every 0.2 s. Writes
benchmarks/results/serving.json: req/s, p50/p99/max latency, the latency histogram and
the count of requests over 100 ms after the first second (stalls), the ratio to bare
Starlette, peak and final WAL size, the targets, the machine and the date. ``--profile``
also samples the crimecast worker with py-spy for 8 s and writes the hottest frames to
benchmarks/results/serving_profile.txt.
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
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
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
from typing import Self

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


class WalSampler:
    """Samples the size of a SQLite WAL file every ``every`` seconds in a thread."""

    def __init__(self, path: Path, every: float = 0.2) -> None:
        self.path, self.every = path, every
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(self.path.stat().st_size if self.path.exists() else 0)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="load time per server")
    parser.add_argument("--peer", action="store_true", help="also load a hello-world BentoML")
    parser.add_argument("--profile", action="store_true", help="py-spy the crimecast worker")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "serving.json")
    args = parser.parse_args()

    from serving.auth import hash_key

    work = Path(tempfile.mkdtemp(prefix="crimecast-bench-serving-"))
    home = work / "project"
    procs: dict[str, subprocess.Popen] = {}
    predlogs = {"crimecast": home / "state" / "predlog.db",
                "crimecast_2_workers": home / "state" / "predlog-2-workers.db"}
    try:
        print(f"building the benchmark project in {home} ...", flush=True)
        area_ids = build_project(home)
        env = {**os.environ, "CRIMECAST_HOME": str(home),
               "CRIMECAST_API_KEYS": f"bench:{hash_key(KEY)}",
               "CRIMECAST_SERVING__ALIAS_POLL_SECONDS": "0",
               "BENCH_AREAS": str(AREAS)}
        names = ["crimecast", "crimecast_2_workers", "bare_starlette"]
        names += ["bentoml_hello"] if args.peer else []
        ports = {name: free_port() for name in names}
        bentoml = [sys.executable, "-m", "bentoml", "serve"]
        for name, workers in (("crimecast", "1"), ("crimecast_2_workers", "2")):
            procs[name] = start(
                [*bentoml, "serving.service:CrimecastService", "--host", "127.0.0.1",
                 "--port", str(ports[name]), "--working-dir", str(REPO)],
                {**env, "CRIMECAST_SERVING__WORKERS": workers,
                 "CRIMECAST_SERVING__PREDLOG__URL": f"sqlite:///{predlogs[name]}"},
                work / f"{name}.log", home)
        if args.peer:
            procs["bentoml_hello"] = start(
                [*bentoml, "serving_peers:HelloService", "--host", "127.0.0.1",
                 "--port", str(ports["bentoml_hello"]), "--working-dir", str(HERE)],
                env, work / "hello.log", HERE)
        procs["bare_starlette"] = start(
            [sys.executable, "-m", "uvicorn", "serving_peers:bare_app", "--host", "127.0.0.1",
             "--port", str(ports["bare_starlette"]), "--log-level", "warning",
             "--no-access-log"], env, work / "bare.log", HERE)
        for name, proc in procs.items():
            if name == "bare_starlette":
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        httpx.post(f"http://127.0.0.1:{ports[name]}/forecast", timeout=2,
                                   json={"horizon": 1, "category": "violent", "area_ids": []})
                        break
                    except httpx.HTTPError:
                        time.sleep(0.3)
            else:
                wait_until_ready(f"http://127.0.0.1:{ports[name]}/readyz", proc, name=name)
        print(f"servers up: {ports}", flush=True)

        tracts = {"area_ids": area_ids}
        fake = {"area_ids": [f"42101{i:06d}" for i in range(5)]}
        payloads = {name: {"horizon": 1, "category": "violent",
                           **(tracts if name.startswith("crimecast") else fake)}
                    for name in names}
        headers = {"X-API-Key": KEY}
        acknowledged: Counter[str] = Counter()

        def load(name: str, total: int | None, seconds: float | None = None) -> LoadResult:
            result = asyncio.run(run_load("127.0.0.1", ports[name], "/forecast", payloads[name],
                                          total, CONNECTIONS, headers, seconds=seconds))
            acknowledged[name] += result.statuses.get(200, 0)
            return result

        for name in names:  # warm-up: imports, caches, connection setup
            load(name, 500)
        results: dict[str, LoadResult] = {}
        wal: dict[str, dict[str, float]] = {}
        loadavg_before = os.getloadavg()
        for name in names:
            print(f"loading {name} for {args.seconds:g} s ...", flush=True)
            if name in predlogs:
                with WalSampler(Path(f"{predlogs[name]}-wal")) as sampler:
                    results[name] = load(name, None, args.seconds)
                    time.sleep(2.5)  # one more checkpoint interval after the load
                samples = sampler.samples or [0]
                wal[name] = {"peak_mib": round(max(samples) / 2**20, 2),
                             "after_load_mib": round(samples[-1] / 2**20, 2),
                             "samples": len(samples)}
            else:
                results[name] = load(name, None, args.seconds)
        loadavg_after = os.getloadavg()

        profile_note = None
        if args.profile:
            pid = worker_pid(procs["crimecast"])
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            if pid and Path(spy).exists():
                raw = work / "profile.txt"
                sampler = subprocess.Popen([spy, "record", "-p", str(pid), "-d", "8", "-f", "raw",
                                            "-o", str(raw), "--nonblocking"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                load("crimecast", None, 9.0)
                sampler.wait(60)
                target = args.out.parent / "serving_profile.txt"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(summarise_profile(raw))
                profile_note = str(target)

        # Every acknowledged crimecast request must be in its prediction log.
        import sqlalchemy as sa

        logged = 0
        for path in predlogs.values():
            engine = sa.create_engine(f"sqlite:///{path}")
            with engine.connect() as conn:
                logged += conn.execute(sa.text(
                    "SELECT count(*) FROM predictions WHERE endpoint='forecast' AND status=200"
                )).scalar_one()
            engine.dispose()

        summary = {name: result.summary(skip_s=1.0) for name, result in results.items()}
        bare = summary["bare_starlette"]["req_per_s"]
        for name, entry in summary.items():
            entry["ratio_to_bare"] = round(entry["req_per_s"] / bare, 3) if bare else None
            if name in wal:
                entry["wal"] = wal[name]
        targets = {}
        for name in ("crimecast", "crimecast_2_workers"):
            entry = summary[name]
            targets[name] = {
                "p99_ms_at_most_50": entry["p99_ms"] <= 50.0,
                "no_request_over_100ms_after_1s": entry["over_100ms_after_1s"] == 0,
                "throughput_at_least_0.25x_bare": entry["ratio_to_bare"] >= 0.25,
            }
        report = {
            "benchmark": "serving",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpus": os.cpu_count(), "processor": platform.processor() or None,
                        "loadavg_before": [round(x, 2) for x in loadavg_before],
                        "loadavg_after": [round(x, 2) for x in loadavg_after]},
            "setup": {"connections": CONNECTIONS, "seconds_per_server": args.seconds,
                      "areas": AREAS,
                      "client": "benchmarks/loadgen.py (asyncio streams, keep-alive)",
                      "request": "POST /forecast, 5 tracts, one category, horizon 1",
                      "stalls": "requests sent after the first second taking over 100 ms"},
            "results": summary,
            "targets": targets,
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
