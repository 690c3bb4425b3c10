"""Rolling-origin (walk-forward) evaluation of a forecaster, with its ceilings.

For each origin ``o`` among the last ``backtest_weeks`` weeks (every ``step`` weeks), the
model sees the panel up to and including ``o`` and forecasts ``o + h`` for each horizon
``h``; targets beyond the panel and outage weeks are skipped. The model is fitted at the
first *test* origin and then only conditioned on the newer weeks at each later origin
(``predict`` conditions on the panel it is given: a fair walk-forward without refitting
cost); ``refit_every = k`` refits every ``k`` test origins instead. Before the test
origins come the ``validation_weeks`` origins of the validation window
(``configs/evaluation.yaml``), forecast the same way by a fit at the first validation
origin, so that fit has seen neither the validation weeks nor the test weeks.

The validation weeks' forecasts (targets up to the first test origin, never a test week)
calibrate the intervals (:mod:`crimecast.forecast.calibration`); the test rows carry the
calibrated bounds, and their uncalibrated coverage is reported next to it.

:func:`run_backtest` returns a :class:`BacktestResult`: ``rows`` (one per test origin ×
horizon × category × area: forecast columns, ``dispersion`` (the NB dispersion of the
forecast), ``actual``, ``origin``, ``group``, ``model``) and a ``summary`` dict:

- ``overall``, ``by_group``, ``disparity``: every row pooled
  (:func:`crimecast.forecast.metrics.score_forecasts`), leaving out categories without a
  single incident in the rows (``excluded_categories``);
- ``by_horizon``, ``by_category``: point metrics;
- ``targets``: ``{target: {horizon: metrics}}`` for the target ``"all"`` (the sum over
  categories) and each category: deviance, log score, RPS, MAE, RMSE, coverage (and
  ``coverage_*_uncalibrated``), PIT histogram and calibration error, hit rate, PAI and
  PEI* at each area share, disparity ratios. Horizon 1 is the headline;
  ``headline_by_group`` has horizon 1 by group;
- ``calibration``: what the validation weeks asked for (before/after coverage per cell);
- ``ceilings``: the same target metrics of the ceilings (:func:`ceiling_rows`) on the
  same rows, and ``gap_closed``: the share of the gap from the reference mean to each
  ceiling that the model closes.

:func:`oracle_backtest` scores the true intensity of a synthetic city on the same origins,
as the pseudo-model ``oracle``.
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
from crimecast.forecast import distributions
from crimecast.forecast.calibration import apply_calibration, fit_calibration
from crimecast.forecast.evidence import population_by_group
from crimecast.forecast.metrics import (
    ALL,
    LOWER_IS_BETTER,
    PIT_BINS,
    active_categories,
    metric_values,
    point_metrics,
    score_forecasts,
    target_frame,
    unit_deviance,
    unit_log_score,
    unit_rps,
    weekly_components,
)
from crimecast.forecast.models.base import Forecaster, fit_dispersion, forecast_frame, recent_mean
from crimecast.forecast.settings import EvaluationSettings
from crimecast.io import atomic_path, write_json
from crimecast.paths import resolve

#: The pseudo-forecasts every backtest is scored against: two ceilings that see the
#: target week's neighbourhood in time (or the week itself), and the reference that
#: "gap closed" starts from.
SMOOTHER, HINDSIGHT, REFERENCE = "smoother", "hindsight", "reference_mean"
#: Metrics reported for the perfect-hindsight ceiling (the others are meaningless for it).
HOTSPOT_PREFIXES: tuple[str, ...] = ("hit_rate@", "pai@", "pei_star@")
#: Which ceiling each metric's gap is measured to: the count-only smoother for scores,
#: both for hotspot metrics.
GAP_METRICS: dict[str, tuple[str, ...]] = {
    SMOOTHER: ("poisson_deviance", "log_score", "rps", "mae", "hit_rate@", "pai@"),
    HINDSIGHT: ("hit_rate@", "pai@"),
}


@dataclass
class BacktestResult:
    """Per-row scores (``rows``) and the metric ``summary`` of one model's backtest;
    ``validation_rows``: the validation weeks' forecasts that calibrated the intervals
    (uncalibrated; not cached by :func:`backtest_model`)."""

    model: str
    rows: pd.DataFrame
    summary: dict[str, Any]
    validation_rows: pd.DataFrame | None = None


def origin_indices(num_weeks: int, settings: EvaluationSettings) -> list[int]:
    """Week indices of the forecast origins: the last ``backtest_weeks`` weeks before the
    final one, every ``step`` weeks (the final week has no target left to score)."""
    first = max(0, num_weeks - 1 - settings.backtest_weeks)
    return list(range(first, num_weeks - 1, settings.step))


def validation_origin_indices(num_weeks: int, settings: EvaluationSettings) -> list[int]:
    """The ``validation_weeks`` origins right before the first test origin (none when the
    panel is too short for them; the first keeps at least two weeks of history)."""
    test = origin_indices(num_weeks, settings)
    if not test:
        return []
    return list(range(max(1, test[0] - settings.validation_weeks), test[0]))


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


def _nominal_coverage(frame: pd.DataFrame) -> dict[str, float]:
    """Coverage of the uncalibrated (nominal 80 / 95 %) intervals of ``frame``."""
    out = {}
    y, mu = frame["actual"].to_numpy(float), frame["mean"].to_numpy(float)
    alpha = frame["dispersion"].to_numpy(float)
    bounds = distributions.intervals(mu, alpha, {80: 0.80, 95: 0.95})
    for level in (80, 95):
        inside = (y >= bounds[f"lower_{level}"]) & (y <= bounds[f"upper_{level}"])
        out[f"coverage_{level}_uncalibrated"] = float(np.mean(inside))
    return out


def _target_metrics(frame: pd.DataFrame, graph: AreaGraph, settings: EvaluationSettings,
                    population: pd.Series, intervals: bool = True) -> dict[str, Any]:
    """Every metric of one target at one horizon (``frame`` already calibrated)."""
    components = weekly_components(frame, graph.areas, settings.area_shares, settings.top_k,
                                   settings.flag_share, seed=settings.bootstrap_seed,
                                   intervals=intervals)
    total = components.sum()
    values = {k: float(v) for k, v in metric_values(total, population).iloc[0].items()}
    if not intervals:
        return {k: v for k, v in values.items() if k.startswith(HOTSPOT_PREFIXES)}
    values.update(_nominal_coverage(frame))
    values["pit_histogram"] = [float(total[f"pit_{b}"] / total["n"]) for b in range(PIT_BINS)]
    values["n"] = float(total["n"])
    return values


def _by_group(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Horizon-1 numbers of one target by group: cells, areas, coverage before and after
    calibration, deviance, MAE."""
    out = {}
    for group, part in frame.groupby("group", sort=True, observed=True):
        y, mu = part["actual"].to_numpy(float), part["mean"].to_numpy(float)
        row = {"n": float(len(part)), "areas": float(part["area_id"].nunique()),
               "poisson_deviance": float(np.mean(unit_deviance(y, mu))),
               "mae": float(np.mean(np.abs(y - mu)))}
        for level in (80, 95):
            row[f"coverage_{level}"] = float(np.mean(
                (y >= part[f"lower_{level}"].to_numpy(float))
                & (y <= part[f"upper_{level}"].to_numpy(float))))
        row.update(_nominal_coverage(part))
        out[str(group)] = row
    return out


