"""The one owner of MLflow access: where runs and models live, and the client to reach them.

Every part that talks to MLflow (tracking, the registry, the gate, serving, monitoring)
gets its client from :func:`mlflow_client`, which points MLflow at the configured store
and makes sure the experiment exists (with its artifact location) once per process and
store, not on every call.

The default store is SQLite under the project home (``sqlite:////<home>/state/mlflow.db``)
with artifacts in ``<home>/state/mlartifacts``; any MLflow tracking server works by setting
``tracking_uri`` (``CRIMECAST_TRACKING__TRACKING_URI=http://...``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import model_validator

from crimecast.config import ConcernSettings
from crimecast.paths import resolve, state_sqlite_url

if TYPE_CHECKING:
    from mlflow import MlflowClient

class TrackingSettings(ConcernSettings):
    """configs/tracking.yaml: where MLflow keeps runs and models."""

    concern: ClassVar[str] = "tracking"
    tracking_uri: str = ""
    artifact_root: str = "state/mlartifacts"
    experiment: str = "crimecast"
    registered_model: str = "crimecast"
    history_weeks: int = 160
    log_map: bool = True

    @model_validator(mode="before")
    @classmethod
    def _model_per_unit(cls, data: Any) -> Any:
        """Units other than tract register under ``<registered_model>-<unit>`` (e.g.
        ``crimecast-h3r9``), so each unit keeps its own versions and ``@champion``."""
        from crimecast.data.settings import DataSettings

        if not isinstance(data, dict):
            return data
        tag = DataSettings.load().units.tag
        name = str(data.get("registered_model", "crimecast"))
        if tag != "tract" and not name.endswith(f"-{tag}"):
            data = {**data, "registered_model": f"{name}-{tag}"}
        return data

    def resolved_tracking_uri(self) -> str:
        """The configured URI, or SQLite at ``<home>/state/mlflow.db`` (absolute path)."""
        return self.tracking_uri or state_sqlite_url("mlflow.db")

    def resolved_artifact_location(self) -> str | None:
        """A ``file://`` URI for the experiment's artifacts when the store is local
        (SQLite); ``None`` for a tracking server, which then chooses (e.g. S3)."""
        if self.resolved_tracking_uri().startswith(("http://", "https://", "databricks")):
            return None
        root = resolve(self.artifact_root)
        root.mkdir(parents=True, exist_ok=True)
        return root.as_uri()


#: MLflow 3's experiment-type tag: "custom_model_development" opens the UI in its
#: machine-learning view (runs, metrics, models) instead of the GenAI one (traces, prompts).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: The tag the MLflow UI shows as an experiment's description.
DESCRIPTION_TAG = "mlflow.note.content"
EXPERIMENT_DESCRIPTION = (
    "crimecast: weekly forecasts of recorded crime per place (areas and weeks, never "
    "persons). Each `train-*` run backtests one model on rolling origins, logs its metrics, "
    "per-group tables (evaluation/) and the fitted model, and registers it as @challenger; "
    "`evaluate` runs compare it with the champion and baselines on the same weeks; "
    "promotion decisions are tagged on the model versions (promotion.*) and stored as "
    "promotion/decision-*.json artifacts.")
REGISTERED_MODEL_DESCRIPTION = (
    "Weekly crime forecasts per area and category, with 80 % and 95 % intervals. "
    "@champion is the version the forecasting API serves: it moves only through the "
    "promotion gate (accuracy and fairness on the same backtest weeks, `crimecast promote`) "
    "or a rollback, both recorded in the audit log; an alias moved here by hand is detected "
    "and raised as an alert. @challenger is the newest trained candidate.")

_configured: dict[tuple[str, str], MlflowClient] = {}
_lock = threading.Lock()


def mlflow_client(settings: TrackingSettings | None = None) -> MlflowClient:
    """An ``MlflowClient`` on the configured store, with MLflow's fluent API (``mlflow.
    start_run`` ...) pointed at the same store and experiment.

    The first call per (store, experiment) creates the experiment if needed; later calls
    only re-point the fluent API (cheap), so every module can call this freely.
    """
    import mlflow
    from mlflow import MlflowClient

    settings = settings or TrackingSettings.load()
    uri = settings.resolved_tracking_uri()
    key = (uri, settings.experiment)
    with _lock:
        # Artifact download bars would flood logs of every model load (serving reloads too).
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = _configured.get(key)
        if client is None:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            experiment = client.get_experiment_by_name(settings.experiment)
            if experiment is None:
                experiment_id = client.create_experiment(
                    settings.experiment, artifact_location=settings.resolved_artifact_location(),
                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND,
                          DESCRIPTION_TAG: EXPERIMENT_DESCRIPTION})
            elif experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
                # An experiment created before crimecast set its type: set it once.
                experiment_id = experiment.experiment_id
                client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
                client.set_experiment_tag(experiment_id, DESCRIPTION_TAG, EXPERIMENT_DESCRIPTION)
            _configured[key] = client
        mlflow.set_experiment(settings.experiment)
    return client


def store_exists(settings: TrackingSettings | None = None) -> bool:
    """False when the embedded SQLite store has not been created yet (readers such as
    monitoring ask before touching it, so they never create an empty store)."""
    uri = (settings or TrackingSettings.load()).resolved_tracking_uri()
    return not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///"):]).exists()
