"""The one contract every forecaster follows, baseline or GNN.

A forecaster is built from hyperparameters (constructor keyword arguments), learns from a
:class:`~crimecast.contracts.Panel` and :class:`~crimecast.contracts.AreaGraph` in
:meth:`Forecaster.fit`, and forecasts the weeks after the *given* panel's last week in
:meth:`Forecaster.predict`. ``predict`` conditions on the panel it receives, so a backtest
can pass a truncated panel to a model fitted once, and the service can pass the latest
data to a model trained weeks ago.

Forecasts are tidy frames with :data:`~crimecast.contracts.FORECAST_COLUMNS`, one row per
area × category × horizon; ``week`` is ``last_week + horizon`` weeks. Intervals are
quantiles of the model's predictive distribution: negative binomial with mean ``mu`` and
variance ``mu + dispersion * mu**2`` (Poisson when ``dispersion`` is 0).

Saving writes a directory with ``model.json`` (name, hyperparameters, small fitted state),
optionally ``arrays.npz`` (numpy arrays, loaded with ``allow_pickle=False``) and whatever
the model adds itself (a torch ``state_dict``, a LightGBM model text file). Nothing is
pickled, so loading a model never executes stored code.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
import pandas as pd

from crimecast.contracts import FORECAST_COLUMNS, HORIZONS, AreaGraph, Panel, validate_forecast
from crimecast.data.panel import PanelArrays, panel_arrays
from crimecast.errors import CrimecastError
from crimecast.forecast import distributions
from crimecast.forecast.calibration import model_coverage
from crimecast.forecast.features import FeatureSpec
from crimecast.io import atomic_path, write_json

F = TypeVar("F", bound="Forecaster")

FORMAT_VERSION = 1
META_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"


class ModelError(CrimecastError, ValueError):
    """A model was used wrongly (not fitted, wrong areas, unreadable saved files)."""


def fit_dispersion(actual: np.ndarray, expected: np.ndarray) -> float:
    """Negative-binomial dispersion ``alpha`` by the method of moments.

    Solves ``mean((y - mu)^2) = mean(mu) + alpha * mean(mu^2)`` for ``alpha`` over all
    cells, clipped at 0 (Poisson). ``actual`` and ``expected`` have any matching shape.
    """
    y = np.asarray(actual, dtype=np.float64).ravel()
    mu = np.asarray(expected, dtype=np.float64).ravel()
    keep = np.isfinite(y) & np.isfinite(mu)
    y, mu = y[keep], mu[keep]
    if y.size == 0 or float(np.mean(mu**2)) <= 0:
        return 0.0
    alpha = (np.mean((y - mu) ** 2) - np.mean(mu)) / np.mean(mu**2)
    return float(max(alpha, 0.0))


def predictive_quantiles(mean: np.ndarray, dispersion: float | np.ndarray,
                         q: float) -> np.ndarray:
    """The ``q`` quantile of NB(mean, dispersion) (Poisson where dispersion is 0); see
    :func:`crimecast.forecast.distributions.quantile`."""
    return distributions.quantile(mean, dispersion, q)


def forecast_frame(mean: np.ndarray, area_ids: np.ndarray, categories: list[str],
                   last_week: pd.Timestamp, horizons: tuple[int, ...] | list[int],
                   dispersion: float | np.ndarray = 0.0,
                   coverage: dict[int, float | np.ndarray] | None = None) -> pd.DataFrame:
    """Build the tidy forecast frame from expected counts.

    ``mean``: ``[A, H, C]`` expected counts for ``horizons`` (in that order);
    ``dispersion``: scalar or broadcastable to ``[A, H, C]`` (e.g. ``[C]`` per category);
    ``coverage``: the central probability whose quantiles bound the 80 % and 95 %
    intervals, ``{80: p80, 95: p95}``, each scalar or broadcastable to ``[A, H, C]``
    (default: 0.80 and 0.95; calibrated models pass what their validation weeks asked
    for, see :mod:`crimecast.forecast.calibration`). Returns FORECAST_COLUMNS rows for every
    area × category × horizon. Count quantiles are integers, so a small mean can lie
    outside its central interval; the bounds are widened to include the mean, which keeps
    lower_95 ≤ lower_80 ≤ mean ≤ upper_80 ≤ upper_95.
    """
    mean = np.maximum(np.asarray(mean, dtype=np.float64), 0.0)
    num_areas, num_h, num_c = mean.shape
    if num_areas != len(area_ids) or num_h != len(horizons) or num_c != len(categories):
        raise ModelError(f"forecast array has shape {mean.shape}, expected "
                         f"({len(area_ids)}, {len(horizons)}, {len(categories)})")
    disp = np.broadcast_to(np.asarray(dispersion, dtype=np.float64), mean.shape)
    coverage = {80: 0.80, 95: 0.95, **(coverage or {})}
    bounds = distributions.intervals(mean, disp, {level: np.broadcast_to(
        np.asarray(coverage[level], dtype=np.float64), mean.shape) for level in (80, 95)})
    hz = np.asarray(horizons, dtype=np.int64)
    target_weeks = pd.Timestamp(last_week) + pd.to_timedelta(7 * hz, unit="D")
    # Row order: area-major, then category, then horizon (transpose to [A, C, H]).
    order = (0, 2, 1)
    frame = pd.DataFrame({
        "area_id": np.repeat(np.asarray(area_ids, dtype=str), num_c * num_h),
        "week": np.tile(np.asarray(target_weeks), num_areas * num_c),
        "category": np.tile(np.repeat(np.asarray(categories, dtype=object), num_h), num_areas),
        "horizon": np.tile(hz, num_areas * num_c),
        "mean": mean.transpose(order).ravel(),
        **{name: bounds[name].transpose(order).ravel()
           for name in ("lower_80", "upper_80", "lower_95", "upper_95")},
    })
    return validate_forecast(frame[list(FORECAST_COLUMNS)])


def recent_mean(counts: np.ndarray, outage: np.ndarray, window: int) -> np.ndarray:
    """Mean over the last ``window`` non-outage weeks: ``[A, W, C] -> [A, C]``.

    Falls back to all weeks when every week in the window is an outage.
    """
    valid = np.flatnonzero(~outage)
    if valid.size == 0:
        valid = np.arange(counts.shape[1])
    picked = valid[-window:]
    return counts[:, picked, :].mean(axis=1)


class Forecaster:
    """Base class: hyperparameters in, tidy forecasts out (see the module docstring).

    Subclasses set ``name``, take their hyperparameters as keyword-only constructor
    arguments with defaults (including ``mask_outages``), implement :meth:`_fit` and
    :meth:`_predict_mean`, and describe what was learned in :meth:`_get_state` /
    :meth:`_set_state` (JSON-able values and numpy arrays) or, for torch/LightGBM
    weights, in :meth:`_save_files` / :meth:`_load_files`.
    """

    name: ClassVar[str] = ""
    #: Rank of how much the model learns (0 = a mean of past counts): promotion ties go to
    #: the lower rank when ``tie_break: simpler``.
    complexity: ClassVar[int] = 0
    #: Largest horizon the model can forecast (GNN heads are fixed at fit time).
    max_horizon: ClassVar[int | None] = None

    def __init__(self, *, mask_outages: bool = True) -> None:
        self.mask_outages = mask_outages
        self.dispersion_: np.ndarray | None = None  # [C] NB dispersion per category
        self.categories_: list[str] | None = None
        self.area_ids_: np.ndarray | None = None
        #: Windows capped at the history given to ``fit``: {key: {"configured", "effective"}}.
        self.adapted_: dict[str, dict[str, Any]] = {}
        #: Interval calibration carried into served forecasts (crimecast.forecast.calibration).
        self.calibration_: dict[str, Any] | None = None

    # ----------------------------------------------------------------- hyperparameters
    def get_params(self) -> dict[str, Any]:
        """Constructor hyperparameters and their current values (scikit-learn style)."""
        params: dict[str, Any] = {}
        for cls in type(self).__mro__:
            if cls is object:
                continue
            for pname, p in inspect.signature(cls.__init__).parameters.items():
                if p.kind is p.KEYWORD_ONLY and pname not in params:
                    params[pname] = getattr(self, pname)
        return params

    @property
    def history_weeks(self) -> int:
        """Weeks of history ``predict`` reads; a shorter panel gives different forecasts
        (callers that keep only recent weeks, like the service, must keep at least this)."""
        return 52

    def source_modules(self) -> list[Any]:
        """Modules whose source decides this model's forecasts (the backtest cache key
        hashes them); an ensemble adds its members'."""
        return [inspect.getmodule(type(self))]

    @property
    def is_fitted(self) -> bool:
        return self.dispersion_ is not None

    def effective_params(self) -> dict[str, Any]:
        """:meth:`get_params` with the windows the fit actually used (after
        :meth:`_adapt` capped them at the history available)."""
        return {**self.get_params(),
                **{key: entry["effective"] for key, entry in self.adapted_.items()}}

    def _adapt(self, key: str, configured: int, available: int) -> int:
        """``configured`` capped at ``available`` weeks (at least 1), recorded in
        :attr:`adapted_` when it changes."""
        effective = int(min(configured, max(int(available), 1)))
        if effective != configured:
            self.adapted_[key] = {"configured": configured, "effective": effective}
        return effective

    def _too_short(self, num_weeks: int, minimum: int, key: str) -> ModelError:
        """The error for a history too short for any sensible fit, naming the key."""
        return ModelError(
            f"model '{self.name}' needs at least {minimum} weeks of history to fit, got "
            f"{num_weeks}", file="configs/models.yaml", key=f"{self.name}.{key}",
            hint=f"give it at least {minimum} weeks: add history, lower {self.name}.{key}, or "
                 "shorten configs/evaluation.yaml backtest_weeks / validation_weeks (a "
                 "backtest fits on the weeks before both windows)")

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({inner})"

    # ------------------------------------------------------------------------- fitting
    def fit(self, panel: Panel, graph: AreaGraph) -> Self:
        """Learn from every week of ``panel`` (outage weeks masked when ``mask_outages``)."""
        return self.fit_arrays(panel_arrays(panel, graph), graph)

    def fit_arrays(self, data: PanelArrays, graph: AreaGraph) -> Self:
        """:meth:`fit` from dense arrays (``[A, W, C]`` in ``graph.area_ids`` order)."""
        if data.counts.shape[0] != graph.num_nodes:
            raise ModelError(f"counts have {data.counts.shape[0]} areas, graph has "
                             f"{graph.num_nodes}")
        data = self._prepare(data)
        self.dispersion_ = None
        self.categories_ = list(data.categories)
        self.area_ids_ = np.asarray(graph.area_ids, dtype=str)
        self.adapted_ = {}
        self._fit(data, graph)
        if self.dispersion_ is None:
            self.dispersion_ = self._in_sample_dispersion(data, graph)
        if self.adapted_:
            announce_adaptation(self.name, data.counts.shape[1], self.adapted_)
        return self

    def _fit(self, data: PanelArrays, graph: AreaGraph) -> None:
        raise NotImplementedError

    def _in_sample_dispersion(self, data: PanelArrays, graph: AreaGraph,
                              num_origins: int = 8) -> np.ndarray:
        """Per-category NB dispersion from one-step forecasts at the last few origins."""
        num_weeks = data.counts.shape[1]
        origins = [w for w in range(num_weeks - num_origins - 1, num_weeks - 1) if w >= 1]
        actual, expected = [], []
        for origin in origins:
            if data.outage[origin + 1]:
                continue
            past = data.until(origin)
            expected.append(self._predict_mean(past, graph, (1,))[:, 0, :])
            actual.append(data.counts[:, origin + 1, :])
        if not actual:
            return np.zeros(len(data.categories))
        y, mu = np.stack(actual), np.stack(expected)
        return np.array([fit_dispersion(y[..., c], mu[..., c])
                         for c in range(len(data.categories))])

    # ---------------------------------------------------------------------- prediction
    def predict(self, panel: Panel, graph: AreaGraph,
                horizons: tuple[int, ...] | list[int] = HORIZONS) -> pd.DataFrame:
        """Forecast ``horizons`` weeks after ``panel.last_week`` for every area × category.

        Returns a frame with FORECAST_COLUMNS (validated), ``week = last_week + horizon``.
        """
        return self.predict_arrays(panel_arrays(panel, graph), graph, horizons)

    def predict_arrays(self, data: PanelArrays, graph: AreaGraph,
                       horizons: tuple[int, ...] | list[int] = HORIZONS) -> pd.DataFrame:
        """:meth:`predict` from dense arrays (backtests slice one array instead of
        re-pivoting the long panel at every origin)."""
        mean = self.predict_mean_arrays(data, graph, horizons)
        categories = list(self.categories_ or [])
        coverage = (model_coverage(self.calibration_, categories, mean)
                    if self.calibration_ else None)
        return forecast_frame(mean, graph.area_ids, categories, data.last_week,
                              tuple(horizons), self.dispersion_[None, None, :], coverage)

    def predict_mean(self, panel: Panel, graph: AreaGraph,
                     horizons: tuple[int, ...] | list[int] = HORIZONS) -> np.ndarray:
        """Expected counts only, as an ``[A, H, C]`` array."""
        return self.predict_mean_arrays(panel_arrays(panel, graph), graph, horizons)

    def predict_mean_arrays(self, data: PanelArrays, graph: AreaGraph,
                            horizons: tuple[int, ...] | list[int] = HORIZONS) -> np.ndarray:
        """Expected counts ``[A, H, C]`` from dense arrays, checked and clipped at 0."""
        if not self.is_fitted:
            raise ModelError(f"model '{self.name}' is not fitted: call fit() or load() first")
        horizons = tuple(int(h) for h in horizons)
        if not horizons or min(horizons) < 1:
            raise ModelError(f"horizons must be positive integers, got {horizons}")
        if self.max_horizon is not None and max(horizons) > self.max_horizon:
            raise ModelError(f"model '{self.name}' forecasts at most {self.max_horizon} weeks "
                             f"ahead, asked for {max(horizons)}")
        self._check_graph(graph)
        data = self._prepare(data)
        if list(data.categories) != list(self.categories_ or []):
            data = self._align_categories(data)
        return np.maximum(self._predict_mean(data, graph, horizons), 0.0)

    def _prepare(self, data: PanelArrays) -> PanelArrays:
        return data if self.mask_outages else data.without_outages()

    def _predict_mean(self, data: PanelArrays, graph: AreaGraph,
                      horizons: tuple[int, ...]) -> np.ndarray:
        """Expected counts ``[A, H, C]`` for the weeks after ``data.last_week``."""
        raise NotImplementedError

    def _check_graph(self, graph: AreaGraph) -> None:
        if self.area_ids_ is not None and (
            len(graph.area_ids) != len(self.area_ids_)
            or not np.array_equal(np.asarray(graph.area_ids, dtype=str), self.area_ids_)
        ):
            raise ModelError(f"model '{self.name}' was fitted on {len(self.area_ids_)} areas "
                             f"but the graph has {len(graph.area_ids)} (or another order)")

    def _align_categories(self, data: PanelArrays) -> PanelArrays:
        """Reorder/zero-fill categories to the fitted order (a category may be absent)."""
        cats = list(self.categories_ or [])
        counts = np.zeros((data.counts.shape[0], data.counts.shape[1], len(cats)), np.float32)
        for j, cat in enumerate(cats):
            if cat in data.categories:
                counts[:, :, j] = data.counts[:, :, data.categories.index(cat)]
        return PanelArrays(counts, data.outage, data.weeks, cats)

    # --------------------------------------------------------------------- persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Fitted state beyond the common fields: (JSON-able dict, numpy arrays)."""
        return {}, {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`_get_state` returned."""

    def _save_files(self, directory: Path) -> None:
        """Write extra weight files (torch state_dict, LightGBM text) into ``directory``."""

    def _load_files(self, directory: Path) -> None:
        """Read what :meth:`_save_files` wrote."""

    def save(self, directory: str | Path) -> Path:
        """Write the fitted model into ``directory`` (created); returns the directory."""
        if not self.is_fitted:
            raise ModelError(f"model '{self.name}' is not fitted: nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state, arrays = self._get_state()
        arrays = {**arrays, "dispersion": np.asarray(self.dispersion_, dtype=np.float64),
                  "area_ids": np.asarray(self.area_ids_, dtype=str)}

        with atomic_path(directory / ARRAYS_FILE) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        self._save_files(directory)
        # model.json last: its presence means the directory is complete.
        write_json(directory / META_FILE, {
            "name": self.name, "format_version": FORMAT_VERSION,
            "params": self.get_params(), "categories": self.categories_, "state": state,
            "adapted": self.adapted_, "calibration": self.calibration_,
        })
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Read a model saved by :meth:`save` into this class (``load_model`` in
        :mod:`crimecast.forecast.models` picks the class from the saved name)."""
        directory = Path(directory)
        meta = read_meta(directory)
        if meta["name"] != cls.name:
            raise ModelError(f"{directory / META_FILE}: holds model '{meta['name']}', "
                             f"not '{cls.name}'")
        model = cls(**meta["params"])
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        model.categories_ = list(meta["categories"])
        model.area_ids_ = arrays.pop("area_ids").astype(str)
        model.dispersion_ = arrays.pop("dispersion")
        model.adapted_ = dict(meta.get("adapted") or {})
        model.calibration_ = meta.get("calibration")
        model._set_state(meta["state"], arrays)
        model._load_files(directory)
        return model


def announce_adaptation(name: str, num_weeks: int, adapted: dict[str, dict[str, Any]]) -> None:
    """Say in one line (stderr) which windows a model capped at the history it was given."""
    changes = ", ".join(f"{key} {entry['configured']} → {entry['effective']}"
                        for key, entry in adapted.items())
    print(f"{name}: {num_weeks} weeks of history, adapted {changes} "
          "(effective values are in the model's params)", file=sys.stderr)


def read_meta(directory: Path) -> dict[str, Any]:
    """The checked ``model.json`` of a saved model (name, params, categories, state)."""
    meta_path = directory / META_FILE
    if not meta_path.exists():
        raise ModelError(f"{meta_path}: not found; is {directory} a saved crimecast model?")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{meta_path}: not valid JSON: {exc}") from None
    for key in ("name", "params", "categories", "state"):
        if key not in meta:
            raise ModelError(f"{meta_path}: missing key '{key}'")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{meta_path}: format_version {meta.get('format_version')!r}, "
                         f"this code reads {FORMAT_VERSION}")
    return meta


class FeatureForecaster(Forecaster):
    """A forecaster fed by :func:`crimecast.forecast.features.lag_features` (LightGBM, the GNN).

    Subclasses define :attr:`spec` and a ``horizons`` tuple; the history window ``predict``
    reads and the largest horizon follow from them.
    """

    horizons: tuple[int, ...]

    @property
    def spec(self) -> FeatureSpec:
        raise NotImplementedError

    @property
    def history_weeks(self) -> int:
        return self.spec.min_history

    @property
    def max_horizon(self) -> int:  # type: ignore[override]
        return max(self.horizons)
