"""Pipeline benchmark → benchmarks/results/pipeline.json.

Cases (each measured in its own process; peak memory is the maximum resident set size
of that process and everything it waited for, from ``wait4``):

1. ``philadelphia``: `dvc repro graph panel` on the embedded Philadelphia snapshot,
   in a throwaway git + DVC copy of the project (fetch, `dvc add data`, then
   ingest → areas → graph → panel). Per-stage times come from when
   DVC announces each stage. Target: ≤ 60 s on 2 cores.
2. ``noop_repro``: the same `dvc repro` again, with nothing changed (median of 3).
   Target: ≤ 5 s.
3. ``synthetic_<n>``: :func:`crimecast.data.synthetic.generate_city` (n areas × 104 weeks,
   counts only, no point events) and :func:`crimecast.data.graph.build_graph` for
   n = 1,000, 10,000 and 100,000. Target: time roughly linear in n, ≤ 8 GiB.

    .venv/bin/python benchmarks/pipeline.py [--skip-philadelphia] [--sizes 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "pipeline.json"
SYNTHETIC_WEEKS = 104


def run_measured(command: list[str], cwd: Path, env: dict[str, str] | None = None,
                 echo: bool = True) -> dict[str, Any]:
    """Run ``command``, streaming its output; return wall seconds, peak RSS (MiB) of the
    process tree it waited for, the exit code, and (time, line) for every output line."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[tuple[float, str]] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append((time.perf_counter() - started, line.rstrip()))
        if echo and line.strip():
            print("    " + line.rstrip(), flush=True)
    # wait4 reports this child's own usage together with its waited-for descendants.
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"seconds": round(time.perf_counter() - started, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "returncode": process.returncode, "lines": lines}


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "CRIMECAST_HOME": str(home),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}


def _copy_project(home: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("crimecast", "training", "configs", "snapshot"):
        shutil.copytree(REPO / name, home / name, ignore=ignore)
    for name in ("dvc.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore"):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, home / name)
    (home / ".gitignore").write_text("/artifacts/\n/data/\n/dvc-storage/\n/state/\n")
    git = ["git", "-c", "user.email=bench@example.org", "-c", "user.name=bench"]
    for command in (["git", "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", "bench"]):
        subprocess.run(command, cwd=home, check=True, capture_output=True)


def stage_times(lines: list[tuple[float, str]], total: float) -> dict[str, float]:
    """Seconds per stage, from the moments DVC prints ``Running stage 'NAME'``."""
    starts = [(t, m.group(1)) for t, line in lines
              if (m := re.search(r"Running stage '([^']+)'", line))]
    ends = [t for t, _ in starts[1:]] + [total]
    return {name: round(end - start, 2) for (start, name), end in zip(starts, ends)}


def bench_philadelphia() -> dict[str, Any]:
    """Cases 1 and 2 in a temporary copy of the project."""
    with tempfile.TemporaryDirectory(prefix="crimecast-bench-") as tmp:
        home = Path(tmp) / "project"
        home.mkdir()
        _copy_project(home)
        env = _env(home)
        print("fetch the Philadelphia snapshot into data/ and `dvc add` it", flush=True)
        fetch = run_measured([sys.executable, "-m", "crimecast", "data", "fetch"], home, env)
        if fetch["returncode"] != 0:
            raise SystemExit("crimecast data fetch failed")
        print("dvc repro graph panel (ingest → panel)", flush=True)
        # `crimecast pipeline` records the unit the data stages depend on; bare dvc here
        record = ("from crimecast.data.settings import DataSettings; from crimecast.data."
                  "units import record_unit; record_unit(DataSettings.load().units)")
        run_measured([sys.executable, "-c", record], home, env, echo=False)
        repro = [sys.executable, "-m", "dvc", "repro", "graph", "panel"]
        full = run_measured(repro, home, env)
        if full["returncode"] != 0:
            raise SystemExit("dvc repro failed")
        panel_line = next((line for _, line in full["lines"] if line.startswith("panel:")), "")
        noops = []
        for attempt in range(3):
            print(f"no-op dvc repro ({attempt + 1}/3)", flush=True)
            noop = run_measured(repro, home, env, echo=False)
            ran = [line for _, line in noop["lines"] if "Running stage" in line]
            if ran or noop["returncode"] != 0:
                raise SystemExit(f"the second dvc repro was not a no-op: {ran}")
            noops.append(noop)
        noop_seconds = sorted(n["seconds"] for n in noops)
        return {
            "philadelphia": {
                "what": "dvc repro: ingest, areas, graph, panel "
                        "(Philadelphia snapshot, 2016-2025, 408 tracts)",
                "seconds": full["seconds"],
                "peak_rss_mib": full["peak_rss_mib"],
                "stage_seconds": stage_times(full["lines"], full["seconds"]),
                "panel": panel_line,
                "target_seconds": 60,
                "fetch_seconds": fetch["seconds"],
                "measured_utc": _now(),
            },
            "noop_repro": {
                "what": "dvc repro with nothing changed (median of 3)",
                "seconds": noop_seconds[1], "all_seconds": noop_seconds,
                "peak_rss_mib": max(n["peak_rss_mib"] for n in noops),
                "target_seconds": 5,
                "measured_utc": _now(),
            },
        }


