"""Paired evidence: is one forecaster really better than another on the same backtest?

The one implementation of confidence intervals in crimecast; benchmarks, ``crimecast
evaluate``, the promotion gate and the public report all call it.

Two forecasters are scored on the *same* rows (area × target week × category × horizon).
:func:`target_components` turns each one's rows of a target (a category or ``"all"``) at a
horizon into additive per-week sums (:func:`crimecast.forecast.metrics.weekly_components`);
every metric is a function of those sums (:func:`crimecast.forecast.metrics.metric_values`),
so resampling *weeks* resamples every metric at once and keeps each metric's own
definition (a pooled deviance, a mean of weekly PAIs, a ratio of flag rates).

Confidence intervals come from a seeded **moving-block bootstrap over weeks**
(Künsch 1989): each draw concatenates ``ceil(T / block)`` blocks of ``block_weeks``
consecutive weeks with uniformly drawn starts, truncated to ``T`` weeks, so week-to-week
dependence (crime waves, holidays, near repeats) stays inside blocks. Both forecasters
get the *same* draws, which is what makes the comparison paired: the week-to-week noise
they share cancels in their difference. The interval is the percentile interval of the
draws at ``bootstrap_level`` (95 %). For the per-cell losses (deviance, log score, RPS,
MAE), :func:`diebold_mariano` also gives a p-value of the weekly loss differential with a
Newey–West (HAC) variance, as a cross-check.

:func:`paired_comparison` returns, for every metric, the reference and challenger values,
the difference ``challenger - reference`` and its CI, and the relative change
``challenger / reference - 1`` and its CI; :func:`disparity_evidence` gives each group's
flag-rate ratio with its CI for both, and the paired CI of how much further from parity
(``|ln ratio|``) the challenger is. :func:`metric_intervals` is the unpaired version for one
forecaster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from crimecast.forecast.calibration import apply_calibration
from crimecast.forecast.metrics import (
    LOWER_IS_BETTER,
    metric_values,
    target_frame,
    weekly_components,
)
from crimecast.forecast.settings import EvaluationSettings

#: Per-cell losses whose weekly means the Diebold–Mariano test compares.
ADDITIVE_LOSSES: dict[str, str] = {"poisson_deviance": "deviance", "log_score": "log_score",
                                   "rps": "rps", "mae": "abs_error"}
KEY_COLUMNS: tuple[str, ...] = ("area_id", "week", "category", "horizon")


def block_bootstrap_weights(num_weeks: int, draws: int, block_weeks: int,
                            seed: int) -> np.ndarray:
    """``[draws, num_weeks]``: how often each week appears in each moving-block
    bootstrap draw (rows sum to ``num_weeks``). Seeded, so the same call gives the same
    draws."""
    if num_weeks < 1:
        raise ValueError("no weeks to resample")
    block = int(min(max(block_weeks, 1), num_weeks))
    blocks = math.ceil(num_weeks / block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, num_weeks - block + 1, size=(draws, blocks))
    picked = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(draws, -1)
    picked = picked[:, :num_weeks]
    weights = np.zeros((draws, num_weeks))
    np.add.at(weights, (np.repeat(np.arange(draws), num_weeks), picked.ravel()), 1.0)
    return weights


def _weights(num_weeks: int, settings: EvaluationSettings) -> np.ndarray:
    return block_bootstrap_weights(num_weeks, settings.bootstrap_draws,
                                   settings.bootstrap_block_weeks, settings.bootstrap_seed)


def _draws(components: pd.DataFrame, weights: np.ndarray,
           population: pd.Series | None) -> pd.DataFrame:
    sums = pd.DataFrame(weights @ components.to_numpy(float), columns=components.columns)
    return metric_values(sums, population)


def percentile_interval(values: np.ndarray, level: float) -> list[float | None]:
    """``[low, high]`` central ``level`` percentile interval of bootstrap draws;
    ``[None, None]`` when more than 10 % of the draws are undefined."""
    finite = values[np.isfinite(values)]
    if finite.size < 0.9 * values.size or finite.size == 0:
        return [None, None]  # undefined in many draws (e.g. a group with no incidents)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [float(low), float(high)]


def _number(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def target_components(rows: pd.DataFrame, areas: pd.DataFrame, target: str, horizon: int,
                      calibration: dict[str, Any] | None = None,
                      settings: EvaluationSettings | None = None,
                      intervals: bool = True) -> pd.DataFrame:
    """Per-week sums of one forecaster's backtest ``rows`` for ``target`` at ``horizon``,
    with its intervals at the ``calibration``'s central probabilities (nominal when
    None). ``areas``: ``AreaGraph.areas``. ``intervals=False`` for forecasts without
    intervals (perfect hindsight)."""
    settings = settings or EvaluationSettings.load()
    frame = target_frame(rows[rows["horizon"] == horizon], target)
    if intervals and "dispersion" in frame.columns:
        frame = apply_calibration(frame, calibration, target)
    return weekly_components(frame, areas, settings.area_shares, settings.top_k,
                             settings.flag_share, seed=settings.bootstrap_seed,
                             intervals=intervals)


def check_same_rows(reference: pd.DataFrame, challenger: pd.DataFrame) -> None:
    """Raise ``ValueError`` unless both scored frames hold the same cells with the same
    actual counts (a paired comparison on different rows would compare different weeks)."""
    keys = [c for c in KEY_COLUMNS if c in reference.columns and c in challenger.columns]
    left = reference[[*keys, "actual"]].sort_values(keys).reset_index(drop=True)
    right = challenger[[*keys, "actual"]].sort_values(keys).reset_index(drop=True)
    if len(left) != len(right) or not left[keys].astype(str).equals(right[keys].astype(str)):
        raise ValueError(f"the two backtests score different rows ({len(left)} vs "
                         f"{len(right)}); compare forecasters on the same windows")
    if not np.allclose(left["actual"].to_numpy(float), right["actual"].to_numpy(float)):
        raise ValueError("the two backtests disagree on the actual counts of the same "
                         "rows; were they run on different panels?")


def metric_intervals(components: pd.DataFrame, settings: EvaluationSettings | None = None,
                     population: pd.Series | None = None) -> dict[str, dict[str, Any]]:
    """Every metric of one forecaster with its bootstrap CI: ``{metric: {"value",
    "ci": [low, high]}}`` (``ci`` is ``[None, None]`` when the metric is undefined in
    many draws)."""
    settings = settings or EvaluationSettings.load()
    point = metric_values(components.sum(), population).iloc[0]
    draws = _draws(components, _weights(len(components), settings), population)
    return {m: {"value": _number(point[m]),
                "ci": percentile_interval(draws[m].to_numpy(float), settings.bootstrap_level)}
            for m in point.index}


def long_run_variance(series: np.ndarray, lag: int) -> float:
    """Newey–West (Bartlett-weighted, up to ``lag`` weeks) long-run variance of a weekly
    series: ``n`` times it is the variance of the series' ``n``-week sum when weeks are
    autocorrelated. NaN for fewer than 2 finite values."""
    d = np.asarray(series, float)
    d = d[np.isfinite(d)]
    n = d.size
    if n < 2:
        return float("nan")
    centred = d - d.mean()
    lag = int(min(max(lag, 0), n - 1))
    variance = centred @ centred / n
    for k in range(1, lag + 1):
        variance += 2 * (1 - k / (lag + 1)) * (centred[k:] @ centred[:-k]) / n
    return float(variance)


def diebold_mariano(loss_difference: np.ndarray, lag: int) -> float:
    """Two-sided p-value that the mean weekly loss difference is 0 (Diebold & Mariano
    1995): Newey–West variance with Bartlett weights up to ``lag`` weeks, Harvey et al.
    (1997) small-sample correction, Student-t with ``T - 1`` degrees of freedom. NaN when
    the difference does not vary."""
    d = np.asarray(loss_difference, float)
    d = d[np.isfinite(d)]
    n = d.size
    if n < 3:
        return float("nan")
    lag = int(min(max(lag, 0), n - 1))
    variance = long_run_variance(d, lag)
    if not variance > 0:
        return float("nan")
    statistic = d.mean() / math.sqrt(variance / n)
    correction = math.sqrt((n + 1 - 2 * (lag + 1) + (lag + 1) * lag / n) / n)
    return float(2 * stats.t.sf(abs(statistic * correction), df=n - 1))


def _aligned(reference: pd.DataFrame, challenger: pd.DataFrame
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not reference.index.equals(challenger.index):
        raise ValueError("the two forecasters' weekly scores cover different weeks; "
                         "compare them on the same backtest rows")
    columns = reference.columns.union(challenger.columns)
    return (reference.reindex(columns=columns, fill_value=0.0),
            challenger.reindex(columns=columns, fill_value=0.0))


def paired_comparison(reference: pd.DataFrame, challenger: pd.DataFrame,
                      settings: EvaluationSettings | None = None,
                      population: pd.Series | None = None,
                      metrics: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Paired differences of every metric between two forecasters' per-week sums
    (:func:`target_components` of the same rows).

    Returns ``{metric: {"reference", "challenger", "diff", "ci": [low, high],
    "relative", "relative_ci", "better": "lower" | "higher" | None, "dm_p_value"}}``
    with ``diff = challenger - reference`` and ``relative = challenger / reference - 1``;
    ``better`` says which direction is an improvement (None for coverage, best at its
    nominal level); ``dm_p_value`` only for the per-cell losses. ``metrics`` limits the
    output (default: all).
    """
    settings = settings or EvaluationSettings.load()
    reference, challenger = _aligned(reference, challenger)
    weights = _weights(len(reference), settings)
    point_r = metric_values(reference.sum(), population).iloc[0]
    point_c = metric_values(challenger.sum(), population).iloc[0]
    draws_r = _draws(reference, weights, population)
    draws_c = _draws(challenger, weights, population)
    level = settings.bootstrap_level
    out: dict[str, dict[str, Any]] = {}
    for metric in (metrics or list(point_r.index)):
        if metric not in point_r.index:
            continue
        r, c = float(point_r[metric]), float(point_c[metric])
        diff_draws = draws_c[metric].to_numpy(float) - draws_r[metric].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_draws = draws_c[metric].to_numpy(float) / draws_r[metric].to_numpy(float) - 1
            relative = c / r - 1 if r else float("nan")
        entry = {"reference": _number(r), "challenger": _number(c), "diff": _number(c - r),
                 "ci": percentile_interval(diff_draws, level), "relative": _number(relative),
                 "relative_ci": percentile_interval(rel_draws, level),
                 "better": ("lower" if metric in LOWER_IS_BETTER else
                            None if metric.startswith(("coverage", "flag_rate")) else "higher")}
        if metric in ADDITIVE_LOSSES:
            column = ADDITIVE_LOSSES[metric]
            weekly = (challenger[column] - reference[column]) / reference["n"].replace(0, np.nan)
            entry["dm_p_value"] = _number(diebold_mariano(
                weekly.to_numpy(float), settings.bootstrap_block_weeks - 1))
        out[metric] = entry
    return out


