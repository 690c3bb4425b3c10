"""Forecasting models: the registry and their settings.

Every model follows :class:`crimecast.models.base.Forecaster`. Build one by name::

    from crimecast.models import get_model, load_model
    model = get_model("historical_average", window=8).fit(panel, graph)
    forecast = model.predict(panel, graph)           # FORECAST_COLUMNS frame
    model.save("models/ha"); same = load_model("models/ha")

``get_model(name, **params)`` uses the class defaults overridden by ``params``;
:func:`configured_model` starts from ``configs/models.yaml`` instead. Model modules are
imported lazily, so loading a baseline never imports torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from crimecast.config import ConcernSettings
from crimecast.models.base import Forecaster, ModelError

# name -> "module:Class" (lazy: torch and lightgbm load only when their model is used)
_REGISTRY: dict[str, str] = {
    "historical_average": "crimecast.models.historical_average:HistoricalAverage",
    "seasonal_naive": "crimecast.models.seasonal_naive:SeasonalNaive",
    "lightgbm_poisson": "crimecast.models.lightgbm_poisson:LightGBMPoisson",
    "hotspot": "crimecast.models.hotspot:SelfExcitingHotspot",
    "gnn": "crimecast.models.gnn:GNNForecaster",
}
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)
BASELINE_NAMES: tuple[str, ...] = tuple(n for n in MODEL_NAMES if n != "gnn")


def model_class(name: str) -> type[Forecaster]:
    """The forecaster class registered under ``name``."""
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; choose one of {list(MODEL_NAMES)}")
    module_name, class_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_model(name: str, **params: Any) -> Forecaster:
    """A new, unfitted model: class defaults overridden by ``params``."""
    cls = model_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ModelError(f"model {name!r}: bad hyperparameters {sorted(params)}: {exc}") from None


def load_model(directory: str | Path) -> Forecaster:
    """Load whichever model :meth:`Forecaster.save` wrote into ``directory``."""
    return Forecaster.load(directory)


class BacktestSettings(BaseModel):
    """Rolling-origin evaluation settings (see :mod:`crimecast.backtest`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    backtest_weeks: int = Field(26, ge=1, description="origins span the last N weeks")
    step: int = Field(1, ge=1, description="weeks between consecutive origins")
    refit_every: int = Field(0, ge=0, description="refit every N origins; 0 = fit once")
    horizons: list[int] = Field(default_factory=lambda: [1, 2, 3, 4])
    area_shares: list[float] = Field(default_factory=lambda: [0.01, 0.05, 0.10])
    top_k: list[int] = Field(default_factory=lambda: [10])
    flag_share: float = Field(0.05, gt=0, le=1, description="area share flagged for disparity")


class ModelsSettings(ConcernSettings):
    """``configs/models.yaml``: hyperparameters per model, default model, backtest."""

    concern: ClassVar[str] = "models"
    default_model: str = "gnn"
    historical_average: dict[str, Any] = Field(default_factory=dict)
    seasonal_naive: dict[str, Any] = Field(default_factory=dict)
    lightgbm_poisson: dict[str, Any] = Field(default_factory=dict)
    hotspot: dict[str, Any] = Field(default_factory=dict)
    gnn: dict[str, Any] = Field(default_factory=dict)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)

    def params_for(self, name: str) -> dict[str, Any]:
        """The configured hyperparameters of model ``name``."""
        if name not in _REGISTRY:
            raise ModelError(f"unknown model {name!r}; choose one of {list(MODEL_NAMES)}")
        return dict(getattr(self, name))


def configured_model(name: str, settings: ModelsSettings | None = None,
                     **overrides: Any) -> Forecaster:
    """A new model with the hyperparameters from ``configs/models.yaml`` (or ``settings``),
    overridden by ``overrides``."""
    settings = settings or ModelsSettings.load()
    return get_model(name, **{**settings.params_for(name), **overrides})


__all__ = [
    "BASELINE_NAMES",
    "MODEL_NAMES",
    "BacktestSettings",
    "Forecaster",
    "ModelError",
    "ModelsSettings",
    "configured_model",
    "get_model",
    "load_model",
    "model_class",
]