def synthetic_case(n_areas: int) -> dict[str, Any]:
    """Run in a child process: generate a city and build its graph; print JSON timings."""
    from crimecast.data.graph import build_graph, graph_summary
    from crimecast.data.synthetic import generate_city

    started = time.perf_counter()
    city = generate_city(n_areas, SYNTHETIC_WEEKS, seed=1)
    generated = time.perf_counter()
    edge_index, _ = build_graph(city.areas)
    built = time.perf_counter()
    summary = graph_summary(edge_index, n_areas)
    assert summary["components"] == 1 and summary["symmetric"], summary
    return {"generate_seconds": round(generated - started, 2),
            "graph_seconds": round(built - generated, 2),
            "edges": summary["num_edges"], "incidents": int(city.counts.sum())}


def bench_synthetic(sizes: list[int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for n in sizes:
        print(f"synthetic city: {n:,} areas × {SYNTHETIC_WEEKS} weeks + graph", flush=True)
        run = run_measured([sys.executable, __file__, "--child-synthetic", str(n)], REPO,
                           echo=False)
        if run["returncode"] != 0:
            raise SystemExit("\n".join(line for _, line in run["lines"]))
        inner = json.loads(run["lines"][-1][1])
        results[f"synthetic_{n}"] = {
            "what": f"generate_city({n}, {SYNTHETIC_WEEKS} weeks) + build_graph (queen)",
            **inner, "seconds": run["seconds"], "peak_rss_mib": run["peak_rss_mib"],
            "target_peak_rss_mib": 8192, "measured_utc": _now(),
        }
        print(f"    {results[f'synthetic_{n}']}", flush=True)
    if len(sizes) >= 2:
        small, large = f"synthetic_{sizes[-2]}", f"synthetic_{sizes[-1]}"
        work = lambda r: r["generate_seconds"] + r["graph_seconds"]
        results["synthetic_scaling"] = {
            "what": f"time ratio {large} / {small} for {sizes[-1] // sizes[-2]}× the areas "
                    "(1.0 per ×1 = linear)",
            "ratio": round(work(results[large]) / max(work(results[small]), 1e-9), 2),
            "areas_ratio": sizes[-1] // sizes[-2],
        }
    return results


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    memory_kib = next(int(line.split()[1]) for line in
                      Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory_kib / 2**20, 1),
            "python": platform.python_version(), "os": platform.platform(),
            "date_utc": _now()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000],
                        help="synthetic city sizes (areas)")
    parser.add_argument("--skip-philadelphia", action="store_true",
                        help="only the synthetic cases")
    parser.add_argument("--child-synthetic", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_synthetic:
        print(json.dumps(synthetic_case(args.child_synthetic)))
        return
    # Keep the cases not rerun this time (e.g. --skip-philadelphia keeps the last ones).
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = machine()
    if not args.skip_philadelphia:
        results.update(bench_philadelphia())
    results.update(bench_synthetic(args.sizes))
    from crimecast.io import write_json

    write_json(RESULTS, results)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
