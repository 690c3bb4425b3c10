"""The MLflow pyfunc wrapper that carries a trained forecaster to serving.

A logged crimecast model is self-contained: besides the fitted forecaster it owns the
area graph it was trained on and the most recent weeks of the panel, so that

    model = mlflow.pyfunc.load_model("models:/crimecast@champion")
    model.predict(pd.DataFrame({"horizon": [1, 2, 3, 4]}))

returns the full forecast table (:data:`crimecast.contracts.FORECAST_COLUMNS`: every
area x category x requested horizon) for the weeks after the last observed week, in a
fresh process that imports only ``crimecast`` (never ``training``).

``model.unwrap_python_model().metadata`` is a plain dict with ``model_name``,
``model_params``, ``data_version``, ``data_md5``, ``last_observed_week`` (ISO date),
``trained_at`` (ISO UTC), ``backtest_metrics`` (flat ``{metric: float}``), ``run_id`` and
``git_commit``.

Artifacts of the MLflow model (directories written by :func:`save_bundle`):
``forecaster/`` (the model's own ``save(dir)``), ``graph/`` (``graph.npz`` + ``areas.parquet``
without geometry), ``history/panel.parquet`` (the recent panel).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from crimecast.contracts import FORECAST_COLUMNS, HORIZONS, AreaGraph, Panel, validate_forecast
from crimecast.forecast.models import model_class


def recent_history(panel: Panel, weeks: int) -> Panel:
    """The last ``weeks`` weeks of ``panel`` (what a forecast conditions on)."""
    keep = panel.weeks[-weeks:]
    counts = panel.counts[panel.counts["week"] >= keep[0]].reset_index(drop=True)
    return Panel(counts)


def save_bundle(forecaster: Any, graph: AreaGraph, history: Panel, directory: Path) -> dict[str, str]:
    """Write the three artifact directories into ``directory``; returns the
    ``{artifact name: path}`` map that :func:`mlflow.pyfunc.log_model` takes."""
    paths = {
        "forecaster": directory / "forecaster",
        "graph": directory / "graph",
        "history": directory / "history",
    }
    paths["forecaster"].mkdir(parents=True, exist_ok=True)
    forecaster.save(paths["forecaster"])
    paths["graph"].mkdir(parents=True, exist_ok=True)
    graph.save(paths["graph"] / "graph.npz", paths["graph"] / "areas.parquet")
    paths["history"].mkdir(parents=True, exist_ok=True)
    history.counts.to_parquet(paths["history"] / "panel.parquet", index=False)
    return {name: str(path) for name, path in paths.items()}


def requested_horizons(model_input: pd.DataFrame | dict | list | None) -> tuple[int, ...]:
    """The sorted unique horizons asked for: a frame/dict with a ``horizon`` column, a list
    of ints, or nothing (= all of :data:`HORIZONS`). Raises ``ValueError`` naming bad ones."""
    if model_input is None:
        return HORIZONS
    if isinstance(model_input, pd.DataFrame):
        if "horizon" not in model_input.columns:
            raise ValueError(f"model input needs a 'horizon' column; got columns {list(model_input.columns)}")
        values = model_input["horizon"].tolist()
    elif isinstance(model_input, dict):
        values = list(np.atleast_1d(model_input.get("horizon", HORIZONS)))
    else:
        values = list(model_input)
    horizons = sorted({int(h) for h in values})
    bad = [h for h in horizons if h not in HORIZONS]
    if bad or not horizons:
        raise ValueError(f"horizon must be in {list(HORIZONS)}; got {bad or values}")
    return tuple(horizons)


class CrimecastModel(mlflow.pyfunc.PythonModel):
    """Pyfunc around a fitted crimecast forecaster, its graph and its recent history.

    Input: a DataFrame with an int column ``horizon`` (values in 1-4).
    Output: a DataFrame with :data:`FORECAST_COLUMNS`, one row per area x category x
    requested horizon, forecasting from ``metadata["last_observed_week"]``.
    """

    # The logged signature is the schema (a frame with an int ``horizon`` column); skip
    # MLflow's type-hint-based validation, which only warns about our untyped predict.
    _skip_type_hint_validation = True

    def __init__(self, metadata: dict[str, Any]) -> None:
        self.metadata = dict(metadata)
        self._forecaster: Any = None
        self._graph: AreaGraph | None = None
        self._history: Panel | None = None

    def load_context(self, context: Any) -> None:
        artifacts = context.artifacts
        cls = model_class(self.metadata["model_name"])
        self._forecaster = cls.load(Path(artifacts["forecaster"]))
        graph_dir = Path(artifacts["graph"])
        self._graph = AreaGraph.load(graph_dir / "graph.npz", graph_dir / "areas.parquet")
        self._history = Panel(pd.read_parquet(Path(artifacts["history"]) / "panel.parquet"))

    @property
    def graph(self) -> AreaGraph:
        if self._graph is None:
            raise RuntimeError("model context not loaded; use mlflow.pyfunc.load_model")
        return self._graph

    @property
    def history(self) -> Panel:
        if self._history is None:
            raise RuntimeError("model context not loaded; use mlflow.pyfunc.load_model")
        return self._history

    def forecast(self, horizons: tuple[int, ...] = HORIZONS) -> pd.DataFrame:
        """The forecast table for ``horizons`` from the stored history (FORECAST_COLUMNS)."""
        table = self._forecaster.predict(self.history, self.graph, horizons)
        table = validate_forecast(table, f"{self.metadata['model_name']} forecast")
        table = table[list(FORECAST_COLUMNS)].sort_values(["horizon", "category", "area_id"])
        return table.reset_index(drop=True)

    # No type hints on predict's inputs: MLflow would try to derive a schema from them;
    # the explicit signature logged with the model is the schema.
    def predict(self, context, model_input, params=None):
        """``model_input``: frame with an int ``horizon`` column -> forecast table."""
        return self.forecast(requested_horizons(model_input))
