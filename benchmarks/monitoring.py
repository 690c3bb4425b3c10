"""Monitoring benchmark → benchmarks/results/monitoring.json.

Times ``crimecast monitor run`` over a year: 52 weekly snapshots replayed from the panel
(forecasts by the historical-average baseline, a 13-week reference window), each with its
Evidently drift/performance report and per-group report stored in a fresh Evidently
workspace, plus the full HTML report of the last week. Runs in a throwaway project home
holding a copy of the pipeline's Philadelphia artifacts (areas, graph, panel) when
``artifacts/`` has them, else a Philadelphia-sized synthetic city (408 areas), and says
which. Peak memory: the largest summed resident set of the command's process tree
(it forks report workers), sampled every 0.1 s, and wait4's per-process maximum.

    .venv/bin/python benchmarks/monitoring.py [--weeks 52] [--workers 2]

Target: ≤ 60 s wall time on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "monitoring.json"
NEEDED = ("areas.parquet", "graph.npz", "panel.parquet")


def prepare_home(home: Path) -> str:
    """Fill ``home`` with configs and artifacts; returns a description of the data."""
    shutil.copytree(REPO / "configs", home / "configs")
    source = REPO / "artifacts"
    (home / "artifacts").mkdir()
    if all((source / name).exists() for name in NEEDED):
        for name in NEEDED:
            shutil.copy2(source / name, home / "artifacts" / name)
        return "philadelphia (pipeline artifacts: 408 census tracts)"
    code = ("from crimecast.data.synthetic import generate_city, save_city_artifacts;"
            "from crimecast.contracts import ArtifactPaths;"
            "save_city_artifacts(generate_city(n_areas=408, n_weeks=130, seed=2026),"
            " ArtifactPaths())")
    subprocess.run([sys.executable, "-c", code], cwd=home, env=_env(home), check=True)
    return "synthetic city, 408 areas (no Philadelphia artifacts found)"


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "CRIMECAST_HOME": str(home), "PYTHONWARNINGS": "ignore"}


def measure(command: list[str], home: Path, env: dict[str, str]) -> dict[str, Any]:
    """Wall time, peak summed RSS of the process tree, wait4 max RSS, exit code, output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=home, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return {"seconds": round(seconds, 2),
            # CPU of the command and every process it waited for (the report workers):
            # unlike wall time, it does not grow when other jobs share the cores.
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_tree_rss_mib": round(peak / 2**20, 1),
            "peak_process_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "returncode": os.waitstatus_to_exitcode(status), "output": output}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="crimecast-bench-monitoring-") as tmp:
        home = Path(tmp) / "project"
        home.mkdir()
        data = prepare_home(home)
        env = {**_env(home), "CRIMECAST_MONITORING__WORKERS": str(args.workers)}
        command = [sys.executable, "-m", "crimecast", "monitor", "run", "--weeks",
                   str(args.weeks), "--source", "replay", "--model", "historical_average"]
        print(f"$ crimecast {' '.join(command[3:])}   # on {data}", flush=True)
        run = measure(command, home, env)
        print(run["output"][-1500:])
        if run["returncode"] != 0:
            raise SystemExit(f"monitor run failed with exit code {run['returncode']}")
        summary = json.loads((home / "state" / "monitoring" / "summary.json").read_text())
        snapshots = len(list((home / "workspace").rglob("snapshots/*.json")))
    result = {
        "benchmark": "monitoring",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_average_at_start": load_at_start,
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "data": data,
        "command": "crimecast " + " ".join(command[3:]),
        "weeks": args.weeks, "workers": args.workers,
        "areas": summary["areas"], "rows_per_week": summary["areas"] * 3,
        "workspace_snapshots": snapshots,
        "wall_seconds": run["seconds"],
        "cpu_seconds": run["cpu_seconds"],
        "peak_tree_rss_mib": run["peak_tree_rss_mib"],
        "peak_process_rss_mib": run["peak_process_rss_mib"],
        "target_wall_seconds": 60,
        "target_met": run["seconds"] <= 60,
        "latest_week": summary["latest"],
        "window": summary["window"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: result[k] for k in ("data", "wall_seconds", "cpu_seconds",
                                            "peak_tree_rss_mib",
                                            "target_met")}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
