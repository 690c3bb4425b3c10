"""MLflow tracking: what every training run records, and registration.

Every training run is one MLflow run holding

- params: the model's hyperparameters (``model.*``), the windows it capped at the history
  it was given (``effective.*``) and the data shape (``data.*``);
- tags: the DVC data version of the inputs (``data.version``, ``data.panel_md5``,
  ``data.graph_md5``: md5s from ``dvc.lock`` when it lists them, else computed from the
  files), the git commit (``git.commit``), the model name;
- metrics: the rolling-origin backtest summary (overall, by group, every target and
  horizon, gap closed; the ceilings and the interval calibration are in
  ``evaluation/summary.json``);
- artifacts: the model as a :class:`crimecast.pyfunc.CrimecastModel` pyfunc with signature
  and input example, the backtest table (``evaluation/backtest.csv``) and a map of
  forecast vs actual (``evaluation/forecast_vs_actual.png``).

The model is registered under ``registered_model`` and receives the ``@challenger`` alias
(:func:`crimecast.lifecycle.registry.set_alias`, which also records the change in the
audit log). The store itself is reached through :mod:`crimecast.lifecycle.store`.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from crimecast.contracts import ARTIFACTS, HORIZONS, AreaGraph, Panel
from crimecast.data.version import data_version
from crimecast.forecast.backtest import backtest_model
from crimecast.forecast.models import get_model
from crimecast.lifecycle.provenance import git_commit, pip_requirements
from crimecast.lifecycle.registry import set_alias
from crimecast.lifecycle.store import TrackingSettings, mlflow_client


def flat_metrics(summary: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten a nested backtest summary into ``{"a.b.c": float}`` MLflow metrics
    (non-numeric leaves dropped; MLflow metric keys may contain dots)."""
    out: dict[str, float] = {}
    for key, value in summary.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        name = name.replace("@", "_at_").replace("%", "pct").replace(" ", "_")
        if isinstance(value, dict):
            out.update(flat_metrics(value, name))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float) and pd.notna(value):
            out[name] = float(value)
    return out


@dataclass
class TrainResult:
    """What a training run produced: MLflow ids, the registered version, the scores."""

    run_id: str
    model_name: str
    version: str
    model_uri: str
    data_version: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "model_name": self.model_name, "version": self.version,
                "model_uri": self.model_uri, "data_version": self.data_version,
                "metrics": self.metrics, "params": self.params}


def forecast_map_png(backtest_rows: pd.DataFrame, areas_path: Path, target: Path) -> Path | None:
    """Two side-by-side choropleths of the last backtest week (horizon 1, all categories
    summed): forecast mean and actual count per area. Returns ``target``, or ``None`` when
    ``areas_path`` is missing. ``backtest_rows`` needs columns area_id, origin, horizon,
    mean (forecast) and actual (observed count)."""
    if not areas_path.exists() or backtest_rows.empty:
        return None
    import geopandas as gpd
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = backtest_rows[backtest_rows["horizon"] == backtest_rows["horizon"].min()]
    rows = rows[rows["origin"] == rows["origin"].max()]
    per_area = rows.groupby("area_id", observed=True)[["mean", "actual"]].sum()
    areas = gpd.read_parquet(areas_path)[["area_id", "geometry"]]
    areas = areas.merge(per_area, left_on="area_id", right_index=True, how="left").fillna(0)
    vmax = float(max(areas["mean"].max(), areas["actual"].max(), 1.0))
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
    for ax, column, title in ((axes[0], "mean", "forecast (expected count)"),
                              (axes[1], "actual", "actual count")):
        areas.plot(column=column, ax=ax, cmap="OrRd", vmin=0, vmax=vmax, legend=True,
                   edgecolor="0.7", linewidth=0.2)
        ax.set_title(title)
        ax.set_axis_off()
    week = pd.Timestamp(rows["origin"].max()) + pd.Timedelta(weeks=int(rows["horizon"].min()))
    fig.suptitle(f"Week of {week.date()}: forecast vs actual (all categories)")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target