def summarise(rows: pd.DataFrame, graph: AreaGraph,
              settings: EvaluationSettings | None = None,
              calibration: dict[str, Any] | None = None,
              ceilings: dict[str, pd.DataFrame] | None = None) -> dict[str, Any]:
    """Metrics of scored backtest rows (see the module docstring). ``calibration`` is
    recorded and applied to the target "all" (category rows carry their calibrated bounds
    already); ``ceilings`` (:func:`ceiling_rows`) adds the ceilings and gap closed."""
    settings = settings or EvaluationSettings()
    categories = active_categories(rows)
    excluded = sorted(set(rows["category"].astype(str)) - set(categories))
    active = rows[rows["category"].isin(categories)] if excluded else rows
    summary = score_forecasts(active, graph.areas, settings.area_shares, settings.top_k,
                              settings.flag_share)
    overall = summary["overall"]
    if "dispersion" in active.columns:
        y, mu = active["actual"].to_numpy(float), active["mean"].to_numpy(float)
        alpha = active["dispersion"].to_numpy(float)
        overall["log_score"] = float(np.mean(unit_log_score(y, mu, alpha)))
        overall["rps"] = float(np.mean(unit_rps(y, mu, alpha)))
        overall.update(_nominal_coverage(active))
    summary["by_horizon"] = {str(h): point_metrics(part)
                             for h, part in active.groupby("horizon", sort=True)}
    summary["by_category"] = {str(c): point_metrics(part)
                              for c, part in rows.groupby("category", sort=True, observed=True)}
    summary["origins"] = int(rows["origin"].nunique())
    summary["excluded_categories"] = excluded
    if "dispersion" not in rows.columns:
        return summary
    population = population_by_group(graph.areas)
    targets: dict[str, Any] = {}
    by_group: dict[str, Any] = {}
    frames: dict[tuple[str, int], pd.DataFrame] = {}
    for target in (ALL, *categories):
        targets[target] = {}
        for horizon in sorted(active["horizon"].unique()):
            frame = target_frame(active[active["horizon"] == horizon], target)
            if target == ALL:
                frame = apply_calibration(frame, calibration, ALL)
            frames[target, int(horizon)] = frame
            targets[target][str(horizon)] = _target_metrics(frame, graph, settings, population)
        if (target, 1) in frames:
            by_group[target] = _by_group(frames[target, 1])
    summary["targets"] = _finite(targets)
    summary["headline_by_group"] = _finite(by_group)
    summary["calibration"] = calibration or {}
    if ceilings:
        summary["ceilings"] = {}
        for name, ceiling in ceilings.items():
            scored = ceiling[ceiling["category"].isin(categories)]
            summary["ceilings"][name] = {
                target: {str(h): _target_metrics(
                    target_frame(scored[scored["horizon"] == h], target), graph, settings,
                    population, intervals=name != HINDSIGHT)
                    for h in sorted(scored["horizon"].unique())}
                for target in targets}
        summary["gap_closed"] = _finite(gap_closed(targets, summary["ceilings"]))
        summary["ceilings"] = _finite(summary["ceilings"])
    return summary


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (a metric undefined for lack of
    incidents) replaced by None, so summaries survive a JSON round trip unchanged."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def gap_closed(targets: dict[str, Any], ceilings: dict[str, Any]) -> dict[str, Any]:
    """``{target: {horizon: {ceiling: {metric: share}}}}``: (model − reference) /
    (ceiling − reference), where the reference is the mean of the last
    ``reference_window`` weeks. 0 = no better than the reference, 1 = as good as the
    ceiling (above 1 = better than it); None where the ceiling does not beat the
    reference (no gap to close)."""
    out: dict[str, Any] = {}
    reference = ceilings.get(REFERENCE, {})
    for target, horizons in targets.items():
        out[target] = {}
        for horizon, values in horizons.items():
            ref = reference.get(target, {}).get(horizon, {})
            entry: dict[str, Any] = {}
            for ceiling, prefixes in GAP_METRICS.items():
                top = ceilings.get(ceiling, {}).get(target, {}).get(horizon, {})
                shares = {}
                for metric, value in values.items():
                    if not isinstance(value, float) or not metric.startswith(prefixes):
                        continue
                    if metric not in top or metric not in ref:
                        continue
                    gap = top[metric] - ref[metric]
                    # Only a ceiling that beats the reference leaves a gap to close.
                    beats = gap < 0 if metric in LOWER_IS_BETTER else gap > 0
                    shares[metric] = (float((value - ref[metric]) / gap)
                                      if beats and abs(gap) > 1e-12 else float("nan"))
                entry[ceiling] = shares
            out[target][horizon] = entry
    return out


