"""Benchmark the model lifecycle commands on the current pipeline artifacts.

Copies configs/ and the pipeline artifacts (panel, graph, areas) of the project
home into a scratch project (its own MLflow store, Optuna study and audit log), then times
the commands a user runs, each as a fresh ``crimecast`` process:

1. ``crimecast tune --trials N`` (default 20, the configured model: the GNN),
2. ``crimecast train`` (tuned params; backtest + fit + log + register @challenger),
3. ``crimecast evaluate`` and ``crimecast promote`` (the rest of the train -> promote chain).

Writes benchmarks/results/lifecycle.json (wall seconds per step, the chain total, the
decision, machine and date).

    .venv/bin/python benchmarks/lifecycle.py [--trials 20] [--scratch DIR] [--skip-tune]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "lifecycle.json"
INPUTS = ("panel.parquet", "graph.npz", "areas.parquet")


def run_step(name: str, args: list[str], home: Path) -> dict:
    """Run one ``crimecast`` command in ``home``; returns its wall time and exit code."""
    crimecast = str(Path(sys.executable).parent / "crimecast")
    env = {**os.environ, "CRIMECAST_HOME": str(home)}
    print(f"--> crimecast {' '.join(args)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run([crimecast, *args], cwd=home, env=env, text=True,
                          capture_output=True, check=False)
    seconds = time.perf_counter() - start
    tail = (done.stdout + done.stderr).strip().splitlines()[-6:]
    print("\n".join(f"    {line}" for line in tail), flush=True)
    if done.returncode != 0:
        raise SystemExit(f"step {name} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return {"step": name, "command": f"crimecast {' '.join(args)}", "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--scratch", type=Path, default=None,
                        help="scratch project dir (default: a temporary directory)")
    parser.add_argument("--skip-tune", action="store_true",
                        help="time train->promote only; keep the tune numbers of the last "
                             "results file (use --best-params to train with its params)")
    parser.add_argument("--best-params", type=Path, default=None,
                        help="a best_params.json to train with (with --skip-tune)")
    args = parser.parse_args()

    source = REPO / "artifacts"
    missing = [name for name in INPUTS[:3] if not (source / name).exists()]
    if missing:
        raise SystemExit(f"{source}: missing {missing}; run `crimecast pipeline` first")
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="crimecast-lifecycle-"))
    home = scratch / "project"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(REPO / "configs", home / "configs")
    (home / "artifacts").mkdir(parents=True)
    for name in INPUTS:
        if (source / name).exists():
            shutil.copy(source / name, home / "artifacts" / name)

    if args.best_params:
        shutil.copy(args.best_params, home / "artifacts" / "best_params.json")
    previous = json.loads(RESULT.read_text()) if RESULT.exists() else {}

    from crimecast.contracts import AreaGraph, Panel

    panel = Panel.load(home / "artifacts" / "panel.parquet")
    graph = AreaGraph.load(home / "artifacts" / "graph.npz", home / "artifacts" / "areas.parquet")
    steps = []
    if not args.skip_tune:
        steps.append(run_step("tune", ["tune", "--trials", str(args.trials)], home))
    for name in ("train", "evaluate", "promote"):
        steps.append(run_step(name, [name], home))
    by_step = {s["step"]: s["seconds"] for s in steps}
    if args.skip_tune and "tune" in previous.get("seconds", {}):
        by_step["tune"] = previous["seconds"]["tune"]  # measured by the previous full run
    train_run = json.loads((home / "artifacts" / "train_run.json").read_text())
    promotion = json.loads((home / "artifacts" / "promotion.json").read_text())
    best_params = home / "artifacts" / "best_params.json"
    tune_result = (json.loads(best_params.read_text()) if best_params.exists()
                   else previous.get("tune"))
    result = {
        "benchmark": "lifecycle",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg()},
        "data": {"areas": graph.num_nodes, "weeks": len(panel.weeks),
                 "categories": panel.categories, "last_week": str(panel.last_week.date())},
        "steps": steps,
        "seconds": {**by_step,
                    "train_to_promote": round(sum(by_step[s] for s in
                                                  ("train", "evaluate", "promote")), 1)},
        "trials": args.trials if not args.skip_tune else previous.get("trials", 0),
        "tune_date": (datetime.now(UTC).isoformat(timespec="seconds") if not args.skip_tune
                      else previous.get("tune_date", previous.get("date"))),
        "tune": tune_result,
        "model": train_run["model_name"],
        "train_metrics": {k: v for k, v in train_run["metrics"].items()
                          if k in ("overall.poisson_deviance", "overall.pai_at_5pct",
                                   "overall.mae", "overall.coverage_80")},
        "promotion": {"decision": promotion["decision"], "reason": promotion["reason"],
                      "reference": promotion.get("reference")},
        "peak_child_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, RESULT)
    print(json.dumps(result["seconds"], indent=2))
    print(f"wrote {RESULT} (scratch project: {home})")


if __name__ == "__main__":
    main()
