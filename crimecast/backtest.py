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
``summary`` dict from :func:`crimecast.metrics.score_forecasts` plus per-horizon and
per-category numbers. :func:`oracle_backtest` scores the true intensity of a synthetic
city on the same origins, as the pseudo-model ``oracle``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress

from crimecast.contracts import AreaGraph, Panel
from crimecast.metrics import point_metrics, score_forecasts
from crimecast.models import BacktestSettings, ModelsSettings
from crimecast.models.base import Forecaster, PanelArrays, forecast_frame, panel_arrays


@dataclass
class BacktestResult:
    """Per-row scores (``rows``) and the metric ``summary`` of one model's backtest."""

    model: str
    rows: pd.DataFrame
    summary: dict[str, Any]


def origin_indices(num_weeks: int, settings: BacktestSettings) -> list[int]:
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
              settings: BacktestSettings | None = None) -> dict[str, Any]:
    """Metrics of scored backtest rows: overall (point, interval, hotspot), by group,
    disparity ratios, plus point metrics by horizon and by category."""
    settings = settings or BacktestSettings()
    summary = score_forecasts(rows, graph.areas, settings.area_shares, settings.top_k,
                              settings.flag_share)
    summary["by_horizon"] = {str(h): point_metrics(part)
                             for h, part in rows.groupby("horizon", sort=True)}
    summary["by_category"] = {str(c): point_metrics(part)
                              for c, part in rows.groupby("category", sort=True)}
    summary["origins"] = int(rows["origin"].nunique())
    return summary


def run_backtest(model: Forecaster, panel: Panel, graph: AreaGraph,
                 settings: BacktestSettings | None = None, progress: bool = True,
                 on_origin: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Walk-forward evaluation of ``model`` (fitted here; pass an unfitted model).

    ``settings`` defaults to ``configs/models.yaml`` → ``backtest``. Returns the scored
    rows and the summary (see the module docstring). ``on_origin(i, n)`` is called after
    each origin (for progress reporting by callers).
    """
    settings = settings or ModelsSettings.load().backtest
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
                    settings: BacktestSettings | None = None) -> BacktestResult:
    """Score the true intensity (``truth.parquet``) on the same origins as a model.

    Uses ``recorded_intensity`` when present (the expected *recorded* count, what the
    actuals measure), else ``intensity``. Intervals are Poisson quantiles. The oracle
    knows the intensity of every target week given all weeks before it, so for h > 1 it
    uses information no forecaster has: a lower bound, not a reachable target.
    """
    settings = settings or ModelsSettings.load().backtest
    column = "recorded_intensity" if "recorded_intensity" in truth.columns else "intensity"
    if column not in truth.columns:
        raise ValueError(f"truth: needs an 'intensity' column; has {list(truth.columns)}")
    data = panel_arrays(panel, graph)
    intensity = Panel(truth.rename(columns={column: "count"}).assign(outage=False)[
        ["area_id", "week", "category", "count", "outage"]])
    truth_array, truth_weeks, truth_cats = intensity.to_array(graph.area_ids)
    truth_array = truth_array[:, truth_weeks.get_indexer(data.weeks)]
    truth_array = truth_array[:, :, [truth_cats.index(c) for c in data.categories]]
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


def gate_view(summary: dict[str, Any], pai_area_share: float = 0.05) -> dict[str, Any]:
    """The numbers the promotion gate compares, from a backtest summary.

    Returns ``{"poisson_deviance": float, "pai": float, "disparity": {"<kind>/<group>":
    ratio}}`` with kinds ``flag_rate_per_incident`` and ``flag_rate_per_resident``.
    Raises ``KeyError`` naming the share when the backtest did not compute that PAI.
    """
    key = f"pai@{pai_area_share * 100:g}%"
    overall = summary["overall"]
    if key not in overall:
        have = sorted(k for k in overall if k.startswith("pai@"))
        raise KeyError(f"backtest summary has no {key!r} (has {have}); add {pai_area_share} "
                       f"to models.yaml backtest.area_shares")
    disparity = {}
    for group, row in summary.get("disparity", {}).items():
        for kind in ("flag_rate_per_incident", "flag_rate_per_resident"):
            disparity[f"{kind}/{group}"] = float(row[f"{kind}_ratio"])
    return {"poisson_deviance": float(overall["poisson_deviance"]), "pai": float(overall[key]),
            "disparity": disparity}


def compare_models(results: Sequence[BacktestResult],
                   metrics: Sequence[str] = ("poisson_deviance", "mae", "rmse", "coverage_80",
                                             "coverage_95", "pai@5%", "pei_star@5%",
                                             "hit_rate@5%")) -> pd.DataFrame:
    """One row per model with the chosen overall metrics (for tables and reports)."""
    return pd.DataFrame([{"model": r.model, **{m: r.summary["overall"].get(m, np.nan)
                                               for m in metrics}} for r in results])
