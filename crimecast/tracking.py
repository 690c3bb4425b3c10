"""MLflow tracking: where runs go, what every training run records, and registration.

Every training run is one MLflow run holding

- params: the model's hyperparameters (``model.*``) and the data shape (``data.*``);
- tags: the DVC data version of the inputs (``data.version``, ``data.panel_md5``,
  ``data.graph_md5``: md5s from ``dvc.lock`` when it lists them, else computed from the
  files), the git commit (``git.commit``), the model name;
- metrics: the rolling-origin backtest summary (overall and by group);
- artifacts: the model as a :class:`crimecast.pyfunc.CrimecastModel` pyfunc with signature
  and input example, the backtest table (``evaluation/backtest.csv``) and a map of
  forecast vs actual (``evaluation/forecast_vs_actual.png``).

The model is registered under ``registered_model`` and receives the ``@challenger`` alias
(:func:`crimecast.registry.set_alias`, which also records the change in the audit log).

The default store is SQLite under the project home (``sqlite:////<home>/state/mlflow.db``)
with artifacts in ``<home>/state/mlartifacts``; any MLflow tracking server works by setting
``tracking_uri`` (``CRIMECAST_TRACKING__TRACKING_URI=http://...``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import yaml

from crimecast.config import ConcernSettings
from crimecast.contracts import ARTIFACTS, HORIZONS, AreaGraph, Panel
from crimecast.paths import project_home, resolve


class TrackingSettings(ConcernSettings):
    """configs/tracking.yaml: where MLflow keeps runs and models."""

    concern: ClassVar[str] = "tracking"
    tracking_uri: str = ""
    artifact_root: str = "state/mlartifacts"
    experiment: str = "crimecast"
    registered_model: str = "crimecast"
    history_weeks: int = 160
    log_map: bool = True

    def resolved_tracking_uri(self) -> str:
        """The configured URI, or SQLite at ``<home>/state/mlflow.db`` (absolute path)."""
        if self.tracking_uri:
            return self.tracking_uri
        db = project_home() / "state" / "mlflow.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{db}"

    def resolved_artifact_location(self) -> str | None:
        """A ``file://`` URI for the experiment's artifacts when the store is local
        (SQLite); ``None`` for a tracking server, which then chooses (e.g. S3)."""
        if self.resolved_tracking_uri().startswith(("http://", "https://", "databricks")):
            return None
        root = resolve(self.artifact_root)
        root.mkdir(parents=True, exist_ok=True)
        return root.as_uri()


# Packages a served model needs, pinned to the versions it was trained with. Listing
# them avoids MLflow's requirement inference, which reloads the model in a subprocess.
_RUNTIME_PACKAGES = ("mlflow", "torch", "torch-geometric", "pandas", "numpy", "scipy",
                     "lightgbm", "pyarrow", "scikit-learn", "pydantic", "pyyaml")


def configure(settings: TrackingSettings | None = None) -> Any:
    """Point MLflow at the configured store, make sure the experiment exists (with its
    artifact location) and make it current. Returns an ``MlflowClient``."""
    import mlflow
    from mlflow import MlflowClient

    settings = settings or TrackingSettings.load()
    # Artifact download bars would flood logs of every model load (serving reloads too).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = settings.resolved_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        client.create_experiment(settings.experiment,
                                 artifact_location=settings.resolved_artifact_location())
    mlflow.set_experiment(settings.experiment)
    return client


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_version(files: dict[str, Path] | None = None, lock_file: Path | None = None) -> dict[str, str]:
    """The data version of the model inputs.

    ``files`` maps a short name to a path (default: ``panel`` and ``graph`` under
    artifacts/). Each md5 comes from ``dvc.lock`` when a stage lists that output, else from
    hashing the file (``"missing"`` when absent). Returns ``{"<name>_md5": md5, ...,
    "version": <12-hex digest of all of them>}``.
    """
    files = files or {"panel": ARTIFACTS.panel, "graph": ARTIFACTS.graph}
    locked = _dvc_lock_md5s(lock_file or project_home() / "dvc.lock")
    out: dict[str, str] = {}
    for name, path in files.items():
        path = Path(path)
        key = _relative(path)
        if key in locked:
            out[f"{name}_md5"] = locked[key]
        elif path.exists():
            out[f"{name}_md5"] = file_md5(path)
        else:
            out[f"{name}_md5"] = "missing"
    combined = "\n".join(f"{k}={v}" for k, v in sorted(out.items()))
    out["version"] = hashlib.md5(combined.encode()).hexdigest()[:12]
    return out


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_home()))
    except ValueError:
        return str(path)


def _dvc_lock_md5s(lock_file: Path) -> dict[str, str]:
    """``{out path: md5}`` for every stage output listed in dvc.lock (empty if none)."""
    if not lock_file.exists():
        return {}
    lock = yaml.safe_load(lock_file.read_text()) or {}
    found: dict[str, str] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if "path" in out and "md5" in out:
                found[str(out["path"])] = str(out["md5"])
    return found


def git_commit(directory: Path | None = None) -> str:
    """The HEAD commit of the repository holding ``directory`` (``"unknown"`` outside
    git), with ``-dirty`` appended when tracked files have uncommitted changes."""
    where = str(directory or project_home())
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True, timeout=10,
                               check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty.strip() else commit


def pip_requirements() -> list[str]:
    """Pinned requirements of the serving runtime (installed versions)."""
    pins = []
    for package in _RUNTIME_PACKAGES:
        try:
            pins.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


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
    per_area = rows.groupby("area_id")[["mean", "actual"]].sum()
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
    :func:`crimecast.registry.backtest_model` (rolling origin, C's backtest); the summary
    becomes the run's metrics and the model's ``backtest_metrics``. Then the model is fitted
    on the whole ``panel`` and logged as a pyfunc. ``reason`` goes to the audit record of
    the alias change. ``model_name`` is a name in
    :mod:`crimecast.models` (or ``"module:Class"``); ``params`` its hyperparameters.
    """
    import mlflow

    from crimecast.pyfunc import build_forecaster
    from crimecast.registry import backtest_model, set_alias

    settings = settings or TrackingSettings.load()
    client = configure(settings)
    backtest = backtest or backtest_model
    forecaster = build_forecaster(model_name, params)
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
            "model.name": model_name, "data.areas": graph.num_nodes, "data.edges": graph.num_edges,
            "data.weeks": len(panel.weeks), "data.first_week": str(panel.weeks[0].date()),
            "data.last_week": str(panel.last_week.date()),
            "data.categories": ",".join(panel.categories),
            "tracking.history_weeks": settings.history_weeks,
        })
        rows, summary = backtest(build_forecaster(model_name, params), panel, graph)
        metrics = flat_metrics(summary)
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory(prefix="crimecast-eval-") as tmp:
            table = Path(tmp) / "backtest.csv"
            rows.to_csv(table, index=False)
            mlflow.log_artifact(str(table), artifact_path="evaluation")
            mlflow.log_dict(summary, "evaluation/summary.json")
            if settings.log_map:
                png = forecast_map_png(rows, ARTIFACTS.areas, Path(tmp) / "forecast_vs_actual.png")
                if png is not None:
                    mlflow.log_artifact(str(png), artifact_path="evaluation")
        forecaster.fit(panel, graph)
        metadata = {
            "model_name": model_name,
            "model_params": {k: _param_text(v) for k, v in full_params.items()},
            "data_version": versions["version"],
            "data_md5": {k: v for k, v in versions.items() if k != "version"},
            "last_observed_week": str(panel.last_week.date()),
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "backtest_metrics": metrics,
            "run_id": run.info.run_id,
            "git_commit": commit,
        }
        info = log_pyfunc(forecaster, graph, panel, metadata, settings)
        version = str(info.registered_model_version)
        client.set_model_version_tag(settings.registered_model, version, "model.name", model_name)
        client.set_model_version_tag(settings.registered_model, version, "data.version",
                                     versions["version"])
    set_alias(alias, version, actor=actor, event="register", settings=settings,
              reason=reason or f"trained {model_name} in run {run.info.run_id}")
    return TrainResult(run_id=run.info.run_id, model_name=model_name, version=version,
                       model_uri=f"models:/{settings.registered_model}/{version}",
                       data_version=versions["version"], metrics=metrics, params=full_params)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=str))


def _param_text(value: Any) -> Any:
    """MLflow params are strings; keep scalars, render lists/dicts compactly."""
    if isinstance(value, list | tuple | dict):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return value
