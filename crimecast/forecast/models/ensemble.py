"""Ensemble: a weighted average of member forecasters, weights fitted on held-out weeks.

For member forecasts ``mu_m`` (``[A, H, C]``) the ensemble forecasts::

    mu = sum_m w_m mu_m          w_m >= 0, sum_m w_m = 1

The weights maximise the Poisson log-likelihood (equivalently, minimise the Poisson
deviance) of the members' forecasts of the last ``validation_weeks`` weeks of the data
given to ``fit``, every horizon pooled: the members are fitted on the weeks before them
and forecast them walk-forward, as in a backtest, so the weights judge out-of-sample
forecasts. The members are not refitted afterwards (like a backtest, they condition on
the newer weeks at predict time). The ensemble's NB dispersion per category is fitted by
moments on the same held-out forecasts.

Members are any registered forecasters, with their own hyperparameters
(``member_params``; ``configs/models.yaml`` fills them from the members' own blocks).
``save`` writes each member into its own sub-directory through the member's own
:meth:`~crimecast.forecast.models.base.Forecaster.save`, so nothing is pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import optimize

from crimecast.contracts import AreaGraph
from crimecast.data.panel import PanelArrays
from crimecast.forecast.models import get_model, load_model
from crimecast.forecast.models.base import Forecaster, ModelError, fit_dispersion

MEMBERS_DIR = "members"


def fit_weights(actual: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Simplex weights ``[M]`` maximising the Poisson log-likelihood of
    ``sum_m w_m members[m]`` for ``actual``. ``members``: ``[M, N]`` forecasts of the
    ``N`` cells in ``actual``."""
    y = np.asarray(actual, float).ravel()
    mus = np.maximum(np.asarray(members, float).reshape(len(members), -1), 1e-8)
    count = len(mus)
    if count == 1:
        return np.ones(1)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        mu = np.maximum(w @ mus, 1e-8)
        value = float(np.mean(mu - y * np.log(mu)))
        grad = (mus @ (1.0 - y / mu)) / len(y)
        return value, grad

    result = optimize.minimize(loss, np.full(count, 1.0 / count), jac=True, method="SLSQP",
                               bounds=[(0.0, 1.0)] * count,
                               constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0,
                                             "jac": lambda w: np.ones_like(w)}],
                               options={"maxiter": 200, "ftol": 1e-12})
    weights = np.clip(result.x, 0.0, None)
    return weights / weights.sum()


class EnsembleForecaster(Forecaster):
    """Weighted average of member forecasters (see the module docstring).

    Args:
        members (list[str], optional): registered model names.
            (default: ``("seasonal_naive", "lightgbm_poisson", "hotspot", "gnn")``)
        member_params (dict[str, dict], optional): hyperparameters per member name
            (missing members use their class defaults). (default: ``None``)
        horizons (list[int], optional): horizons the members forecast; set from
            ``configs/evaluation.yaml``. (default: ``(1, 2, 3, 4)``)
        validation_weeks (int, optional): last weeks of the data given to ``fit`` on
            which the weights are fitted. (default: ``8``)
        mask_outages (bool, optional): outage weeks are never targets of the weight fit.
            (default: ``True``)
    """

    name: ClassVar[str] = "ensemble"
    complexity: ClassVar[int] = 5

    def __init__(self, *, members: tuple[str, ...] | list[str] = (
                     "seasonal_naive", "lightgbm_poisson", "hotspot", "gnn"),
                 member_params: dict[str, dict[str, Any]] | None = None,
                 horizons: tuple[int, ...] | list[int] = (1, 2, 3, 4),
                 validation_weeks: int = 8, mask_outages: bool = True) -> None:
        super().__init__(mask_outages=mask_outages)
        if not members:
            raise ModelError("ensemble.members must name at least one model",
                             file="configs/models.yaml", key="ensemble.members")
        if "ensemble" in members:
            raise ModelError("an ensemble cannot be its own member",
                             file="configs/models.yaml", key="ensemble.members")
        self.members = list(members)
        self.member_params = {k: dict(v) for k, v in (member_params or {}).items()}
        self.horizons = list(horizons)
        self.validation_weeks = validation_weeks
        self.members_: list[Forecaster] = []
        self.weights_: np.ndarray | None = None

    def _new_members(self) -> list[Forecaster]:
        return [get_model(name, **self.member_params.get(name, {})) for name in self.members]

    def source_modules(self) -> list[Any]:
        modules = super().source_modules()
        for member in self._new_members():
            modules += member.source_modules()
        return modules

    @property
    def history_weeks(self) -> int:
        members = self.members_ or self._new_members()
        return max(member.history_weeks for member in members)

    @property
    def max_horizon(self) -> int:  # type: ignore[override]
        return max(self.horizons)

    def _fit(self, data: PanelArrays, graph: AreaGraph) -> None:
        num_weeks = data.counts.shape[1]
        validation = self._adapt("validation_weeks", self.validation_weeks, num_weeks // 4)
        first = num_weeks - 1 - validation
        if first < 1 or validation < 1:
            raise self._too_short(num_weeks, 8, "validation_weeks")
        self.members_ = [member.fit_arrays(data.until(first), graph)
                         for member in self._new_members()]
        horizons = tuple(self.horizons)
        actual, forecasts = [], []
        for origin in range(first, num_weeks - 1):
            past = data.until(origin)
            means = np.stack([m.predict_mean_arrays(past, graph, horizons)
                              for m in self.members_])  # [M, A, H, C]
            for j, h in enumerate(horizons):
                target = origin + h
                if target >= num_weeks or data.outage[target]:
                    continue
                actual.append(data.counts[:, target, :])
                forecasts.append(means[:, :, j, :])
        if not actual:
            self.weights_ = np.full(len(self.members_), 1.0 / len(self.members_))
            return
        y = np.stack(actual)  # [N, A, C]
        mus = np.stack(forecasts, axis=1)  # [M, N, A, C]
        self.weights_ = fit_weights(y, mus)
        combined = np.tensordot(self.weights_, mus, axes=1)  # [N, A, C]
        self.dispersion_ = np.array([fit_dispersion(y[..., c], combined[..., c])
                                     for c in range(y.shape[-1])])

    def _predict_mean(self, data: PanelArrays, graph: AreaGraph,
                      horizons: tuple[int, ...]) -> np.ndarray:
        if self.weights_ is None or not self.members_:
            raise ModelError("ensemble: not fitted")
        means = [m.predict_mean_arrays(data, graph, horizons) for m in self.members_]
        return np.tensordot(self.weights_, np.stack(means), axes=1)

    def member_weights(self) -> dict[str, float]:
        """The fitted weight of each member, by name."""
        weights = [] if self.weights_ is None else list(self.weights_)
        return {name: float(w) for name, w in zip(self.members, weights, strict=False)}

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"weights": [float(w) for w in self.weights_]}, {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = np.asarray(state["weights"], dtype=np.float64)

    def _save_files(self, directory: Path) -> None:
        for i, member in enumerate(self.members_):
            member.save(directory / MEMBERS_DIR / f"{i}_{member.name}")

    def _load_files(self, directory: Path) -> None:
        self.members_ = []
        for i, name in enumerate(self.members):
            path = directory / MEMBERS_DIR / f"{i}_{name}"
            if not path.is_dir():
                raise ModelError(f"{path}: ensemble member '{name}' missing")
            self.members_.append(load_model(path))
