"""Accuracy benchmark: every model, the ensemble and the ceilings, with paired 95 % CIs.

    .venv/bin/python benchmarks/accuracy.py --parts city                 # Philadelphia tracts
    .venv/bin/python benchmarks/accuracy.py --parts city --homes tract=/tmp/phl h3r9=/tmp/h3
    .venv/bin/python benchmarks/accuracy.py --parts synthetic synthetic60 noise
    .venv/bin/python benchmarks/accuracy.py --parts memory convs

Parts:
- ``city``: for each ``UNIT=HOME`` of ``--homes`` (default ``tract=<this repository>``),
  the pipeline artifacts of that project home (``artifacts/panel.parquet``, ``graph.npz``,
  ``areas.parquet``) and its ``configs/``. Every model of ``--models`` (default: all,
  the ensemble included) is backtested on the same rolling-origin windows
  (``configs/evaluation.yaml``), with both ceilings. The tables cover the target "all" and
  "violent" at horizon 1 (horizons 2–4 as further tables): deviance, log score, RPS, MAE,
  hit rate at 1/5/10 % of land, PAI, PEI*, 80/95 % coverage before and after
  calibration, each model's paired difference from the best baseline with its 95 % CI,
  and the share of the gap to each ceiling it closes. The targets of issue 10 are checked
  for every model (deviance below the two-sided smoother's, hit rate at 5 % ≥ 98.5 % of
  perfect hindsight's, 80 % coverage within 0.80 ± 0.03 in every group with ≥ 20 areas).
  Every model's backtest forecasts are written as tidy parquet to
  ``benchmarks/results/forecasts/<unit>/<model>.parquet`` (git-ignored; rerun this part
  to regenerate them): ``area_id, week, category, horizon, mean, lower_80, upper_80,
  lower_95, upper_95`` plus ``origin``, ``dispersion`` (NB: the predictive distribution
  is NB(mean, dispersion), so any score can be recomputed) and ``actual``.
- ``synthetic``: a generated city (400 areas × 260 weeks) with its true intensity as
  ``oracle`` and the exact conditional expectation as ``oracle_fair``.
- ``synthetic60``: a generated city of 60 weeks with the default configs: every model
  must train, and the GNN must not be the worst.
- ``noise``: the GNN and LightGBM retrained with another seed on the first ``--homes``
  city, compared with themselves: the paired CIs that the gate's margins must exceed.
- ``convs``: the GNN with each graph convolution on the synthetic city.
- ``memory``: peak resident memory of one GNN epoch on a 100,000-area synthetic city with
  neighbour-sampled mini-batches (target ≤ 8 GiB).

Writes ``benchmarks/results/accuracy.json`` (merged after every part, so parts can run
separately) and prints Markdown tables for docs/models.md and the README.
"""

from __future__ import annotations

import argparse
import contextlib
import io
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

from crimecast.contracts import FORECAST_COLUMNS, AreaGraph, Panel
from crimecast.forecast.backtest import (
    HINDSIGHT,
    REFERENCE,
    SMOOTHER,
    BacktestResult,
    oracle_backtest,
    run_backtest,
)
from crimecast.forecast.models import BASELINE_NAMES, MODEL_NAMES, ModelsSettings, get_model
from crimecast.forecast.settings import EvaluationSettings

RESULTS = REPO / "benchmarks" / "results" / "accuracy.json"
FORECASTS = REPO / "benchmarks" / "results" / "forecasts"
TARGETS = ("all", "violent")
CEILINGS = (SMOOTHER, HINDSIGHT, REFERENCE)
CEILING_LABELS = {SMOOTHER: "two-sided smoother ±k (ceiling)",
                  HINDSIGHT: "perfect hindsight (ceiling)", REFERENCE: "52-week mean (reference)"}


def machine() -> dict[str, Any]:
    import os

    import psutil
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": psutil.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "torch": torch.__version__,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
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
        parts.append(score_rows(forecast.assign(dispersion=0.0), data, graph, origin))
    rows = label_rows(pd.concat(parts, ignore_index=True), graph, "oracle_fair")
    return BacktestResult("oracle_fair", rows, summarise(rows, graph, settings))


