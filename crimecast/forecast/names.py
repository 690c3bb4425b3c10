"""The names of the forecasting models, importable without numpy, pandas or scipy (the
CLI's ``--model`` help lists them); :mod:`crimecast.forecast.models` builds models from it."""

from __future__ import annotations

# name -> "module:Class" (lazy: torch and lightgbm load only when their model is used)
MODEL_REGISTRY: dict[str, str] = {
    "historical_average": "crimecast.forecast.models.historical_average:HistoricalAverage",
    "seasonal_naive": "crimecast.forecast.models.seasonal_naive:SeasonalNaive",
    "lightgbm_poisson": "crimecast.forecast.models.lightgbm_poisson:LightGBMPoisson",
    "hotspot": "crimecast.forecast.models.hotspot:SelfExcitingHotspot",
    "gnn": "crimecast.forecast.models.gnn:GNNForecaster",
    "ensemble": "crimecast.forecast.models.ensemble:EnsembleForecaster",
}
MODEL_NAMES: tuple[str, ...] = tuple(MODEL_REGISTRY)
