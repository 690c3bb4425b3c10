"""Forecasting models: the registry and their settings.

Every model follows :class:`crimecast.forecast.models.base.Forecaster`. Build one by name::

    from crimecast.forecast.models import get_model, load_model
    model = get_model("historical_average", window=8).fit(panel, graph)
    forecast = model.predict(panel, graph)           # FORECAST_COLUMNS frame
    model.save("models/ha"); same = load_model("models/ha")

``get_model(name, **params)`` uses the class defaults overridden by ``params``;
:func:`configured_model` starts from ``configs/models.yaml`` instead. Model modules are
imported lazily, so loading a baseline never imports torch.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from crimecast.config import ConcernSettings, ConfigError
from crimecast.forecast.models.base import Forecaster, ModelError, read_meta
from crimecast.forecast.names import MODEL_REGISTRY as _REGISTRY
from crimecast.forecast.settings import EvaluationSettings

# _REGISTRY: name -> "module:Class" (lazy: torch and lightgbm load only when their model
# is used); it lives in crimecast.forecast.names so the CLI's help lists the names
# without importing this package.
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)
#: The models without learned representations (the gate's and the benchmark's baselines).
BASELINE_NAMES: tuple[str, ...] = tuple(n for n in MODEL_NAMES if n not in ("gnn", "ensemble"))


def model_class(name: str) -> type[Forecaster]:
    """The forecaster class registered under ``name``, or a ``"package.module:Class"`` path
    for a forecaster defined outside this package (tests, a city's own model)."""
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        return getattr(importlib.import_module(module_name), class_name)
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
    return model_class(read_meta(Path(directory))["name"]).load(directory)


class ModelsSettings(ConcernSettings):
    """``configs/models.yaml``: hyperparameters per model and the default model."""

    concern: ClassVar[str] = "models"
    default_model: str = "gnn"
    historical_average: dict[str, Any] = Field(default_factory=dict)
    seasonal_naive: dict[str, Any] = Field(default_factory=dict)
    lightgbm_poisson: dict[str, Any] = Field(default_factory=dict)
    hotspot: dict[str, Any] = Field(default_factory=dict)
    gnn: dict[str, Any] = Field(default_factory=dict)
    ensemble: dict[str, Any] = Field(default_factory=dict)

    def params_for(self, name: str) -> dict[str, Any]:
        """The configured hyperparameters of model ``name``. Models that forecast a fixed
        set of horizons (LightGBM, the GNN, the ensemble) get ``horizons`` from
        ``configs/evaluation.yaml``, the one place that sets them; the ensemble's members
        get their own blocks' hyperparameters (``member_params``)."""
        if name not in _REGISTRY:
            raise ModelError(f"unknown model {name!r}; choose one of {list(MODEL_NAMES)}")
        params = dict(getattr(self, name))
        if "horizons" in params:
            raise ConfigError(f"configs/models.yaml: key '{name}.horizons': horizons are set "
                              "once, in configs/evaluation.yaml key 'horizons'; remove it here")
        if "horizons" in inspect.signature(model_class(name).__init__).parameters:
            params["horizons"] = list(EvaluationSettings.load().horizons)
        if name == "ensemble":
            if "member_params" in params:
                raise ConfigError("configs/models.yaml: key 'ensemble.member_params': the "
                                  "members' hyperparameters come from their own blocks; "
                                  "remove it here")
            members = params.get("members") or inspect.signature(
                model_class(name).__init__).parameters["members"].default
            params["member_params"] = {m: self.params_for(m) for m in members}
        return params


def configured_model(name: str, settings: ModelsSettings | None = None,
                     **overrides: Any) -> Forecaster:
    """A new model with the hyperparameters from ``configs/models.yaml`` (or ``settings``),
    overridden by ``overrides``."""
    settings = settings or ModelsSettings.load()
    return get_model(name, **{**settings.params_for(name), **overrides})


__all__ = [
    "BASELINE_NAMES",
    "MODEL_NAMES",
    "Forecaster",
    "ModelError",
    "ModelsSettings",
    "configured_model",
    "get_model",
    "load_model",
    "model_class",
]