def log_pyfunc(forecaster: Any, graph: AreaGraph, panel: Panel, metadata: dict[str, Any],
               settings: TrackingSettings) -> Any:
    """Log ``forecaster`` (fitted) as a crimecast pyfunc in the active run and register it.

    The model stores ``graph`` and the last ``settings.history_weeks`` of ``panel`` (at least
    the forecaster's own ``history_weeks``, so served forecasts equal the backtested ones).
    Returns MLflow's ``ModelInfo`` (``registered_model_version`` is the new version).
    """
    import mlflow
    from mlflow.models import infer_signature

    from crimecast.pyfunc import CrimecastModel, recent_history, save_bundle

    history = recent_history(panel, max(settings.history_weeks,
                                        getattr(forecaster, "history_weeks", 0)))
    python_model = CrimecastModel(metadata)
    input_example = pd.DataFrame({"horizon": list(HORIZONS)})
    with tempfile.TemporaryDirectory(prefix="crimecast-model-") as tmp, warnings.catch_warnings():
        # MLflow warns that int columns cannot hold NaN and that cloudpickle is used; both
        # are expected here (horizon is never missing; the class is imported by reference).
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
        artifacts = save_bundle(forecaster, graph, history, Path(tmp))
        output_example = forecaster.predict(history, graph, HORIZONS)
        signature = infer_signature(input_example, output_example)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            artifacts=artifacts,
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements(),
            registered_model_name=settings.registered_model,
            metadata={"crimecast": {k: v for k, v in metadata.items() if k != "backtest_metrics"}},
        )


def train_and_register(
    model_name: str,
    panel: Panel,
    graph: AreaGraph,
    params: dict[str, Any] | None = None,
    *,
    settings: TrackingSettings | None = None,
    backtest: Callable[[Any, Panel, AreaGraph], tuple[pd.DataFrame, dict[str, Any]]] | None = None,
    actor: str | None = None,
    alias: str = "challenger",
    run_name: str | None = None,
    extra_tags: dict[str, str] | None = None,
    reason: str | None = None,
) -> TrainResult:
    """Backtest, fit and log one model, register it and give it ``alias``.

    ``backtest(forecaster, panel, graph) -> (per-row scores, summary)`` defaults to
    :func:`crimecast.forecast.backtest.backtest_model` (the cached rolling-origin backtest); the summary
    becomes the run's metrics and the model's ``backtest_metrics``. Then the model is fitted
    on the whole ``panel`` and logged as a pyfunc. ``reason`` goes to the audit record of
    the alias change. ``model_name`` is a name in
    :mod:`crimecast.forecast.models` (or ``"module:Class"``); ``params`` its hyperparameters.
    """
    import mlflow

    settings = settings or TrackingSettings.load()
    client = mlflow_client(settings)
    backtest = backtest or backtest_model
    forecaster = get_model(model_name, **(params or {}))
    versions = data_version()
    commit = git_commit()
    full_params = forecaster.get_params()
    tags = {
        "crimecast.stage": "train", "model.name": model_name, "git.commit": commit,
        "mlflow.source.git.commit": commit.removesuffix("-dirty"),
        "data.version": versions["version"],
        **{f"data.{k}": v for k, v in versions.items() if k != "version"},
        **(extra_tags or {}),
    }
    with mlflow.start_run(run_name=run_name or f"train-{model_name}", tags=tags) as run:
        mlflow.log_params({f"model.{k}": _param_text(v) for k, v in full_params.items()})
        # The exact hyperparameters, so promotion can refit this model on other windows.
        mlflow.log_dict(_jsonable(full_params), "model_params.json")
        mlflow.log_params({
            "model.name": model_name, "data.unit": versions["unit"],
            "data.areas": graph.num_nodes, "data.edges": graph.num_edges,
            "data.weeks": len(panel.weeks), "data.first_week": str(panel.weeks[0].date()),
            "data.last_week": str(panel.last_week.date()),
            "data.categories": ",".join(panel.categories),
            "tracking.history_weeks": settings.history_weeks,
        })
        rows, summary = backtest(get_model(model_name, **(params or {})), panel, graph)
        # Ceilings and the calibration table live in evaluation/summary.json; as metrics
        # they would triple the run's metric count.
        metrics = flat_metrics({k: v for k, v in summary.items()
                                if k not in ("ceilings", "calibration")})
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory(prefix="crimecast-eval-") as tmp:
            table = Path(tmp) / "backtest.csv"
            rows.to_csv(table, index=False)
            mlflow.log_artifact(str(table), artifact_path="evaluation")
            mlflow.log_dict(summary, "evaluation/summary.json")
            for name, group_table in group_tables(summary).items():
                path = Path(tmp) / f"{name}.csv"
                group_table.to_csv(path, index=False)
                mlflow.log_artifact(str(path), artifact_path="evaluation")
            if settings.log_map:
                png = forecast_map_png(rows, ARTIFACTS.areas, Path(tmp) / "forecast_vs_actual.png")
                if png is not None:
                    mlflow.log_artifact(str(png), artifact_path="evaluation")
        forecaster.fit(panel, graph)
        # The intervals the backtest's validation weeks calibrated are the ones served.
        forecaster.calibration_ = summary.get("calibration") or None
        if forecaster.adapted_:
            mlflow.log_params({f"effective.{k}": _param_text(v["effective"])
                               for k, v in forecaster.adapted_.items()})
        metadata = {
            "model_name": model_name,
            "model_params": {k: _param_text(v) for k, v in full_params.items()},
            "data_version": versions["version"],
            "unit": versions["unit"],
            "data_md5": {k: v for k, v in versions.items() if k not in ("version", "unit")},
            "first_observed_week": str(panel.weeks[0].date()),
            "last_observed_week": str(panel.last_week.date()),
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "backtest_metrics": metrics,
            "run_id": run.info.run_id,
            "git_commit": commit,
            # the words the API's /model and the report use for this city and its areas
            "city": city_card(),
        }
        info = log_pyfunc(forecaster, graph, panel, metadata, settings)
        version = str(info.registered_model_version)
        client.set_model_version_tag(settings.registered_model, version, "model.name", model_name)
        client.set_model_version_tag(settings.registered_model, version, "data.version",
                                     versions["version"])
        client.set_model_version_tag(settings.registered_model, version, "data.unit",
                                     versions["unit"])
        describe_version(client, settings.registered_model, version, model_name, panel,
                         versions["version"], metrics, run.info.run_id)
    set_alias(alias, version, actor=actor, event="register", settings=settings,
              reason=reason or f"trained {model_name} in run {run.info.run_id}")
    return TrainResult(run_id=run.info.run_id, model_name=model_name, version=version,
                       model_uri=f"models:/{settings.registered_model}/{version}",
                       data_version=versions["version"], metrics=metrics, params=full_params)