def backtest_all(panel: Panel, graph: AreaGraph, settings: EvaluationSettings,
                 models: dict[str, dict[str, Any]]) -> dict[str, tuple[BacktestResult, float]]:
    """Backtest each ``label: {"model": name, **params}``; prints one line per model."""
    out = {}
    for label, spec in models.items():
        spec = dict(spec)
        name = spec.pop("model", label)
        started = time.perf_counter()
        notes = io.StringIO()
        with contextlib.redirect_stderr(notes):  # adaptation lines go into the results
            result = run_backtest(get_model(name, **spec), panel, graph, settings,
                                  progress=False)
        result.model = label
        seconds = time.perf_counter() - started
        headline = result.summary["targets"]["all"]["1"]
        print(f"  {label:<22} all h1: deviance {headline['poisson_deviance']:.4f}  "
              f"hit@5% {headline['hit_rate@5%']:.4f}  ({seconds:.0f} s)", flush=True)
        for line in notes.getvalue().splitlines():
            print(f"    {line}", flush=True)
        out[label] = (result, seconds)
    return out


def model_specs(config: ModelsSettings, names: list[str]) -> dict[str, dict[str, Any]]:
    return {n: {"model": n, **config.params_for(n)} for n in names}


# ------------------------------------------------------------------------ the table
TABLE = ("poisson_deviance", "log_score", "rps", "mae", "hit_rate@1%", "hit_rate@5%",
         "hit_rate@10%", "pai@5%", "pei_star@5%", "coverage_80_uncalibrated", "coverage_80",
         "coverage_95_uncalibrated", "coverage_95", "pit_calibration_error")
COMPARED = ("poisson_deviance", "log_score", "rps", "mae", "hit_rate@5%", "pai@5%")


def tables(results: dict[str, tuple[BacktestResult, float]], panel: Panel, graph: AreaGraph,
           settings: EvaluationSettings) -> dict[str, Any]:
    """Every number of a dataset's table: metrics per model and target at each horizon,
    the ceilings, paired CIs against the best baseline and against the ceilings, the gap
    closed, coverage by group and the issue's targets per model."""
    from crimecast.lifecycle.evaluation import ceiling_comparisons, compare_backtests

    backtests = {label: (r.rows, r.summary) for label, (r, _) in results.items()}
    any_summary = next(iter(backtests.values()))[1]
    targets = [t for t in TARGETS if t in any_summary["targets"]]
    horizons = list(any_summary["targets"]["all"])
    baselines = [b for b in backtests if b in BASELINE_NAMES]
    best = min(baselines or list(backtests), key=lambda b: backtests[b][1]["targets"]["all"][
        "1"]["poisson_deviance"])
    out: dict[str, Any] = {"best_baseline": best, "targets": targets, "horizons": horizons,
                           "models": {}, "ceilings": {}}
    for label, (rows, summary) in backtests.items():
        out["models"][label] = {
            "seconds": round(results[label][1], 1),
            "targets": summary["targets"], "gap_closed": summary.get("gap_closed", {}),
            "coverage_by_group": summary.get("headline_by_group", {}),
            "calibration": summary.get("calibration", {}).get("targets", {}),
            "overall": {k: summary["overall"].get(k) for k in
                        ("poisson_deviance", "log_score", "rps", "mae", "coverage_80",
                         "coverage_80_uncalibrated", "pai@5%")},
            "excluded_categories": summary.get("excluded_categories", [])}
    out["ceilings"] = any_summary.get("ceilings", {})
    print("  paired comparisons ...", flush=True)
    for horizon in (int(h) for h in horizons):
        compared = compare_backtests(backtests, best, graph, targets, settings, COMPARED,
                                     horizon)
        for label, per_target in compared.items():
            out["models"][label].setdefault("vs_best_baseline", {})[str(horizon)] = per_target
    # The GNN against *every* baseline (not only the best), all at horizon 1: issue 11's
    # target is a paired CI of the deviance difference that excludes 0 for each.
    if "gnn" in backtests:
        versus_each = {}
        for baseline in baselines:
            pair = {b: backtests[b] for b in (baseline, "gnn")}
            compared = compare_backtests(pair, baseline, graph, ["all"], settings, COMPARED, 1)
            entry = compared["gnn"]["all"]
            versus_each[baseline] = {
                m: {"diff": entry[m]["diff"], "ci": entry[m]["ci"],
                    "relative": entry[m].get("relative"),
                    "relative_ci": entry[m].get("relative_ci")}
                for m in ("poisson_deviance", "hit_rate@5%") if m in entry}
        deviance_cis = [v["poisson_deviance"]["ci"] for v in versus_each.values()]
        out["gnn_vs_every_baseline"] = {
            "all_h1": versus_each,
            "beats_every_baseline_on_deviance": bool(deviance_cis) and all(
                ci[1] is not None and ci[1] < 0 for ci in deviance_cis)}
    for label, (rows, summary) in backtests.items():
        out["models"][label]["vs_ceilings"] = ceiling_comparisons(rows, summary, panel, graph,
                                                                  targets, settings)
    out["issue_targets"] = {label: issue_targets(out["models"][label], graph)
                            for label in backtests}
    worst = max(backtests, key=lambda m: backtests[m][1]["targets"]["all"]["1"][
        "poisson_deviance"])
    out["worst_model_all_h1_deviance"] = worst
    out["gnn_not_worst"] = None if "gnn" not in backtests else worst != "gnn"
    return out


