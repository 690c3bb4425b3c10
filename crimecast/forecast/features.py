"""The one place that turns panel counts into model features.

Every feature-based model (LightGBM, the GNN) calls :func:`lag_features` on the dense
count array of :func:`crimecast.data.panel.panel_arrays`, at training and at serving time,
so both compute the same numbers. Row ``t`` of the output uses only weeks ``≤ t``: it describes what is known
at the end of week ``t`` (the *origin*); a model predicting week ``t + h`` reads row ``t``.

Feature names (``{cat}`` runs over the categories in the array's order):

- ``lag{k}_{cat}`` for k = 1..L: the count at week ``t - k + 1`` (``lag1`` is week t itself);
  weeks before the first are 0.
- ``mean{w}_{cat}`` for each rolling window w: the mean count over weeks ``t-w+1..t``
  (over the available weeks while fewer than w exist).
- ``spatial_lag1_{cat}``, ``spatial_mean4_{cat}`` (graph given): the edge-weighted mean over
  neighbours of ``lag1`` and ``mean4``: near-repeat spill-over from next door.
- ``woy_sin``, ``woy_cos``: week of year of the origin week on the unit circle.

Outage weeks (recording collapsed) can be passed as a boolean mask; their counts are
replaced by the mean of the previous ``outage_fill_weeks`` non-outage weeks before any
feature is computed, so a data outage does not look like a crime drop.

Rows with ``t < spec.min_history - 1`` rest on partial history (rolling means over the
weeks that exist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from crimecast.contracts import AreaGraph
from crimecast.data.graph import row_normalised_adjacency

if TYPE_CHECKING:
    from crimecast.data.panel import PanelArrays

AREA_COVARIATE_NAMES: tuple[str, ...] = (
    "log_population", "log_density", "poverty_z", "income_z",
    "population_missing", "density_missing", "poverty_missing", "income_missing",
)


class FeatureSpec(BaseModel):
    """Which lag features a model computes (each model builds its own from its
    hyperparameters, e.g. :attr:`GNNForecaster.spec`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lags: int = Field(4, ge=1, description="number of weekly lags (lag1 = the origin week)")
    rolling_windows: tuple[int, ...] = Field((4, 13, 52), description="rolling-mean windows")
    seasonal: bool = Field(True, description="add week-of-year sin/cos")
    spatial_lag: bool = Field(True, description="add neighbour means (needs a graph)")
    outage_fill_weeks: int = Field(4, ge=1, description="weeks averaged to fill an outage")

    @field_validator("rolling_windows")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or min(value) < 1:
            raise ValueError("rolling_windows must be a non-empty list of positive integers")
        return tuple(sorted(set(value)))

    @property
    def min_history(self) -> int:
        """Weeks of history a row needs for every feature to be complete."""
        return max(self.lags, *self.rolling_windows)


def trailing_weeks(data: PanelArrays, spec: FeatureSpec) -> PanelArrays:
    """The last weeks of ``data`` on which the features of its last week depend: a
    prediction computes features for that week only, not for every week of a 10-year
    panel (at H3 r9 that was ~12 s per call, 34 calls per backtest).

    Keeps ``spec.min_history`` weeks (the longest lag or rolling window), plus
    ``outage_fill_weeks`` and one week per outage week in the panel, so every outage week
    inside the window is filled from the same earlier weeks as on the full panel: the
    last row of :func:`lag_features` is identical either way (a test pins it)."""
    from crimecast.data.panel import PanelArrays

    needed = spec.min_history + spec.outage_fill_weeks + int(np.asarray(data.outage).sum())
    start = max(0, data.counts.shape[1] - needed)
    if start == 0:
        return data
    return PanelArrays(data.counts[:, start:], data.outage[start:], data.weeks[start:],
                       data.categories)


def fill_outages(counts: np.ndarray, outage: np.ndarray, window: int = 4) -> np.ndarray:
    """Copy of ``counts`` [areas, weeks, categories] where each outage week (``outage``
    [weeks] bool) holds the mean of the previous ``window`` non-outage weeks (0 when
    there are none). Uses only the past, so it is safe inside :func:`lag_features`."""
    filled = counts.astype(np.float32, copy=True)
    good: list[int] = []
    for t in range(counts.shape[1]):
        if outage[t]:
            recent = good[-window:]
            filled[:, t] = filled[:, recent].mean(axis=1) if recent else 0.0
        else:
            good.append(t)
    return filled


def lag_features(counts: np.ndarray, weeks: pd.DatetimeIndex, spec: FeatureSpec | None = None,
                 graph: AreaGraph | None = None, categories: list[str] | None = None,
                 outage: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Model features per (area, origin week).

    Inputs:
      - ``counts``: float/int array ``[areas, weeks, categories]`` (``PanelArrays.counts``).
      - ``weeks``: the ``weeks`` Mondays (``len(weeks) == counts.shape[1]``).
      - ``spec``: :class:`FeatureSpec` (default: its defaults).
      - ``graph``: the :class:`AreaGraph` in the same area order, for spatial lags
        (skipped when None or ``spec.spatial_lag`` is false).
      - ``categories``: names for the feature columns (default ``cat0, cat1, ...``).
      - ``outage``: optional bool ``[weeks]``; those weeks are filled from the past first.

    Returns ``(features, names)``: float32 ``[areas, weeks, F]`` and the F column names.
    Row ``t`` depends only on weeks ``0..t``.
    """
    spec = spec or FeatureSpec()
    if counts.ndim != 3:
        raise ValueError(f"counts must be [areas, weeks, categories]; got shape {counts.shape}")
    n_areas, n_weeks, n_cats = counts.shape
    if len(weeks) != n_weeks:
        raise ValueError(f"weeks has {len(weeks)} entries but counts has {n_weeks} weeks")
    categories = list(categories) if categories is not None else [f"cat{i}" for i in range(n_cats)]
    if len(categories) != n_cats:
        raise ValueError(f"{len(categories)} category names for {n_cats} categories")
    if graph is not None and graph.num_nodes != n_areas:
        raise ValueError(f"graph has {graph.num_nodes} nodes but counts has {n_areas} areas")
    values = counts.astype(np.float32)
    if outage is not None:
        outage = np.asarray(outage, dtype=bool)
        if outage.shape != (n_weeks,):
            raise ValueError(f"outage must be [weeks]={n_weeks} booleans; got {outage.shape}")
        if outage.any():
            values = fill_outages(values, outage, spec.outage_fill_weeks)

    blocks: list[np.ndarray] = []
    names: list[str] = []
    for k in range(1, spec.lags + 1):
        shifted = np.zeros_like(values)
        shifted[:, k - 1:] = values[:, : n_weeks - k + 1]
        blocks.append(shifted)
        names += [f"lag{k}_{c}" for c in categories]

    means = _rolling_means(values, spec.rolling_windows)
    for w in spec.rolling_windows:
        blocks.append(means[w])
        names += [f"mean{w}_{c}" for c in categories]

    if spec.spatial_lag and graph is not None:
        mix = row_normalised_adjacency(graph.edge_index, graph.num_nodes, graph.edge_weight)
        mean4 = means[4] if 4 in means else _rolling_means(values, (4,))[4]
        for source, label in ((values, "spatial_lag1"), (mean4, "spatial_mean4")):
            flat = source.reshape(n_areas, n_weeks * n_cats)
            blocks.append(np.asarray(mix @ flat, dtype=np.float32).reshape(n_areas, n_weeks, n_cats))
            names += [f"{label}_{c}" for c in categories]

    if spec.seasonal:
        season = week_of_year_circle(weeks).astype(np.float32)
        blocks.append(np.broadcast_to(season[None], (n_areas, n_weeks, 2)))
        names += ["woy_sin", "woy_cos"]

    return np.concatenate(blocks, axis=2).astype(np.float32, copy=False), names


def week_of_year_circle(weeks: pd.DatetimeIndex) -> np.ndarray:
    """``[weeks, 2]`` sin/cos of the ISO week of year (week 1 at angle 0): the seasonal
    features of :func:`lag_features`; models use it for target weeks too."""
    angle = 2 * np.pi * (pd.DatetimeIndex(weeks).isocalendar().week.to_numpy(dtype=np.float64)
                         - 1) / 52.18
    return np.stack([np.sin(angle), np.cos(angle)], axis=-1)


def _rolling_means(values: np.ndarray, windows: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Trailing means over ``windows`` weeks along axis 1 of [areas, weeks, cats], over the
    available weeks while fewer exist; one cumulative sum serves every window."""
    n_areas, n_weeks, n_cats = values.shape
    cumsum = np.concatenate([np.zeros((n_areas, 1, n_cats), np.float64),
                             np.cumsum(values, axis=1, dtype=np.float64)], axis=1)
    t_index = np.arange(n_weeks)
    means: dict[int, np.ndarray] = {}
    for w in windows:
        start = np.maximum(t_index + 1 - w, 0)
        length = (t_index + 1 - start).astype(np.float64)
        means[w] = ((cumsum[:, t_index + 1] - cumsum[:, start]) / length[None, :, None]
                    ).astype(np.float32)
    return means


def area_covariates(areas: pd.DataFrame) -> np.ndarray:
    """Static covariates per area, ``[areas, 8]`` float32, columns
    :data:`AREA_COVARIATE_NAMES`: log(1 + population), log(1 + people per km²), poverty and
    log-income as z-scores over these areas, then a 0/1 missing indicator for each (a
    missing value itself becomes 0, i.e. the mean). ``areas`` is ``AreaGraph.areas``
    (columns ``population``, ``land_area_km2``, ``pct_poverty``, ``median_income``)."""
    needed = ["population", "land_area_km2", "pct_poverty", "median_income"]
    missing_cols = [c for c in needed if c not in areas.columns]
    if missing_cols:
        raise ValueError(f"areas: missing column(s) {missing_cols} for area covariates")
    population = areas["population"].to_numpy(dtype=np.float64)
    land = areas["land_area_km2"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        density = np.where(land > 0, population / land, np.nan)
        income = np.where(areas["median_income"].to_numpy(dtype=np.float64) > 0,
                          np.log(areas["median_income"].to_numpy(dtype=np.float64)), np.nan)
    columns = [np.log1p(np.clip(population, 0, None)), np.log1p(np.clip(density, 0, None)),
               _zscore(areas["pct_poverty"].to_numpy(dtype=np.float64)), _zscore(income)]
    indicators = [np.isnan(c).astype(np.float64) for c in columns]
    filled = [np.nan_to_num(c, nan=0.0) for c in columns]
    return np.column_stack(filled + indicators).astype(np.float32)


def _zscore(values: np.ndarray) -> np.ndarray:
    mean, std = np.nanmean(values), np.nanstd(values)
    return (values - mean) / std if std > 0 else values - mean
