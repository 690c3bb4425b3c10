"""Rolling-origin (walk-forward) evaluation of a forecaster.

For each origin ``o`` among the last ``backtest_weeks`` weeks (every ``step`` weeks), the
model sees the panel up to and including ``o`` and forecasts ``o + h`` for each horizon
``h``; targets beyond the panel and outage weeks are skipped. The model is fitted on the
data up to the first origin and then, by default (``refit_every = 0``), only conditioned
on the newer weeks at each later origin — ``predict`` conditions on the panel it is given,
so this is a fair walk-forward without refitting cost. ``refit_every = k`` refits every
``k`` origins instead.

:func:`run_backtest` returns a :class:`BacktestResult`: ``rows`` (one per origin × horizon ×
category × area: forecast columns, ``actual``, ``origin``, ``group``, ``model``) and a
``summary`` dict from :func:`crimecast.forecast.metrics.score_forecasts` plus per-horizon and
per-category numbers. :func:`oracle_backtest` scores the true intensity of a synthetic
city on the same origins, as the pseudo-model ``oracle``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress

from crimecast.contracts import AreaGraph, Panel
from crimecast.data.panel import PanelArrays, panel_arrays
from crimecast.forecast.metrics import point_metrics, score_forecasts
from crimecast.forecast.models.base import Forecaster, forecast_frame
from crimecast.forecast.settings import EvaluationSettings
from crimecast.io import atomic_path, write_json
from crimecast.paths import resolve


@dataclass
class BacktestResult:
    """Per-row scores (``rows``) and the metric ``summary`` of one model's backtest."""

    model: str
    rows: pd.DataFrame
    summary: dict[str, Any]


def origin_indices(num_weeks: int, settings: EvaluationSettings) -> list[int]:
    """Week indices of the forecast origins: the last ``backtest_weeks`` weeks before the
    final one, every ``step`` weeks (the final week has no target left to score)."""
    first = max(0, num_weeks - 1 - settings.backtest_weeks)
    return list(range(first, num_weeks - 1, settings.step))


def score_rows(forecast: pd.DataFrame, data: PanelArrays, graph: AreaGraph,
               origin: int) -> pd.DataFrame:
    """Attach the actual count to each forecast row; drop targets past the panel or in
    outage weeks."""
    target = origin + forecast["horizon"].to_numpy()
    num_weeks = data.counts.shape[1]
    keep = target < num_weeks
    keep[keep] &= ~data.outage[target[keep]]
    forecast = forecast.loc[keep].reset_index(drop=True)
    target = target[keep]
    area_pos = pd.Index(graph.area_ids).get_indexer(forecast["area_id"])
    cat_pos = pd.Index(data.categories).get_indexer(forecast["category"])
    forecast["actual"] = data.counts[area_pos, target, cat_pos].astype(np.float64)
    forecast.insert(0, "origin", data.weeks[origin])
    return forecast


def summarise(rows: pd.DataFrame, graph: AreaGraph,
              settings: EvaluationSettings | None = None) -> dict[str, Any]:
    """Metrics of scored backtest rows: overall (point, interval, hotspot), by group,
    disparity ratios, plus point metrics by horizon and by category."""
    settings = settings or EvaluationSettings()
    summary = score_forecasts(rows, graph.areas, settings.area_shares, settings.top_k,
                              settings.flag_share)
    summary["by_horizon"] = {str(h): point_metrics(part)
                             for h, part in rows.groupby("horizon", sort=True)}
    summary["by_category"] = {str(c): point_metrics(part)
                              for c, part in rows.groupby("category", sort=True)}
    summary["origins"] = int(rows["origin"].nunique())
    return summary


