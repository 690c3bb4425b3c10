"""Seasonal naive: the same weeks in past years, blended with a seasonally adjusted level.

For origin ``T`` (last observed week), horizon ``h``, area ``a``, category ``c``::

    S[a, c]  = mean of y[a, T+h - 52k + d, c]  for years k = 1..max_years, |d| ≤ halfwidth
               (the classic "same week last year", smoothed over neighbouring weeks/years)
    L[a, c]  = mean of y[a, c] over the last ``window`` weeks (the recent level)
    I[c]     = citywide seasonal index: in past years, the city total around week T+h-52k
               divided by the city total over the ``window`` weeks before T-52k
    mean     = blend * S[a, c] + (1 - blend) * L[a, c] * I[c]

``blend = 1`` is pure seasonal naive; ``blend = None`` picks it from ``blend_grid`` by the
Poisson deviance of one-step forecasts on the last ``validation_weeks`` training weeks.
Outage weeks are excluded from every mean. Short histories: ``validation_weeks`` is
capped at half the weeks given to ``fit``, ``window`` at the weeks before them and
``max_years`` at the whole years available; with less than a year of history the model is
the recent level (blend 0). The caps are recorded in ``adapted_``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from crimecast.contracts import AreaGraph
from crimecast.data.panel import PanelArrays
from crimecast.forecast.metrics import poisson_deviance
from crimecast.forecast.models.base import Forecaster, recent_mean


class SeasonalNaive(Forecaster):
    """Same-weeks-last-years forecast blended with a seasonally adjusted recent level.

    Args:
        season_length (int, optional): weeks in a season. (default: ``52``)
        halfwidth (int, optional): also average this many weeks either side of the same
            week in past years. (default: ``1``)
        max_years (int, optional): past years averaged in ``S``. (default: ``3``)
        window (int, optional): weeks of the recent level ``L``. (default: ``26``)
        blend (float, optional): weight of ``S`` against ``L * I``; ``None`` fits it
            from ``blend_grid``. (default: ``None``)
        blend_grid (list[float], optional): candidate blends. (default:
            ``(0.0, 0.1, 0.25, 0.5, 0.75, 1.0)``)
        validation_weeks (int, optional): one-step origins at the end of the training
            data that pick the blend. (default: ``26``)
        mask_outages (bool, optional): leave outage weeks out of every mean.
            (default: ``True``)
    """

    name: ClassVar[str] = "seasonal_naive"
    complexity: ClassVar[int] = 1

    def __init__(self, *, season_length: int = 52, halfwidth: int = 1, max_years: int = 3,
                 window: int = 26, blend: float | None = None,
                 blend_grid: tuple[float, ...] | list[float] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0),
                 validation_weeks: int = 26, mask_outages: bool = True) -> None:
        super().__init__(mask_outages=mask_outages)
        if blend is not None and not 0 <= blend <= 1:
            raise ValueError(f"seasonal_naive.blend must be in [0, 1] or None, got {blend}")
        self.season_length = season_length
        self.halfwidth = halfwidth
        self.max_years = max_years
        self.window = window
        self.blend = blend
        self.blend_grid = list(blend_grid)
        self.validation_weeks = validation_weeks
        self.blend_: float | None = None

    @property
    def history_weeks(self) -> int:
        return max(self.season_length * self.max_years + self.halfwidth, self.window)

    def _effective(self, key: str) -> int:
        entry = self.adapted_.get(key)
        return int(entry["effective"] if entry else getattr(self, key))

    def _components(self, counts: np.ndarray, outage: np.ndarray,
                    horizons: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """``S`` and ``L * I``, each ``[A, H, C]``, for origin = the last week of ``counts``."""
        num_areas, num_weeks, num_cats = counts.shape
        last = num_weeks - 1
        window = self._effective("window")
        level = recent_mean(counts, outage, window)  # [A, C]
        city = counts.sum(axis=0)  # [W, C]
        seasonal = np.empty((num_areas, len(horizons), num_cats))
        adjusted = np.empty_like(seasonal)
        for j, h in enumerate(horizons):
            same_weeks, ratios = [], []
            for k in range(1, self._effective("max_years") + 1):
                centre = last + h - k * self.season_length
                weeks = [w for w in range(centre - self.halfwidth, centre + self.halfwidth + 1)
                         if 0 <= w <= last and not outage[w]]
                if not weeks:
                    continue
                same_weeks.extend(weeks)
                base_end = last - k * self.season_length
                base = [w for w in range(base_end - window + 1, base_end + 1)
                        if 0 <= w and not outage[w]]
                if base:
                    ratios.append(city[weeks].mean(axis=0)
                                  / np.maximum(city[base].mean(axis=0), 1e-9))
            if same_weeks:
                seasonal[:, j, :] = counts[:, same_weeks, :].mean(axis=1)
            else:
                seasonal[:, j, :] = level
            index = np.mean(ratios, axis=0) if ratios else np.ones(num_cats)
            adjusted[:, j, :] = level * index[None, :]
        return seasonal, adjusted

    def _fit(self, data: PanelArrays, graph: AreaGraph) -> None:
        num_weeks = data.counts.shape[1]
        if num_weeks < 2:
            raise self._too_short(num_weeks, 2, "window")
        validation = self._adapt("validation_weeks", self.validation_weeks, num_weeks // 2)
        self._adapt("window", self.window, num_weeks - validation)
        # Past years that exist at all; with none the forecast is the recent level.
        self._adapt("max_years", self.max_years, num_weeks // self.season_length)
        if num_weeks < self.season_length:
            self.adapted_["max_years"] = {"configured": self.max_years, "effective": 0}
        if self.blend is not None and self._effective("max_years") > 0:
            self.blend_ = float(self.blend)
            return
        origins = [t for t in range(num_weeks - validation - 1, num_weeks - 1)
                   if t >= self.season_length and not data.outage[t + 1]]
        if not origins:
            self.blend_ = 0.0
            return
        parts = [self._components(data.counts[:, : t + 1], data.outage[: t + 1], (1,))
                 for t in origins]
        actual = np.stack([data.counts[:, t + 1] for t in origins])
        seasonal = np.stack([s[:, 0] for s, _ in parts])
        adjusted = np.stack([a[:, 0] for _, a in parts])
        scores = {b: poisson_deviance(actual, b * seasonal + (1 - b) * adjusted)
                  for b in self.blend_grid}
        self.blend_ = float(min(scores, key=scores.get))

    def _predict_mean(self, data: PanelArrays, graph: AreaGraph,
                      horizons: tuple[int, ...]) -> np.ndarray:
        seasonal, adjusted = self._components(data.counts, data.outage, horizons)
        blend = float(self.blend_ if self.blend_ is not None else 0.0)
        return blend * seasonal + (1 - blend) * adjusted

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"blend": self.blend_}, {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.blend_ = float(state["blend"])