def issue_targets(model: dict[str, Any], graph: AreaGraph) -> dict[str, Any]:
    """Issue 10's accuracy targets (target "all", horizon 1) for one model, with CIs."""
    smoother = model["vs_ceilings"][SMOOTHER]["all"]["poisson_deviance"]
    hindsight = model["vs_ceilings"][HINDSIGHT]["all"]["hit_rate@5%"]
    sizes = graph.areas["group"].astype(str).value_counts()
    groups = {g: v for g, v in model["coverage_by_group"].get("all", {}).items()
              if sizes.get(g, 0) >= 20}
    off = {g: v["coverage_80"] - 0.80 for g, v in groups.items()}
    ratio = 1 + hindsight["relative"]
    ratio_ci = [1 + x if x is not None else None for x in hindsight["relative_ci"]]
    return {
        "deviance_below_smoother": {
            "model": smoother["challenger"], "smoother": smoother["reference"],
            "diff": smoother["diff"], "ci": smoother["ci"],
            "met": bool(smoother["ci"][1] is not None and smoother["ci"][1] < 0),
            "point_met": bool(smoother["diff"] < 0)},
        "hit5_vs_hindsight": {
            "model": hindsight["challenger"], "hindsight": hindsight["reference"],
            "ratio": ratio, "ratio_ci": ratio_ci, "target": 0.985,
            "met": bool(ratio >= 0.985), "short_by": max(0.0, 0.985 - ratio)},
        "coverage_80_by_group": {
            "groups": {g: round(v["coverage_80"], 4) for g, v in groups.items()},
            "uncalibrated": {g: round(v["coverage_80_uncalibrated"], 4)
                             for g, v in groups.items()},
            "worst_group": max(off, key=lambda g: abs(off[g])) if off else None,
            "worst_off_by": max((abs(v) for v in off.values()), default=None),
            "met": bool(off) and all(abs(v) <= 0.03 for v in off.values())},
    }


def _fmt(value: Any, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and not np.isfinite(value)) \
        else f"{value:.{digits}f}"


def _ci(entry: dict[str, Any] | None, relative: bool = True) -> str:
    if not entry:
        return ""
    value = entry["relative"] if relative else entry["diff"]
    low, high = entry["relative_ci"] if relative else entry["ci"]
    if value is None or low is None:
        return ""
    scale, unit = (100, " %") if relative else (1, "")
    return f"{value * scale:+.2f}{unit} [{low * scale:+.2f}, {high * scale:+.2f}]"