def group_tables(summary: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The backtest summary's per-group sections as flat tables (one row per group, and
    per target where the section has targets): ``by_group``, ``disparity``,
    ``headline_by_group``, logged as ``evaluation/<name>.csv``."""
    tables = {}
    for name in ("by_group", "disparity", "headline_by_group"):
        section = summary.get(name)
        if not isinstance(section, dict) or not section:
            continue
        rows = []
        for key, value in section.items():
            if not isinstance(value, dict):
                continue
            nested = all(isinstance(v, dict) for v in value.values()) and value
            if nested:
                rows += [{"target": key, "group": group, **flat_metrics(metrics)}
                         for group, metrics in value.items()]
            else:
                rows.append({"group": key, **flat_metrics(value)})
        if rows:
            tables[name] = pd.DataFrame(rows)
    return tables


def describe_version(client: Any, model: str, version: str, model_name: str, panel: Panel,
                     data_version: str, metrics: dict[str, float], run_id: str) -> None:
    """Descriptions the MLflow UI shows: the registered model's, and this version's."""
    from crimecast.lifecycle.store import REGISTERED_MODEL_DESCRIPTION

    client.update_registered_model(model, description=REGISTERED_MODEL_DESCRIPTION)
    deviance = metrics.get("overall.poisson_deviance")
    client.update_model_version(model, version, description=(
        f"{model_name} trained on {len(panel.weeks)} weeks of recorded crime up to the week of "
        f"{panel.last_week.date()} (data version {data_version}, run {run_id}). Backtest "
        + (f"Poisson deviance {deviance:.4f}. " if deviance is not None else "")
        + "Whether it serves is decided by the promotion gate: see the promotion.* tags."))


def city_card() -> dict[str, str]:
    """The city a model was trained for (configs/data.yaml ``city``): name, unit label,
    data source and licence, as the model's metadata carries them to serving."""
    from crimecast.data.settings import DataSettings

    settings = DataSettings.load()
    city = settings.city
    return {"name": city.name, "unit_label": settings.area_label, "unit": settings.units.tag,
            "source": city.source, "licence": city.licence}


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=str))


def _param_text(value: Any) -> Any:
    """MLflow params are strings; keep scalars, render lists/dicts compactly."""
    if isinstance(value, list | tuple | dict):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return value
