"""Interval calibration on the validation weeks (never the weeks that judge a model).

A forecast's 80 % interval is the central 80 % of its NB predictive distribution. Counts
are integers, so for small expected counts that interval covers far more than 80 % (a
forecast of 0.3 crimes has the interval [0, 1], which holds 96 % of outcomes); a
mis-specified dispersion moves coverage too. Calibration picks the *central probability*
``p`` whose interval covers the nominal share of the validation weeks' outcomes, and uses
it in place of 0.80 (or 0.95):

- the validation weeks are the ``validation_weeks`` weeks before the backtest
  (``configs/evaluation.yaml``); the backtest forecasts them from a model fitted before
  them, and keeps only targets up to the first backtest origin, never a backtest week;
- a target (a category, or "all") is recalibrated only when its validation coverage at
  the nominal level is off by more than ``calibration_tolerance`` (3 points);
- then each range of expected counts (``calibration_bins``: how far discreteness pushes
  coverage up depends on the expected count, so areas of every group and unit with
  similar counts get the same correction) gets its own ``p``; a range with fewer than
  ``calibration_min_rows`` validation rows uses the target's citywide ``p``;
- ``p`` is the value on a fine grid whose validation coverage is closest to nominal.
  Coverage as a function of ``p`` needs only ``F(y)`` and ``F(y - 1)`` of each row: ``y``
  lies in the widened interval ``[min(Q(a), mean), max(Q(b), mean)]`` with
  ``a = (1 - p) / 2``, ``b = (1 + p) / 2`` exactly when ``(F(y) >= a or y >= mean)`` and
  ``(F(y - 1) < b or y <= mean)``.

This is split-conformal calibration of the interval level, Mondrian by expected count.
The result is a plain dict (JSON-able) that the backtest summary records and a registered
model carries, so served intervals are the calibrated ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from crimecast.forecast import distributions

LEVELS: tuple[int, ...] = (80, 95)
#: The cell of a target that covers every row (and ranges with too few rows).
CITYWIDE = "*"
_GRID = np.unique(np.concatenate([np.linspace(0.01, 0.99, 99), np.linspace(0.991, 0.999, 9),
                                  np.linspace(0.70, 0.99, 291)]))


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Names of the expected-count ranges cut at ``edges``: ``<0.5``, ``0.5-1``, …,
    ``>=16``."""
    edges = [float(e) for e in edges]
    return ([f"<{edges[0]:g}"] + [f"{a:g}-{b:g}" for a, b in itertools.pairwise(edges)]
            + [f">={edges[-1]:g}"])