def parity_distance(ratio: np.ndarray | float) -> np.ndarray:
    """``|ln ratio|``: 0 at parity, equal for 0.8 and 1.25, infinite for 0 or NaN."""
    value = np.asarray(ratio, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.abs(np.log(value))
    return np.where(np.isfinite(value) & (value > 0), out, np.inf)


def disparity_evidence(reference: pd.DataFrame | None, challenger: pd.DataFrame,
                       settings: EvaluationSettings | None = None,
                       population: pd.Series | None = None,
                       kinds: Sequence[str] = ("flag_rate_per_incident",)
                       ) -> dict[str, dict[str, Any]]:
    """Each group's flag-rate ratios (``kinds``) with bootstrap CIs.

    Returns ``{"<kind>/<group>": {"challenger", "challenger_ci", "reference",
    "reference_ci", "distance_diff", "distance_diff_ci"}}`` where ``distance_diff`` is
    ``|ln challenger| - |ln reference|`` (positive = the challenger is further from
    parity), paired over the same draws. With ``reference=None`` only the challenger's
    entries are filled (a seeded champion has nothing to be compared with).
    """
    settings = settings or EvaluationSettings.load()
    if reference is not None:
        reference, challenger = _aligned(reference, challenger)
    weights = _weights(len(challenger), settings)
    level = settings.bootstrap_level
    point_c = metric_values(challenger.sum(), population).iloc[0]
    draws_c = _draws(challenger, weights, population)
    point_r = draws_r = None
    if reference is not None:
        point_r = metric_values(reference.sum(), population).iloc[0]
        draws_r = _draws(reference, weights, population)
    out: dict[str, dict[str, Any]] = {}
    for metric in point_c.index:
        kind, _, group = metric.partition("_ratio/")
        if not group or kind not in kinds:
            continue
        entry: dict[str, Any] = {"challenger": _number(point_c[metric]),
                                 "challenger_ci": percentile_interval(
                                     draws_c[metric].to_numpy(float), level),
                                 "reference": None, "reference_ci": [None, None],
                                 "distance_diff": None, "distance_diff_ci": [None, None]}
        if point_r is not None and draws_r is not None and metric in point_r.index:
            entry["reference"] = _number(point_r[metric])
            entry["reference_ci"] = percentile_interval(draws_r[metric].to_numpy(float), level)
            distance = _distance_difference(parity_distance(point_c[metric]),
                                            parity_distance(point_r[metric]))
            distance_draws = _distance_difference(
                parity_distance(draws_c[metric].to_numpy(float)),
                parity_distance(draws_r[metric].to_numpy(float)))
            entry["distance_diff"] = _number(float(distance))
            entry["distance_diff_ci"] = percentile_interval(distance_draws, level)
        out[f"{kind}/{group}"] = entry
    return out


def _distance_difference(challenger: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``challenger - reference`` distances from parity; a group that neither model ever
    flags (both infinitely far) is no further under the challenger: 0."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(challenger) & np.isinf(reference), 0.0,
                        challenger - reference)


def population_by_group(areas: pd.DataFrame, group_column: str = "group") -> pd.Series:
    """Residents per group (for the per-resident disparity ratios)."""
    return areas.groupby(areas[group_column].astype(str))["population"].sum().astype(float)