def markdown(out: dict[str, Any], target: str, horizon: str = "1") -> str:
    """The headline table of one target at one horizon (models, then the ceilings)."""
    head = ["model", "deviance", "Δ deviance vs best baseline (95 % CI)", "log score", "RPS",
            "MAE", "hit@1%", "hit@5%", "hit@10%", "PAI@5%", "Δ PAI@5% (95 % CI)", "PEI*@5%",
            "cov80 raw→cal", "cov95 raw→cal", "gap closed: deviance→smoother",
            "hit@5%→hindsight"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, model in out["models"].items():
        m = model["targets"][target][horizon]
        versus = model.get("vs_best_baseline", {}).get(horizon, {}).get(target, {})
        gap = model["gap_closed"].get(target, {}).get(horizon, {})
        lines.append("| " + " | ".join([
            f"**{label}**" if label == out["best_baseline"] else label,
            _fmt(m["poisson_deviance"], 4), _ci(versus.get("poisson_deviance")),
            _fmt(m["log_score"], 4), _fmt(m["rps"], 4), _fmt(m["mae"]),
            _fmt(m["hit_rate@1%"]), _fmt(m["hit_rate@5%"]), _fmt(m["hit_rate@10%"]),
            _fmt(m["pai@5%"]), _ci(versus.get("pai@5%")), _fmt(m["pei_star@5%"]),
            f"{_fmt(m['coverage_80_uncalibrated'])}→{_fmt(m['coverage_80'])}",
            f"{_fmt(m['coverage_95_uncalibrated'])}→{_fmt(m['coverage_95'])}",
            _fmt(gap.get(SMOOTHER, {}).get("poisson_deviance"), 2),
            _fmt(gap.get(HINDSIGHT, {}).get("hit_rate@5%"), 2)]) + " |")
    for name in CEILINGS:
        m = out["ceilings"].get(name, {}).get(target, {}).get(horizon, {})
        if not m:
            continue
        lines.append("| " + " | ".join([
            CEILING_LABELS[name], _fmt(m.get("poisson_deviance"), 4), "",
            _fmt(m.get("log_score"), 4), _fmt(m.get("rps"), 4), _fmt(m.get("mae")),
            _fmt(m.get("hit_rate@1%")), _fmt(m.get("hit_rate@5%")),
            _fmt(m.get("hit_rate@10%")), _fmt(m.get("pai@5%")), "",
            _fmt(m.get("pei_star@5%")), "", "", "", ""]) + " |")
    return "\n".join(lines)


def horizon_table(out: dict[str, Any], target: str) -> str:
    """Deviance and hit@5% of every model at each horizon (the further tables)."""
    horizons = out["horizons"]
    head = ["model", *(f"deviance h{h}" for h in horizons), *(f"hit@5% h{h}" for h in horizons)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, model in out["models"].items():
        t = model["targets"][target]
        lines.append("| " + " | ".join([label, *(_fmt(t[h]["poisson_deviance"], 4)
                                                 for h in horizons),
                                        *(_fmt(t[h]["hit_rate@5%"]) for h in horizons)]) + " |")
    return "\n".join(lines)


def print_tables(out: dict[str, Any], title: str) -> None:
    for target in out["targets"]:
        print(f"\n{title}, target {target!r}, horizon 1:\n")
        print(markdown(out, target))
        print(f"\n{title}, target {target!r}, every horizon:\n")
        print(horizon_table(out, target))
    if "gnn_vs_every_baseline" in out:
        print("\nGNN vs every baseline (all, h1; deviance diff [95 % CI]):")
        for baseline, entry in out["gnn_vs_every_baseline"]["all_h1"].items():
            d = entry["poisson_deviance"]
            print(f"  vs {baseline}: {d['diff']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]")
    print("\nissue 10 targets (all, h1):")
    print(json.dumps(out["issue_targets"], indent=1, default=str))


def write_forecasts(results: dict[str, tuple[BacktestResult, float]], unit: str) -> list[str]:
    """The tidy backtest forecasts of every model (see the module docstring)."""
    from crimecast.io import atomic_path

    folder = FORECASTS / unit
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    columns = [*FORECAST_COLUMNS, "origin", "dispersion", "actual"]
    for label, (result, _) in results.items():
        path = folder / f"{label}.parquet"
        with atomic_path(path) as tmp:
            result.rows[columns].to_parquet(tmp, index=False)
        written.append(str(path.relative_to(REPO)))
    return written


# ---------------------------------------------------------------------------- parts
def load_home(home: Path) -> tuple[Panel, AreaGraph, EvaluationSettings, ModelsSettings]:
    artifacts = home / "artifacts"
    panel = Panel.load(artifacts / "panel.parquet")
    graph = AreaGraph.load(artifacts / "graph.npz", artifacts / "areas.parquet")
    settings, note = EvaluationSettings.load(home / "configs" / "evaluation.yaml").for_history(
        len(panel.weeks))
    if note:
        print(note, flush=True)
    return panel, graph, settings, ModelsSettings.load(home / "configs" / "models.yaml")


def part_city(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for unit, home in args.homes.items():
        panel, graph, settings, config = load_home(home)
        print(f"{unit} ({home}): {graph.num_nodes} areas x {len(panel.weeks)} weeks "
              f"({panel.weeks[0].date()} .. {panel.last_week.date()})", flush=True)
        results = backtest_all(panel, graph, settings, model_specs(config, args.models))
        result = tables(results, panel, graph, settings)
        unit_tag = str(graph.areas["unit"].iloc[0]) if "unit" in graph.areas else unit
        # "areas" is the number of cells at an H3 unit
        result.update({"home": str(home), "unit": unit_tag, "areas": graph.num_nodes,
                       "weeks": len(panel.weeks),
                       "last_week": str(panel.last_week.date()),
                       "backtest": settings.model_dump(mode="json"),
                       "forecasts": write_forecasts(results, unit)})
        if "gnn" in args.models:
            model = get_model("gnn", **config.params_for("gnn"))
            started = time.perf_counter()
            model.fit(panel, graph)
            result["gnn_train_seconds_full_panel"] = round(time.perf_counter() - started, 1)
            result["gnn_epochs_run"] = len(model.history_)
        print_tables(result, unit)
        out[unit] = result
    return out


def part_synthetic(args: argparse.Namespace) -> dict[str, Any]:
    config = ModelsSettings.load(REPO / "configs" / "models.yaml")
    settings = EvaluationSettings.load(REPO / "configs" / "evaluation.yaml")
    print(f"synthetic city: {args.areas} areas x {args.weeks} weeks", flush=True)
    panel, graph, city = synthetic_city(args.areas, args.weeks, args.seed)
    results = backtest_all(panel, graph, settings, model_specs(config, args.models))
    out = tables(results, panel, graph, settings)
    oracles = {}
    for oracle in (oracle_backtest(city.truth_frame(), panel, graph, settings),
                   fair_oracle_backtest(city, panel, graph, settings)):
        oracles[oracle.model] = {"targets": oracle.summary["targets"],
                                 "overall_deviance": oracle.summary["overall"][
                                     "poisson_deviance"]}
    out["oracles"] = oracles
    print_tables(out, "synthetic")
    for name, oracle in oracles.items():
        print(f"  {name}: all h1 deviance "
              f"{oracle['targets']['all']['1']['poisson_deviance']:.4f}")
    return {"areas": args.areas, "weeks": args.weeks, "seed": args.seed, **out}


def part_synthetic60(args: argparse.Namespace) -> dict[str, Any]:
    """A 60-week city, default configs: every model trains, the GNN is not the worst."""
    config = ModelsSettings.load(REPO / "configs" / "models.yaml")
    settings = EvaluationSettings.load(REPO / "configs" / "evaluation.yaml")
    out: dict[str, Any] = {"cities": {}}
    for seed in args.short_seeds:
        print(f"synthetic city: {args.short_areas} areas x 60 weeks, seed {seed}", flush=True)
        panel, graph, _ = synthetic_city(args.short_areas, 60, seed)
        results = backtest_all(panel, graph, settings, model_specs(config, args.models))
        city = tables(results, panel, graph, settings)
        print(markdown(city, "all"))
        out["cities"][str(seed)] = city
    out["gnn_not_worst_every_city"] = all(c["gnn_not_worst"] is not False
                                          for c in out["cities"].values())
    return {"areas": args.short_areas, "weeks": 60, **out}


def part_noise(args: argparse.Namespace) -> dict[str, Any]:
    """The same model retrained with another seed, compared with itself on the gate's
    target: the CIs the gate's margins have to exceed for a re-run to be a tie."""
    from crimecast.lifecycle.gate import PromotionSettings, gate, gate_evidence, group_sizes

    unit, home = next(iter(args.homes.items()))
    panel, graph, settings, config = load_home(home)
    promotion = PromotionSettings.load(home / "configs" / "promotion.yaml")
    out: dict[str, Any] = {"unit": unit, "policy": promotion.model_dump(mode="json"),
                           "pairs": {}}
    for name in ("gnn", "lightgbm_poisson"):
        specs = {f"{name}[seed={s}]": {"model": name, **config.params_for(name), "seed": s}
                 for s in (0, 1)}
        results = backtest_all(panel, graph, settings, specs)
        (first, _), (second, _) = results.values()
        verdict = gate(gate_evidence(second.rows, first.rows, graph, promotion, settings,
                                     challenger="seed 1", reference="seed 0"),
                       promotion, group_sizes(graph))
        out["pairs"][name] = {"outcome": verdict.outcome, "promote": verdict.promote,
                              "checks": verdict.checks[:2]}
        for check in verdict.checks[:2]:
            print(f"  {name}: {check['plain']}", flush=True)
    return out


def part_convs(args: argparse.Namespace) -> dict[str, Any]:
    config = ModelsSettings.load(REPO / "configs" / "models.yaml")
    settings = EvaluationSettings.load(REPO / "configs" / "evaluation.yaml")
    print("GNN graph convolutions on the synthetic city", flush=True)
    panel, graph, _city = synthetic_city(args.areas, args.weeks, args.seed)
    specs = {f"gnn[{conv}]": {"model": "gnn", **config.params_for("gnn"), "conv": conv}
             for conv in ("gcn", "graph", "gat")}
    results = backtest_all(panel, graph, settings, specs)
    rows = {label: {"all_h1_deviance": r.summary["targets"]["all"]["1"]["poisson_deviance"],
                    "backtest_seconds": round(s, 1)} for label, (r, s) in results.items()}
    return {"models": rows, "winner": min(rows, key=lambda n: rows[n]["all_h1_deviance"])}


def part_memory(args: argparse.Namespace) -> dict[str, Any]:
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


def _homes(values: list[str]) -> dict[str, Path]:
    homes = {}
    for value in values:
        unit, sep, home = value.partition("=")
        if not sep or not unit or not home:
            raise SystemExit(f"--homes takes UNIT=PROJECT_HOME pairs, got {value!r}")
        homes[unit] = Path(home).resolve()
    return homes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = ["city", "synthetic", "synthetic60", "noise", "convs", "memory"]
    parser.add_argument("--parts", nargs="+", default=parts, choices=parts)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--homes", nargs="+", default=[f"tract={REPO}"],
                        help="UNIT=PROJECT_HOME pairs whose artifacts/ hold a pipeline's "
                             "outputs (the unit labels the results and the forecasts folder)")
    parser.add_argument("--areas", type=int, default=400)
    parser.add_argument("--weeks", type=int, default=260)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--short-areas", type=int, default=200)
    parser.add_argument("--short-seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--memory-areas", type=int, default=100_000)
    parser.add_argument("--memory-weeks", type=int, default=60)
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(Path(args.memory_child), ModelsSettings.load(REPO / "configs" /
                                                                  "models.yaml"),
                     args.memory_weeks)
        return
    args.homes = _homes(args.homes)
    output = Path(args.output)
    runners = {"city": part_city, "synthetic": part_synthetic, "synthetic60": part_synthetic60,
               "noise": part_noise, "convs": part_convs, "memory": part_memory}
    from crimecast.io import write_json

    for part in args.parts:
        result = runners[part](args)
        # Re-read before writing: parts run in parallel processes keep each other's results.
        payload: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
        payload["machine"] = machine()
        if part == "city":
            payload.setdefault("city", {}).update(
                {unit: {**r, "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
                 for unit, r in result.items()})
        else:
            result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            payload[part] = result
        write_json(output, payload)
        print(f"wrote {output} ({part})", flush=True)


if __name__ == "__main__":
    main()
