"""Gradient-boosted Poisson regression on lag, rolling, spatial and covariate features.

One LightGBM model (objective ``poisson``) over all areas, categories and horizons. A
training row is (area ``a``, origin week ``t``, horizon ``h``, category ``c``) with target
``y[a, t + h, c]`` and features:

- the category's own block of :func:`crimecast.forecast.features.lag_features` at row ``t``
  (``lag1..L``, rolling means, spatial lags, with the category suffix removed),
- every category's block (cross-category signal, e.g. property crime leading violent),
- the static area covariates (:func:`crimecast.forecast.features.area_covariates`),
- ``horizon``, ``category`` (categorical) and the target week's week-of-year on the circle.

Outage weeks are filled from the past before features are computed and are never targets.
Training uses the last ``train_weeks`` origins; boosting stops early on the last
``validation_weeks`` origins. Short histories: ``validation_weeks`` is capped at a fifth
of the weeks given to ``fit``, ``lags`` at a quarter of the weeks before them, rolling
windows at all of them, ``train_weeks`` at what remains (recorded in ``adapted_``; the features
at predict time use the same effective values). ``num_threads`` defaults to 1: on a shared 2-core machine
LightGBM's OpenMP threads spin-wait and one thread measured 7x faster than two.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from crimecast.contracts import AreaGraph
from crimecast.data.panel import PanelArrays
from crimecast.forecast.features import (
    AREA_COVARIATE_NAMES,
    FeatureSpec,
    area_covariates,
    lag_features,
    trailing_weeks,
    week_of_year_circle,
)
from crimecast.forecast.models.base import FeatureForecaster, ModelError

MODEL_FILE = "lightgbm.txt"


class LightGBMPoisson(FeatureForecaster):
    """LightGBM with a Poisson objective on :func:`lag_features` (one model for all).

    Args:
        lags (int, optional): weekly lags per category. (default: ``4``)
        rolling_windows (list[int], optional): trailing-mean windows (weeks).
            (default: ``(4, 13, 52, 156)``)
        horizons (list[int], optional): horizons trained (a feature of every row); set
            from ``configs/evaluation.yaml``. (default: ``(1, 2, 3, 4)``)
        train_weeks (int, optional): most recent origin weeks used as training rows.
            (default: ``156``)
        validation_weeks (int, optional): last origins of the training data held out
            for early stopping. (default: ``8``)
        num_boost_round (int, optional): most boosting rounds. (default: ``400``)
        learning_rate (float, optional): shrinkage. (default: ``0.05``)
        num_leaves (int, optional): leaves per tree. (default: ``31``)
        min_data_in_leaf (int, optional): rows per leaf at least. (default: ``100``)
        feature_fraction (float, optional): share of features sampled per tree.
            (default: ``0.8``)
        lambda_l2 (float, optional): L2 penalty on leaf values. (default: ``1.0``)
        early_stopping_rounds (int, optional): stop after this many rounds without a
            better validation loss. (default: ``30``)
        num_threads (int, optional): LightGBM threads (see the module docstring).
            (default: ``1``)
        seed (int, optional): LightGBM seed (deterministic mode). (default: ``0``)
        mask_outages (bool, optional): outage weeks are never targets and are filled
            from the past in the features. (default: ``True``)
    """

    name: ClassVar[str] = "lightgbm_poisson"
    complexity: ClassVar[int] = 3

    def __init__(self, *, lags: int = 4,
                 rolling_windows: tuple[int, ...] | list[int] = (4, 13, 52, 156),
                 horizons: tuple[int, ...] | list[int] = (1, 2, 3, 4), train_weeks: int = 156,
                 validation_weeks: int = 8, num_boost_round: int = 400,
                 learning_rate: float = 0.05, num_leaves: int = 31, min_data_in_leaf: int = 100,
                 feature_fraction: float = 0.8, lambda_l2: float = 1.0,
                 early_stopping_rounds: int = 30, num_threads: int = 1, seed: int = 0,
                 mask_outages: bool = True) -> None:
        super().__init__(mask_outages=mask_outages)
        self.lags = lags
        self.rolling_windows = list(rolling_windows)
        self.horizons = list(horizons)
        self.train_weeks = train_weeks
        self.validation_weeks = validation_weeks
        self.num_boost_round = num_boost_round
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.feature_fraction = feature_fraction
        self.lambda_l2 = lambda_l2
        self.early_stopping_rounds = early_stopping_rounds
        self.num_threads = num_threads
        self.seed = seed
        self.booster_: Any = None
        self.feature_names_: list[str] | None = None

    @property
    def spec(self) -> FeatureSpec:
        """The features, with the lags and windows the fit adapted to its history."""
        lags = self.adapted_.get("lags", {}).get("effective", self.lags)
        windows = self.adapted_.get("rolling_windows", {}).get("effective",
                                                               self.rolling_windows)
        return FeatureSpec(lags=lags, rolling_windows=tuple(windows), seasonal=True,
                           spatial_lag=True)

    def _adapt_to_history(self, num_weeks: int) -> tuple[int, int]:
        """Cap the windows at the history (recorded in ``adapted_``); returns the
        effective (train_weeks, validation_weeks)."""
        minimum = 2 * max(self.horizons) + 4
        if num_weeks < minimum:
            raise self._too_short(num_weeks, minimum, "train_weeks")
        validation = self._adapt("validation_weeks", self.validation_weeks,
                                 max(2, num_weeks // 5))
        before = num_weeks - validation
        self._adapt("lags", self.lags, max(1, before // 4))
        # A rolling mean longer than the history is the mean of every week: cap it there
        # (windows that coincide merge).
        longest = max(4, before)
        windows = sorted({min(int(w), longest) for w in self.rolling_windows})
        if windows != sorted(int(w) for w in self.rolling_windows):
            self.adapted_["rolling_windows"] = {"configured": list(self.rolling_windows),
                                                "effective": windows}
        train = self._adapt("train_weeks", self.train_weeks, num_weeks - 1 - self.spec.lags)
        return train, validation

    def _design(self, data: PanelArrays, graph: AreaGraph, origins: np.ndarray,
                horizons: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
        """Feature rows for every (area, origin, horizon, category), in that nesting
        order: ``[A * O * H * C, F]``."""
        features, names = lag_features(data.counts, data.weeks, self.spec, graph=graph,
                                       categories=data.categories, outage=data.outage)
        cats = data.categories
        own_idx = [[names.index(n) for n in names if n.endswith(f"_{c}")] for c in cats]
        own_names = ["own_" + names[i][: -len(cats[0]) - 1] for i in own_idx[0]]
        covariates = area_covariates(graph.areas)  # [A, 8]
        num_areas = features.shape[0]
        origin_feats = features[:, origins, :]  # [A, O, F]
        step = pd.Timedelta(days=7)
        blocks = []
        for h in horizons:
            target_weeks = pd.DatetimeIndex(data.weeks[origins]) + h * step
            target_woy = week_of_year_circle(target_weeks)  # [O, 2]
            for j in range(len(cats)):
                own = origin_feats[:, :, own_idx[j]]
                extra = np.concatenate([
                    np.broadcast_to(covariates[:, None, :], (num_areas, len(origins),
                                                             covariates.shape[1])),
                    np.full((num_areas, len(origins), 1), h, np.float32),
                    np.full((num_areas, len(origins), 1), j, np.float32),
                    np.broadcast_to(target_woy[None].astype(np.float32),
                                    (num_areas, len(origins), 2)),
                ], axis=2)
                blocks.append(np.concatenate([own, origin_feats, extra], axis=2))
        # blocks: H*C arrays [A, O, F'] -> [A, O, H, C, F']
        stacked = np.stack(blocks, axis=2).reshape(num_areas, len(origins), len(horizons),
                                                   len(cats), -1)
        all_names = (own_names + names + list(AREA_COVARIATE_NAMES)
                     + ["horizon", "category", "target_woy_sin", "target_woy_cos"])
        return stacked.reshape(-1, stacked.shape[-1]), all_names

    def _fit(self, data: PanelArrays, graph: AreaGraph) -> None:
        import lightgbm as lgb

        num_weeks = data.counts.shape[1]
        horizons = tuple(self.horizons)
        train_weeks, validation_weeks = self._adapt_to_history(num_weeks)
        # Rolling means cover the available weeks while fewer exist, so short panels still
        # train (their long-window features are just noisier).
        first = max(self.spec.lags - 1, num_weeks - 1 - train_weeks, 0)
        origins = np.arange(first, num_weeks - 1)
        if len(origins) < 2:
            raise self._too_short(num_weeks, 2 * max(self.horizons) + 4, "train_weeks")
        x, names = self._design(data, graph, origins, horizons)
        # Targets in the same (area, origin, horizon, category) order; NaN = not observable.
        num_areas, num_cats = data.counts.shape[0], data.counts.shape[2]
        y = np.full((num_areas, len(origins), len(horizons), num_cats), np.nan, np.float64)
        for k, h in enumerate(horizons):
            target = origins + h
            ok = target < num_weeks
            ok[ok] &= ~data.outage[target[ok]]
            y[:, ok, k, :] = data.counts[:, target[ok], :]
        is_val = np.broadcast_to(
            (origins >= num_weeks - 1 - validation_weeks)[None, :, None, None], y.shape)
        y_flat, val_flat = y.ravel(), is_val.ravel()
        keep = ~np.isnan(y_flat)
        train = keep & ~val_flat
        valid = keep & val_flat
        params = {
            "objective": "poisson", "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction, "lambda_l2": self.lambda_l2,
            "num_threads": self.num_threads, "seed": self.seed, "deterministic": True,
            "force_row_wise": True, "verbosity": -1,
        }
        category_index = names.index("category")
        train_set = lgb.Dataset(x[train], y_flat[train], feature_name=names,
                                categorical_feature=[category_index], free_raw_data=True)
        callbacks = []
        valid_sets = []
        if valid.any() and train.any():
            valid_sets = [lgb.Dataset(x[valid], y_flat[valid], reference=train_set)]
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        self.booster_ = lgb.train(params, train_set, num_boost_round=self.num_boost_round,
                                  valid_sets=valid_sets, callbacks=callbacks)
        self.feature_names_ = names

    def _predict_mean(self, data: PanelArrays, graph: AreaGraph,
                      horizons: tuple[int, ...]) -> np.ndarray:
        data = trailing_weeks(data, self.spec)  # features of the last week only
        num_weeks = data.counts.shape[1]
        x, _ = self._design(data, graph, np.array([num_weeks - 1]), horizons)
        best = self.booster_.best_iteration or None
        mean = self.booster_.predict(x, num_iteration=best)
        return mean.reshape(data.counts.shape[0], len(horizons), len(data.categories))

    def _save_files(self, directory: Path) -> None:
        from crimecast.io import write_text

        write_text(directory / MODEL_FILE, self.booster_.model_to_string())

    def _load_files(self, directory: Path) -> None:
        import lightgbm as lgb

        path = directory / MODEL_FILE
        if not path.exists():
            raise ModelError(f"{path}: LightGBM model file missing")
        self.booster_ = lgb.Booster(model_str=path.read_text())
        self.feature_names_ = self.booster_.feature_name()
