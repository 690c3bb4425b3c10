"""Accuracy benchmark: every model, rolling-origin backtest, synthetic city and Philadelphia.

    .venv/bin/python benchmarks/accuracy.py                 # everything (~25 min on 2 cores)
    .venv/bin/python benchmarks/accuracy.py --parts synthetic --areas 400 --weeks 260
    .venv/bin/python benchmarks/accuracy.py --parts philadelphia memory

Parts:
- ``synthetic``: a generated city (with its true intensity as the ``oracle``); targets: the
  GNN's excess Poisson deviance over the oracle ≤ half that of the best baseline.
- ``convs``: the GNN with each graph convolution (gcn, graph, gat) on the synthetic city.
- ``philadelphia``: the pipeline's artifacts (``artifacts/panel.parquet``, ``graph.npz``,
  ``areas.parquet``); targets: the GNN beats the best baseline on Poisson deviance and
  PAI@5 %; GNN training time on the full panel (target ≤ 180 s).
- ``memory``: peak resident memory while training one epoch on a 100,000-area synthetic
  city with neighbour-sampled mini-batches (target ≤ 8 GiB).

Writes ``benchmarks/results/accuracy.json`` (updated after every part, so partial runs
keep their numbers) and prints Markdown tables for ``docs/models.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crimecast.contracts import AreaGraph, Panel
from crimecast.forecast.backtest import BacktestResult, oracle_backtest, run_backtest
from crimecast.forecast.models import MODEL_NAMES, ModelsSettings, get_model
from crimecast.forecast.settings import EvaluationSettings

RESULTS = REPO / "benchmarks" / "results" / "accuracy.json"
TABLE_METRICS = ("poisson_deviance", "mae", "rmse", "coverage_80", "coverage_95",
                 "hit_rate@1%", "pai@1%", "pai@5%", "pei_star@5%", "hit_rate@5%",
                 "pai@10%", "hit_rate@top10")


def machine() -> dict[str, Any]:
    import psutil
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": psutil.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "torch": torch.__version__,
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def synthetic_city(n_areas: int, n_weeks: int, seed: int, **overrides: Any
                   ) -> tuple[Panel, AreaGraph, Any]:
    from crimecast.data.graph import build_graph
    from crimecast.data.synthetic import generate_city

    city = generate_city(n_areas=n_areas, n_weeks=n_weeks, seed=seed, **overrides)
    edge_index, edge_weight = build_graph(city.areas)
    areas = pd.DataFrame(city.areas.drop(columns="geometry")).set_index("area_id")
    graph = AreaGraph(city.area_ids, edge_index, edge_weight, areas.loc[city.area_ids])
    return Panel(city.panel_frame()), graph, city


def fair_oracle_backtest(city: Any, panel: Panel, graph: AreaGraph,
                         settings: EvaluationSettings) -> BacktestResult:
    """The best forecast possible from the data at the origin, E[y(o+h) | y(..o)].

    The synthetic process is linear: lambda(t) = bg(t) + alpha y(t-1) + gamma W y(t-1),
    so bg(t) is recovered from the saved intensity and the expectation propagates
    exactly: E[y(o+k)] = bg(o+k) + (alpha I + gamma W) E[y(o+k-1)]. (Valid without
    reporting bias or outages, as in this benchmark's city.) The library's
    ``oracle_backtest`` instead uses lambda(o+h) itself, which for h > 1 knows the counts
    of weeks after the origin.
    """
    from crimecast.data.panel import panel_arrays
    from crimecast.forecast.backtest import label_rows, origin_indices, score_rows, summarise
    from crimecast.forecast.models.base import forecast_frame

    alpha, gamma = city.settings.self_excitation, city.settings.spillover
    spill = city.neighbours
    y, lam = city.counts.astype(float), city.intensity.astype(float)
    background = np.zeros_like(lam)
    for t in range(1, y.shape[1]):
        background[:, t] = lam[:, t] - alpha * y[:, t - 1] - gamma * np.asarray(spill @ y[:, t - 1])
    data = panel_arrays(panel, graph)
    horizons = tuple(settings.horizons)
    parts = []
    for origin in origin_indices(y.shape[1], settings):
        expected, means = y[:, origin], []
        for k in range(1, max(horizons) + 1):
            week = min(origin + k, y.shape[1] - 1)
            expected = background[:, week] + alpha * expected + gamma * np.asarray(
                spill @ expected)
            if k in horizons:
                means.append(expected)
        forecast = forecast_frame(np.stack(means, axis=1), graph.area_ids, data.categories,
                                  data.weeks[origin], horizons, 0.0)
        parts.append(score_rows(forecast, data, graph, origin))
    rows = label_rows(pd.concat(parts, ignore_index=True), graph, "oracle_fair")
    return BacktestResult("oracle_fair", rows, summarise(rows, graph, settings))


def backtest_all(panel: Panel, graph: AreaGraph, settings: EvaluationSettings,
                 models: dict[str, dict[str, Any]]) -> list[tuple[BacktestResult, float]]:
    out = []
    for label, spec in models.items():
        spec = dict(spec)
        name = spec.pop("model", label)
        started = time.perf_counter()
        result = run_backtest(get_model(name, **spec), panel, graph, settings)
        result.model = label
        seconds = time.perf_counter() - started
        print(f"  {label:<22} deviance {result.summary['overall']['poisson_deviance']:.4f}  "
              f"pai@5% {result.summary['overall']['pai@5%']:.3f}  ({seconds:.0f} s)", flush=True)
        out.append((result, seconds))
    return out


def table(results: list[tuple[BacktestResult, float]]) -> dict[str, dict[str, float]]:
    return {r.model: {**{m: r.summary["overall"].get(m) for m in TABLE_METRICS},
                      **{f"poisson_deviance_h{h}": v["poisson_deviance"]
                         for h, v in r.summary["by_horizon"].items()},
                      "backtest_seconds": round(s, 1)} for r, s in results}


def markdown(rows: dict[str, dict[str, float]], metrics: tuple[str, ...]) -> str:
    head = "| model | " + " | ".join(metrics) + " |"
    line = "|---|" + "---|" * len(metrics)
    body = ["| " + name + " | " + " | ".join(
        "" if row.get(m) is None else f"{row[m]:.3f}" for m in metrics) + " |"
        for name, row in rows.items()]
    return "\n".join([head, line, *body])


def model_specs(config: ModelsSettings, names: list[str]) -> dict[str, dict[str, Any]]:
    return {n: {"model": n, **config.params_for(n)} for n in names}


def part_synthetic(args: argparse.Namespace, config: ModelsSettings) -> dict[str, Any]:
    print(f"synthetic city: {args.areas} areas x {args.weeks} weeks", flush=True)
    panel, graph, city = synthetic_city(args.areas, args.weeks, args.seed)
    settings = EvaluationSettings.load()
    results = backtest_all(panel, graph, settings, model_specs(config, args.models))
    results.append((oracle_backtest(city.truth_frame(), panel, graph, settings), 0.0))
    results.append((fair_oracle_backtest(city, panel, graph, settings), 0.0))
    rows = table(results)
    oracles = ("oracle", "oracle_fair")
    baselines = {n: r["poisson_deviance"] for n, r in rows.items() if n not in ("gnn", *oracles)}
    verdict: dict[str, Any] = {}
    if baselines and "gnn" in rows:
        best = min(baselines, key=baselines.get)
        verdict["best_baseline"] = best
        verdict["target"] = "gnn excess deviance over the oracle <= 0.5 x best baseline's"
        for oracle_name in oracles:
            oracle_dev = rows[oracle_name]["poisson_deviance"]
            excess_gnn = rows["gnn"]["poisson_deviance"] - oracle_dev
            excess_best = baselines[best] - oracle_dev
            verdict[oracle_name] = {
                "oracle_deviance": oracle_dev, "gnn_excess_deviance": excess_gnn,
                "best_baseline_excess_deviance": excess_best,
                "excess_ratio": excess_gnn / excess_best if excess_best > 0 else None,
                "met": bool(excess_gnn <= 0.5 * excess_best)}
    print(markdown(rows, TABLE_METRICS))
    print(json.dumps(verdict, indent=1))
    return {"areas": args.areas, "weeks": args.weeks, "seed": args.seed,
            "backtest": settings.model_dump(), "models": rows, "verdict": verdict}


def part_convs(args: argparse.Namespace, config: ModelsSettings) -> dict[str, Any]:
    print("GNN graph convolutions on the synthetic city", flush=True)
    panel, graph, _city = synthetic_city(args.areas, args.weeks, args.seed)
    specs = {f"gnn[{conv}]": {"model": "gnn", **config.params_for("gnn"), "conv": conv}
             for conv in ("gcn", "graph", "gat")}
    rows = table(backtest_all(panel, graph, EvaluationSettings.load(), specs))
    winner = min(rows, key=lambda n: rows[n]["poisson_deviance"])
    print(markdown(rows, ("poisson_deviance", "pai@5%", "coverage_80", "backtest_seconds")))
    return {"models": rows, "winner": winner}


def part_philadelphia(args: argparse.Namespace, config: ModelsSettings) -> dict[str, Any]:
    from crimecast.contracts import ARTIFACTS

    home = Path(args.artifacts_home)
    panel = Panel.load(home / ARTIFACTS.root / "panel.parquet")
    graph = AreaGraph.load(home / ARTIFACTS.root / "graph.npz",
                           home / ARTIFACTS.root / "areas.parquet")
    print(f"philadelphia: {graph.num_nodes} tracts x {len(panel.weeks)} weeks "
          f"({panel.weeks[0].date()} .. {panel.last_week.date()})", flush=True)
    rows = table(backtest_all(panel, graph, EvaluationSettings.load(), model_specs(config, args.models)))
    verdict: dict[str, Any] = {}
    baselines = {n: r for n, r in rows.items() if n != "gnn"}
    if baselines and "gnn" in rows:
        best_dev = min(baselines, key=lambda n: baselines[n]["poisson_deviance"])
        best_pai = max(baselines, key=lambda n: baselines[n]["pai@5%"])
        verdict = {
            "best_baseline_deviance": best_dev, "best_baseline_pai@5%": best_pai,
            "gnn_beats_deviance": bool(rows["gnn"]["poisson_deviance"]
                                       < baselines[best_dev]["poisson_deviance"]),
            "gnn_beats_pai@5%": bool(rows["gnn"]["pai@5%"] > baselines[best_pai]["pai@5%"]),
        }
    if "gnn" in args.models:
        model = get_model("gnn", **config.params_for("gnn"))
        started = time.perf_counter()
        model.fit(panel, graph)
        verdict["gnn_train_seconds_full_panel"] = round(time.perf_counter() - started, 1)
        verdict["gnn_epochs_run"] = len(model.history_)
        verdict["gnn_train_target_seconds"] = 180
    print(markdown(rows, TABLE_METRICS))
    print(json.dumps(verdict, indent=1))
    return {"areas": graph.num_nodes, "weeks": len(panel.weeks),
            "last_week": str(panel.last_week.date()), "models": rows, "verdict": verdict}


def part_memory(args: argparse.Namespace, config: ModelsSettings) -> dict[str, Any]:
    """Generate the big city here, then train one epoch in a fresh process, so the peak
    memory measured is training's own (generating 100k Voronoi cells needs far more)."""
    import subprocess
    import tempfile

    print(f"memory: {args.memory_areas} areas x {args.memory_weeks} weeks, one epoch",
          flush=True)
    started = time.perf_counter()
    panel, graph, city = synthetic_city(args.memory_areas, args.memory_weeks, args.seed)
    generate_seconds = time.perf_counter() - started
    del city
    with tempfile.TemporaryDirectory(prefix="crimecast-memory-") as tmp:
        folder = Path(tmp)
        panel.counts.to_parquet(folder / "panel.parquet", index=False)
        graph.save(folder / "graph.npz", folder / "areas.parquet")
        del panel, graph
        child = subprocess.run([sys.executable, __file__, "--memory-child", str(folder)],
                               capture_output=True, text=True, check=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result.update({"generate_city_seconds": round(generate_seconds, 1), "target_gib": 8,
                   "met": bool(result["peak_rss_gib"] <= 8)})
    print(json.dumps(result, indent=1))
    return result


def memory_child(folder: Path, config: ModelsSettings, weeks: int) -> None:
    """Load the saved city, train the GNN for one epoch; print peak memory as JSON."""
    import resource

    import psutil

    process = psutil.Process()
    graph = AreaGraph.load(folder / "graph.npz", folder / "areas.parquet")
    panel = Panel(pd.read_parquet(folder / "panel.parquet"))
    loaded = process.memory_info().rss
    peak = [loaded]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    params = {**config.params_for("gnn"), "epochs": 1, "train_weeks": weeks}
    model = get_model("gnn", **params)
    started = time.perf_counter()
    model.fit(panel, graph)
    seconds = time.perf_counter() - started
    stop.set()
    watcher.join()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({
        "areas": graph.num_nodes, "edges": graph.num_edges, "weeks": len(panel.weeks),
        "batch_size": params["batch_size"], "num_neighbors": params["num_neighbors"],
        "neighbour_sampling": graph.num_nodes > params["full_batch_max_nodes"],
        "rss_after_loading_gib": round(loaded / 2**30, 2),
        "peak_rss_gib": round(max(peak[0], max_rss) / 2**30, 2),
        "fit_one_epoch_seconds": round(seconds, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["synthetic", "convs", "philadelphia",
                                                       "memory"],
                        choices=["synthetic", "convs", "philadelphia", "memory"])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--areas", type=int, default=400)
    parser.add_argument("--weeks", type=int, default=260)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--memory-areas", type=int, default=100_000)
    parser.add_argument("--memory-weeks", type=int, default=60)
    parser.add_argument("--artifacts-home", default=str(REPO),
                        help="project home whose artifacts/ hold the Philadelphia pipeline outputs")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = ModelsSettings.load(REPO / "configs" / "models.yaml")
    if args.memory_child:
        memory_child(Path(args.memory_child), config, args.memory_weeks)
        return
    output = Path(args.output)
    runners = {"synthetic": part_synthetic, "convs": part_convs,
               "philadelphia": part_philadelphia, "memory": part_memory}
    from crimecast.io import write_json

    for part in args.parts:
        result = runners[part](args, config)
        result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        # Re-read before writing: parts run in parallel processes keep each other's results.
        payload: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
        payload["machine"] = machine()
        payload[part] = result
        write_json(output, payload)
        print(f"wrote {output} ({part})", flush=True)


if __name__ == "__main__":
    main()