def run_backtest(model: Forecaster, panel: Panel, graph: AreaGraph,
                 settings: EvaluationSettings | None = None, progress: bool = True,
                 on_origin: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Walk-forward evaluation of ``model`` (fitted here; pass an unfitted model).

    ``settings`` defaults to ``configs/models.yaml`` → ``backtest``. Returns the scored
    rows and the summary (see the module docstring). ``on_origin(i, n)`` is called after
    each origin (for progress reporting by callers).
    """
    settings = settings or EvaluationSettings.load()
    data = panel_arrays(panel, graph)
    origins = origin_indices(data.counts.shape[1], settings)
    if not origins or origins[0] < 1:
        raise ValueError(f"panel has {data.counts.shape[1]} weeks: too few for a backtest "
                         f"over {settings.backtest_weeks} weeks (need at least "
                         f"{settings.backtest_weeks + 2})")
    horizons = tuple(settings.horizons)
    parts = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"backtest {model.name}", total=len(origins))
        for i, origin in enumerate(origins):
            if i == 0 or (settings.refit_every and i % settings.refit_every == 0):
                model.fit_arrays(data.until(origin), graph)
            forecast = model.predict_arrays(data.until(origin), graph, horizons)
            parts.append(score_rows(forecast, data, graph, origin))
            bar.advance(task)
            if on_origin is not None:
                on_origin(i, len(origins))
    rows = label_rows(pd.concat(parts, ignore_index=True), graph, model.name)
    return BacktestResult(model.name, rows, summarise(rows, graph, settings))


def oracle_backtest(truth: pd.DataFrame, panel: Panel, graph: AreaGraph,
                    settings: EvaluationSettings | None = None) -> BacktestResult:
    """Score the true intensity (``truth.parquet``) on the same origins as a model.

    Uses ``recorded_intensity`` when present (the expected *recorded* count, what the
    actuals measure), else ``intensity``. Intervals are Poisson quantiles. The oracle
    knows the intensity of every target week given all weeks before it, so for h > 1 it
    uses information no forecaster has: a lower bound, not a reachable target.
    """
    settings = settings or EvaluationSettings.load()
    column = "recorded_intensity" if "recorded_intensity" in truth.columns else "intensity"
    if column not in truth.columns:
        raise ValueError(f"truth: needs an 'intensity' column; has {list(truth.columns)}")
    data = panel_arrays(panel, graph)
    intensity = Panel(truth.rename(columns={column: "count"}).assign(outage=False)[
        ["area_id", "week", "category", "count", "outage"]])
    truth = panel_arrays(intensity, graph)
    truth_array = truth.counts[:, truth.weeks.get_indexer(data.weeks)]
    truth_array = truth_array[:, :, [truth.categories.index(c) for c in data.categories]]
    horizons = tuple(settings.horizons)
    parts = []
    for origin in origin_indices(data.counts.shape[1], settings):
        targets = [min(origin + h, data.counts.shape[1] - 1) for h in horizons]
        forecast = forecast_frame(truth_array[:, targets, :], graph.area_ids, data.categories,
                                  data.weeks[origin], horizons, 0.0)
        parts.append(score_rows(forecast, data, graph, origin))
    rows = label_rows(pd.concat(parts, ignore_index=True), graph, "oracle")
    return BacktestResult("oracle", rows, summarise(rows, graph, settings))


def label_rows(rows: pd.DataFrame, graph: AreaGraph, name: str) -> pd.DataFrame:
    """Add each row's demographic ``group`` and the ``model`` name."""
    rows["group"] = graph.areas["group"].reindex(rows["area_id"]).to_numpy()
    rows["model"] = name
    return rows


def backtest_model(forecaster: Forecaster, panel: Panel, graph: AreaGraph) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`run_backtest` of an unfitted forecaster with the settings of
    ``configs/evaluation.yaml``, memoised. Returns (per-row scores, summary).

    Results are memoised under ``state/backtests/<key>/`` where the key hashes everything
    the result depends on: the model class and hyperparameters, the panel and graph
    contents, the backtest settings and the source of the model/backtest/metrics code.
    train, evaluate and promote backtest the same specifications on the same windows, so
    the chain computes each one once.
    """
    # The same (possibly adapted) windows as every other stage for this panel's history.
    settings, _ = EvaluationSettings.load().for_history(len(panel.weeks))
    cache = resolve("state/backtests") / _backtest_key(forecaster, panel, graph, settings)
    if (cache / "summary.json").exists():
        return pd.read_parquet(cache / "rows.parquet"), json.loads((cache / "summary.json").read_text())
    result = run_backtest(forecaster, panel, graph, settings)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache / "rows.parquet") as tmp:
        result.rows.to_parquet(tmp, index=False)
    write_json(cache / "summary.json", result.summary)  # written last: marks the entry complete
    return result.rows, result.summary


def _backtest_key(forecaster: Forecaster, panel: Panel, graph: AreaGraph,
                  settings: EvaluationSettings) -> str:
    import crimecast.data.graph
    import crimecast.data.panel
    import crimecast.forecast.features
    import crimecast.forecast.metrics
    import crimecast.forecast.models.base

    digest = hashlib.sha256()
    cls = type(forecaster)
    spec = {"class": f"{cls.__module__}:{cls.__qualname__}", "params": forecaster.get_params(),
            "backtest": settings.model_dump(mode="json")}
    digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
    for module in (sys.modules[__name__], crimecast.data.panel, crimecast.data.graph,
                   crimecast.forecast.features, crimecast.forecast.metrics,
                   crimecast.forecast.models.base, inspect.getmodule(cls)):
        try:
            digest.update(inspect.getsource(module).encode())
        except (OSError, TypeError):  # no source (e.g. a class built at runtime)
            digest.update(repr(module).encode())
    digest.update(pd.util.hash_pandas_object(panel.counts, index=False).to_numpy().tobytes())
    digest.update(pd.util.hash_pandas_object(graph.areas.reset_index(), index=False)
                  .to_numpy().tobytes())
    digest.update(graph.edge_index.tobytes() + graph.edge_weight.tobytes())
    return digest.hexdigest()[:24]
