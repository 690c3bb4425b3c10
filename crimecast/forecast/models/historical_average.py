"""Historical average: the recent N-week mean per area and category.

The simplest serious baseline. With ``window=None`` the window is chosen at fit time from
``candidate_windows`` by the mean Poisson deviance of one-step forecasts over the last
``validation_weeks`` weeks of the training panel; the forecast is the same for every horizon.

Short histories: the candidate windows are capped at the weeks given to ``fit`` (longer
ones would all be the mean of every week) and ``validation_weeks`` at the weeks after the
first (recorded in ``adapted_``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from crimecast.contracts import AreaGraph
from crimecast.data.panel import PanelArrays
from crimecast.forecast.metrics import poisson_deviance
from crimecast.forecast.models.base import Forecaster, recent_mean


class HistoricalAverage(Forecaster):
    """Mean of the last ``window`` non-outage weeks, per area × category.

    Args:
        window (int, optional): weeks averaged; ``None`` picks it from
            ``candidate_windows``. (default: ``None``)
        candidate_windows (list[int], optional): windows tried when ``window`` is None.
            (default: ``(4, 8, 13, 26, 52, 104, 156)``)
        validation_weeks (int, optional): one-step origins at the end of the training
            data that pick the window. (default: ``26``)
        mask_outages (bool, optional): leave outage weeks out of the mean.
            (default: ``True``)
    """

    name: ClassVar[str] = "historical_average"
    complexity: ClassVar[int] = 0

    def __init__(self, *, window: int | None = None,
                 candidate_windows: tuple[int, ...] | list[int] = (4, 8, 13, 26, 52, 104, 156),
                 validation_weeks: int = 26, mask_outages: bool = True) -> None:
        super().__init__(mask_outages=mask_outages)
        if window is not None and window < 1:
            raise ValueError(f"historical_average.window must be ≥ 1 or None, got {window}")
        self.window = window
        self.candidate_windows = list(candidate_windows)
        self.validation_weeks = validation_weeks
        self.window_: int | None = None

    @property
    def history_weeks(self) -> int:
        return int(self.window_ or self.window or max(self.candidate_windows))

    def _fit(self, data: PanelArrays, graph: AreaGraph) -> None:
        num_weeks = data.counts.shape[1]
        if num_weeks < 2:
            raise self._too_short(num_weeks, 2, "window")
        if self.window is not None:
            self.window_ = self._adapt("window", int(self.window), num_weeks)
            return
        # Windows longer than the history are all the same mean of every week: one
        # candidate, named by the weeks it really spans.
        validation = self._adapt("validation_weeks", self.validation_weeks, num_weeks - 1)
        candidates = sorted({min(int(w), num_weeks) for w in self.candidate_windows})
        if candidates != sorted(int(w) for w in self.candidate_windows):
            self.adapted_["candidate_windows"] = {"configured": list(self.candidate_windows),
                                                  "effective": candidates}
        origins = [t for t in range(num_weeks - validation - 1, num_weeks - 1)
                   if t >= 0 and not data.outage[t + 1]]
        if not origins:
            self.window_ = int(min(candidates))
            return
        scores = {}
        for window in candidates:
            expected = np.stack([recent_mean(data.counts[:, : t + 1], data.outage[: t + 1],
                                             window) for t in origins])
            actual = np.stack([data.counts[:, t + 1] for t in origins])
            scores[window] = poisson_deviance(actual, expected)
        self.window_ = int(min(scores, key=scores.get))

    def _predict_mean(self, data: PanelArrays, graph: AreaGraph,
                      horizons: tuple[int, ...]) -> np.ndarray:
        level = recent_mean(data.counts, data.outage, int(self.window_ or 1))  # [A, C]
        return np.repeat(level[:, None, :], len(horizons), axis=1)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"window": self.window_}, {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.window_ = int(state["window"])