def _bin_of(mean: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    labels = np.asarray(bin_labels(edges), dtype=object)
    return labels[np.digitize(np.asarray(mean, float), np.asarray(edges, float))]


def _coverage_curves(frame: pd.DataFrame) -> np.ndarray:
    """``[rows, grid]`` booleans: is the actual count inside the widened central interval
    of probability ``_GRID[j]``?"""
    y = frame["actual"].to_numpy(float)
    mu = frame["mean"].to_numpy(float)
    alpha = frame["dispersion"].to_numpy(float)
    upper_cdf, lower_cdf = (c[:, None] for c in distributions.cdf_pair(y, mu, alpha))
    a, b = (1 - _GRID) / 2, (1 + _GRID) / 2
    above = (upper_cdf >= a[None, :] - 1e-12) | (y >= mu)[:, None]
    below = (lower_cdf < b[None, :] - 1e-12) | (y <= mu)[:, None]
    return above & below


def fit_calibration(validation: Mapping[str, pd.DataFrame], edges: Sequence[float],
                    tolerance: float = 0.03, min_rows: int = 100) -> dict[str, Any]:
    """Fit the central probabilities on validation rows.

    ``validation``: target name → scored rows of that target (``mean``, ``dispersion``,
    ``actual``); ``edges``: the expected counts that cut the ranges. Returns
    ``{"tolerance", "min_rows", "edges", "targets": {target: {"80": {cell: {"rows",
    "coverage_before", "coverage_after", "central", "applied"}}, "95": ...}}}`` where
    ``cell`` is :data:`CITYWIDE` or a range label (:func:`bin_labels`).
    """
    targets: dict[str, Any] = {}
    for target, frame in validation.items():
        if frame.empty:
            continue
        curves = _coverage_curves(frame)
        ranges = _bin_of(frame["mean"].to_numpy(float), edges)
        cells = {CITYWIDE: np.ones(len(frame), dtype=bool)}
        cells.update({label: ranges == label for label in bin_labels(edges)
                      if (ranges == label).sum() >= min_rows})
        per_level: dict[str, Any] = {}
        for level in LEVELS:
            nominal = level / 100
            before_all = float(curves[:, _nominal_index(nominal)].mean())
            applied = abs(before_all - nominal) > tolerance
            entry = {}
            for cell, member in cells.items():
                before = float(curves[member, _nominal_index(nominal)].mean())
                central = nominal
                if applied:
                    coverage = curves[member].mean(axis=0)
                    central = float(_GRID[int(np.argmin(np.abs(coverage - nominal)))])
                entry[cell] = {"rows": int(member.sum()), "coverage_before": before,
                               "coverage_after": float(
                                   curves[member, _nominal_index(central)].mean()),
                               "central": central, "applied": bool(applied)}
            per_level[str(level)] = entry
        targets[target] = per_level
    return {"tolerance": tolerance, "min_rows": min_rows, "edges": [float(e) for e in edges],
            "targets": targets}


def _nominal_index(p: float) -> int:
    return int(np.argmin(np.abs(_GRID - p)))


def central_probabilities(calibration: Mapping[str, Any] | None, target: str, level: int,
                          mean: np.ndarray) -> np.ndarray:
    """The central probability of each row's ``level`` interval from its expected count
    ``mean``: its range's cell, else the citywide cell, else the nominal level."""
    mean = np.asarray(mean, float)
    nominal = level / 100
    out = np.full(mean.shape, nominal)
    cells = ((calibration or {}).get("targets", {}).get(target, {}).get(str(level), {}))
    if not cells:
        return out
    out[...] = cells.get(CITYWIDE, {}).get("central", nominal)
    ranges = _bin_of(mean, calibration.get("edges", []))
    for label, entry in cells.items():
        if label != CITYWIDE:
            out[ranges == label] = entry["central"]
    return out


def apply_calibration(frame: pd.DataFrame, calibration: Mapping[str, Any] | None,
                      target: str) -> pd.DataFrame:
    """A copy of one target's scored rows with interval bounds at the calibrated central
    probabilities (``mean`` and ``dispersion`` needed)."""
    out = frame.copy()
    mu, alpha = out["mean"].to_numpy(float), out["dispersion"].to_numpy(float)
    bounds = distributions.intervals(mu, alpha, {
        level: central_probabilities(calibration, target, level, mu) for level in LEVELS})
    for name, values in bounds.items():
        out[name] = values
    return out


def model_coverage(calibration: Mapping[str, Any] | None, categories: list[str],
                   mean: np.ndarray) -> dict[int, np.ndarray]:
    """What :func:`crimecast.forecast.models.base.forecast_frame` takes as ``coverage``
    for a model carrying ``calibration``: ``{80: [A, H, C], 95: [A, H, C]}`` central
    probabilities of the expected counts ``mean`` (``[A, H, C]``)."""
    return {level: np.stack([central_probabilities(calibration, c, level, mean[..., j])
                             for j, c in enumerate(categories)], axis=-1)
            for level in LEVELS}


def summary_rows(calibration: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A flat table of a calibration (target, level, cell, coverage before/after on the
    validation weeks, central probability, applied), for printing and reports."""
    rows = []
    for target, levels in calibration.get("targets", {}).items():
        for level, cells in levels.items():
            for cell, entry in cells.items():
                rows.append({"target": target, "level": int(level), "cell": cell, **entry})
    return rows
