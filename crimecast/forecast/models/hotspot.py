"""Kernel-density / self-exciting hotspot model (a discrete-time Hawkes process on a graph).

Long-run intensity, smoothed over the adjacency (the "kernel density" part)::

    m[a, c]  = mean count of area a over the last ``background_weeks`` non-outage weeks
    m~       = (1 - smoothing) * m + smoothing * (W m)          W: row-normalised adjacency

Near-repeat excitation: every recorded crime raises the rate here and, with share ``eta``,
in the neighbouring areas, decaying by ``decay = exp(-1 / tau)`` per week::

    x[t]     = (1 - eta) * y[t] + eta * (W y[t])                 (outage weeks: x = E[x])
    S[t]     = decay * S[t-1] + x[t]                             (exponentially decayed sum)
    S_bar    = ((1 - eta) m + eta W m) / (1 - decay)             (its long-run mean)
    lambda[T + h] = max(m~ + theta * decay**h * (S[T] - S_bar), floor * m~)

Subtracting ``S_bar`` keeps the long-run mean at ``m~``: excitation moves the rate above it
after a burst and below it after a quiet spell. ``theta, tau, eta, smoothing`` are fitted
by grid search on the Poisson likelihood of one-step forecasts over the last
``validation_weeks`` of the training panel. Short histories: ``validation_weeks`` is
capped at a third of the weeks given to ``fit`` and ``background_weeks`` at the weeks
before them (recorded in ``adapted_``).
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from crimecast.contracts import AreaGraph
from crimecast.data.graph import row_normalised_adjacency
from crimecast.data.panel import PanelArrays
from crimecast.forecast.metrics import poisson_deviance
from crimecast.forecast.models.base import Forecaster, recent_mean


def _neighbour_mean(adj: sparse.csr_matrix, values: np.ndarray) -> np.ndarray:
    """``W @ values`` for ``values`` of shape ``[A, ...]``."""
    flat = values.reshape(values.shape[0], -1)
    return np.asarray(adj @ flat).reshape(values.shape)


class SelfExcitingHotspot(Forecaster):
    """Smoothed long-run intensity plus exponentially decaying near-repeat excitation.

    Args:
        background_weeks (int, optional): weeks of the long-run mean ``m``.
            (default: ``156``)
        validation_weeks (int, optional): one-step origins at the end of the training
            data on which the grid search scores ``theta, tau, eta, smoothing``.
            (default: ``52``)
        theta_grid (list[float], optional): candidate excitation strengths ``theta``.
        tau_grid (list[float], optional): candidate decay times ``tau`` (weeks).
        eta_grid (list[float], optional): candidate shares ``eta`` of excitation that
            spills into neighbouring areas.
        smoothing_grid (list[float], optional): candidate weights of the neighbours'
            mean in ``m~``.
        floor (float, optional): the rate never falls below ``floor * m~``.
            (default: ``0.05``)
        mask_outages (bool, optional): outage weeks add their expected excitation,
            not their (collapsed) counts. (default: ``True``)
    """

    name: ClassVar[str] = "hotspot"
    complexity: ClassVar[int] = 2

    def __init__(self, *, background_weeks: int = 156, validation_weeks: int = 52,
                 theta_grid: tuple[float, ...] | list[float] = (0.0, 0.1, 0.2, 0.4, 0.6,
                                                                 0.8, 1.0, 1.5),
                 tau_grid: tuple[float, ...] | list[float] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
                 eta_grid: tuple[float, ...] | list[float] = (0.0, 0.25, 0.5, 0.75),
                 smoothing_grid: tuple[float, ...] | list[float] = (0.0, 0.2, 0.4, 0.6),
                 floor: float = 0.05, mask_outages: bool = True) -> None:
        super().__init__(mask_outages=mask_outages)
        self.background_weeks = background_weeks
        self.validation_weeks = validation_weeks
        self.theta_grid = list(theta_grid)
        self.tau_grid = list(tau_grid)
        self.eta_grid = list(eta_grid)
        self.smoothing_grid = list(smoothing_grid)
        self.floor = floor
        self.params_: dict[str, float] | None = None

    @property
    def _background_weeks(self) -> int:
        entry = self.adapted_.get("background_weeks")
        return int(entry["effective"] if entry else self.background_weeks)

    @property
    def history_weeks(self) -> int:
        return self._background_weeks

    @staticmethod
    def _excitation(counts: np.ndarray, outage: np.ndarray, spill: np.ndarray,
                    background: np.ndarray, spill_background: np.ndarray, decay: float,
                    eta: float) -> tuple[np.ndarray, np.ndarray]:
        """``S[t] - S_bar`` for every week ``[A, W, C]`` and ``S_bar`` ``[A, C]``."""
        expected_x = (1 - eta) * background + eta * spill_background
        s_bar = expected_x / (1 - decay)
        state = s_bar.copy()
        out = np.empty(counts.shape, dtype=np.float64)
        for t in range(counts.shape[1]):
            x = expected_x if outage[t] else (1 - eta) * counts[:, t] + eta * spill[:, t]
            state = decay * state + x
            out[:, t] = state - s_bar
        return out, s_bar

    def _fit(self, data: PanelArrays, graph: AreaGraph) -> None:
        adj = row_normalised_adjacency(graph.edge_index, graph.num_nodes, graph.edge_weight)
        counts = data.counts.astype(np.float64)
        num_weeks = counts.shape[1]
        if num_weeks < 4:
            raise self._too_short(num_weeks, 4, "validation_weeks")
        # Keep two thirds of a short history for the background the grid search scores.
        validation = self._adapt("validation_weeks", self.validation_weeks, num_weeks // 3)
        first_val = max(1, num_weeks - validation)
        background_weeks = self._adapt("background_weeks", self.background_weeks, first_val)
        targets = [t for t in range(first_val, num_weeks) if not data.outage[t]]
        if not targets:
            self.params_ = {"theta": 0.0, "tau": 1.0, "eta": 0.0, "smoothing": 0.0}
            return
        # Background from the weeks before validation (no peeking at the targets).
        background = recent_mean(counts[:, :first_val], data.outage[:first_val],
                                 background_weeks)
        spill_bg = _neighbour_mean(adj, background)
        spill = _neighbour_mean(adj, counts)
        actual = counts[:, targets]
        best: tuple[float, dict[str, float]] = (np.inf, {})
        for tau, eta in itertools.product(self.tau_grid, self.eta_grid):
            decay = float(np.exp(-1.0 / tau))
            excess, _ = self._excitation(counts, data.outage, spill, background, spill_bg,
                                         decay, eta)
            lagged = excess[:, [t - 1 for t in targets]]
            for smoothing in self.smoothing_grid:
                smooth = (1 - smoothing) * background + smoothing * spill_bg
                for theta in self.theta_grid:
                    lam = np.maximum(smooth[:, None] + theta * decay * lagged,
                                     self.floor * smooth[:, None])
                    score = poisson_deviance(actual, lam)
                    if score < best[0]:
                        best = (score, {"theta": float(theta), "tau": float(tau),
                                        "eta": float(eta), "smoothing": float(smoothing)})
        self.params_ = best[1]

    def _predict_mean(self, data: PanelArrays, graph: AreaGraph,
                      horizons: tuple[int, ...]) -> np.ndarray:
        p = self.params_ or {}
        adj = row_normalised_adjacency(graph.edge_index, graph.num_nodes, graph.edge_weight)
        counts = data.counts.astype(np.float64)
        background = recent_mean(counts, data.outage, self._background_weeks)
        spill_bg = _neighbour_mean(adj, background)
        decay = float(np.exp(-1.0 / p["tau"]))
        excess, _ = self._excitation(counts, data.outage, _neighbour_mean(adj, counts),
                                     background, spill_bg, decay, p["eta"])
        smooth = (1 - p["smoothing"]) * background + p["smoothing"] * spill_bg
        last = excess[:, -1]
        out = np.stack([np.maximum(smooth + p["theta"] * decay**h * last, self.floor * smooth)
                        for h in horizons], axis=1)
        return out

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"params": self.params_}, {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.params_ = {k: float(v) for k, v in state["params"].items()}