def _with_dispersion(forecast: pd.DataFrame, model: Forecaster) -> pd.DataFrame:
    categories = list(model.categories_ or [])
    dispersion = np.asarray(model.dispersion_, dtype=np.float64)
    position = pd.Index(categories).get_indexer(forecast["category"])
    forecast["dispersion"] = dispersion[position]
    return forecast


def _calibrate_rows(rows: pd.DataFrame, calibration: dict[str, Any]) -> pd.DataFrame:
    """The rows with each category's bounds at its calibrated central probabilities."""
    parts = [apply_calibration(part, calibration, str(category))
             for category, part in rows.groupby("category", sort=False, observed=True)]
    return pd.concat(parts).sort_index() if parts else rows


def fit_backtest_calibration(validation_rows: pd.DataFrame,
                             settings: EvaluationSettings) -> dict[str, Any]:
    """Calibration from the validation rows, for the target "all" and every category
    with an incident in them."""
    if validation_rows.empty:
        return {}
    targets = {target: target_frame(validation_rows, target)
               for target in (ALL, *active_categories(validation_rows))}
    return fit_calibration(targets, settings.calibration_bins, settings.calibration_tolerance,
                           settings.calibration_min_rows)


def run_backtest(model: Forecaster, panel: Panel, graph: AreaGraph,
                 settings: EvaluationSettings | None = None, progress: bool = True,
                 on_origin: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Walk-forward evaluation of ``model`` (fitted here; pass an unfitted model).

    ``settings`` defaults to ``configs/evaluation.yaml``. Returns the scored test rows and
    the summary (see the module docstring). ``on_origin(i, n)`` is called after each of
    the ``n`` validation and test origins (for progress reporting by callers).
    """
    settings = settings or EvaluationSettings.load()
    data = panel_arrays(panel, graph)
    origins = origin_indices(data.counts.shape[1], settings)
    if not origins or origins[0] < 1:
        raise ValueError(f"panel has {data.counts.shape[1]} weeks: too few for a backtest "
                         f"over {settings.backtest_weeks} weeks (need at least "
                         f"{settings.backtest_weeks + 2})")
    validation = validation_origin_indices(data.counts.shape[1], settings)
    horizons = tuple(settings.horizons)
    val_parts, parts = [], []
    walk = validation + origins
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"backtest {model.name}", total=len(walk))
        for i, origin in enumerate(walk):
            test_index = i - len(validation)
            # Fitted at the first validation origin for the validation weeks, then again
            # at the first test origin (and every refit_every test origins after it).
            if i == 0 or test_index == 0 or (settings.refit_every and test_index > 0
                                              and test_index % settings.refit_every == 0):
                model.fit_arrays(data.until(origin), graph)
            forecast = _with_dispersion(model.predict_arrays(data.until(origin), graph,
                                                             horizons), model)
            scored = score_rows(forecast, data, graph, origin)
            if test_index < 0:
                # Validation targets stop at the first test origin: no test week is used.
                val_parts.append(scored[scored["week"] <= data.weeks[origins[0]]])
            else:
                parts.append(scored)
            bar.advance(task)
            if on_origin is not None:
                on_origin(i, len(walk))
    rows = label_rows(pd.concat(parts, ignore_index=True), graph, model.name)
    calibration: dict[str, Any] = {}
    validation_rows = None
    if val_parts:
        validation_rows = label_rows(pd.concat(val_parts, ignore_index=True), graph,
                                     model.name)
        calibration = fit_backtest_calibration(validation_rows, settings)
        rows = _calibrate_rows(rows, calibration)
    ceilings = ceiling_rows(rows, data, graph, settings)
    return BacktestResult(model.name, rows,
                          summarise(rows, graph, settings, calibration, ceilings),
                          validation_rows)


def _smoother_means(data: PanelArrays, halfwidth: int) -> np.ndarray:
    """``[A, W, C]``: the mean of the non-outage weeks within ±``halfwidth`` of each week,
    the week itself excluded (fewer weeks near the ends of the panel; the week's own
    count when no other week is available)."""
    valid = (~data.outage).astype(np.float64)
    counts = data.counts.astype(np.float64) * valid[None, :, None]
    num_weeks = counts.shape[1]
    summed = np.concatenate([np.zeros((counts.shape[0], 1, counts.shape[2])),
                             np.cumsum(counts, axis=1)], axis=1)
    seen = np.concatenate([[0.0], np.cumsum(valid)])
    week = np.arange(num_weeks)
    low, high = np.maximum(week - halfwidth, 0), np.minimum(week + halfwidth, num_weeks - 1)
    total = summed[:, high + 1] - summed[:, low] - counts
    number = seen[high + 1] - seen[low] - valid
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / number[None, :, None]
    return np.where(number[None, :, None] > 0, mean, data.counts)


def ceiling_rows(rows: pd.DataFrame, data: PanelArrays, graph: AreaGraph,
                 settings: EvaluationSettings) -> dict[str, pd.DataFrame]:
    """The ceilings and the reference, as scored rows on the same cells as ``rows``.

    - ``smoother``: the mean of the ``ceiling_halfwidth`` weeks before and after the
      target week (not the week itself; outage weeks left out): count-only information
      that includes the future, so no forecaster can be expected to beat it;
    - ``hindsight``: the actual count as the forecast (perfect hindsight; hotspot
      metrics only; its PEI* falls short of 1 only because flags rank areas by count
      while PAI* picks the densest set of the same size);
    - ``reference_mean``: the mean of the last ``reference_window`` non-outage weeks up
      to the origin (a model that closes 0 % of the gap).

    The smoother and the reference get a per-category NB dispersion fitted by moments on
    the validation weeks (:func:`validation_origin_indices`), so their log score, RPS and
    intervals are defined. Intervals are nominal.
    """
    num_weeks = data.counts.shape[1]
    week_index = data.weeks.get_indexer(pd.DatetimeIndex(rows["week"]))
    origin_index = data.weeks.get_indexer(pd.DatetimeIndex(rows["origin"]))
    area_pos = pd.Index(graph.area_ids).get_indexer(rows["area_id"])
    cat_pos = pd.Index(data.categories).get_indexer(rows["category"])
    smooth = _smoother_means(data, settings.ceiling_halfwidth)
    reference_at: dict[int, np.ndarray] = {}

    def reference(origin: int) -> np.ndarray:
        if origin not in reference_at:
            reference_at[origin] = recent_mean(data.counts[:, : origin + 1],
                                               data.outage[: origin + 1],
                                               settings.reference_window)
        return reference_at[origin]

    # Dispersion from the validation weeks' one-step-and-further targets.
    origins = origin_indices(num_weeks, settings)
    actual_v, smooth_v, reference_v = [], [], []
    for origin in validation_origin_indices(num_weeks, settings):
        for h in settings.horizons:
            target = origin + h
            if target > origins[0] or data.outage[target]:
                continue
            actual_v.append(data.counts[:, target])
            smooth_v.append(smooth[:, target])
            reference_v.append(reference(origin))
    reference_rows = np.empty(len(rows))
    for origin in np.unique(origin_index):
        at = origin_index == origin
        reference_rows[at] = reference(int(origin))[area_pos[at], cat_pos[at]]
    means = {SMOOTHER: smooth[area_pos, week_index, cat_pos], REFERENCE: reference_rows}
    out: dict[str, pd.DataFrame] = {}
    keys = rows[["origin", "area_id", "week", "category", "horizon", "actual", "group"]]
    for name, fitted in ((SMOOTHER, smooth_v), (REFERENCE, reference_v)):
        dispersion = np.zeros(len(data.categories))
        if actual_v:
            y, mu = np.stack(actual_v), np.stack(fitted)
            dispersion = np.array([fit_dispersion(y[..., c], mu[..., c])
                                   for c in range(len(data.categories))])
        frame = keys.assign(mean=means[name], dispersion=dispersion[cat_pos])
        bounds = distributions.intervals(frame["mean"].to_numpy(),
                                         frame["dispersion"].to_numpy(), {80: 0.8, 95: 0.95})
        out[name] = frame.assign(**bounds, model=name)
    actual = keys["actual"].to_numpy(float)
    out[HINDSIGHT] = keys.assign(mean=actual, dispersion=0.0, lower_80=actual,
                                 upper_80=actual, lower_95=actual, upper_95=actual,
                                 model=HINDSIGHT)
    return out


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
        parts.append(score_rows(forecast.assign(dispersion=0.0), data, graph, origin))
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
    import crimecast.forecast.calibration
    import crimecast.forecast.distributions
    import crimecast.forecast.evidence
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
                   crimecast.forecast.distributions, crimecast.forecast.calibration,
                   crimecast.forecast.evidence, crimecast.forecast.models.base,
                   *forecaster.source_modules()):
        try:
            digest.update(inspect.getsource(module).encode())
        except (OSError, TypeError):  # no source (e.g. a class built at runtime)
            digest.update(repr(module).encode())
    digest.update(pd.util.hash_pandas_object(panel.counts, index=False).to_numpy().tobytes())
    digest.update(pd.util.hash_pandas_object(graph.areas.reset_index(), index=False)
                  .to_numpy().tobytes())
    digest.update(graph.edge_index.tobytes() + graph.edge_weight.tobytes())
    return digest.hexdigest()[:24]
