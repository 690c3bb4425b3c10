"""``evaluate``: backtest a registered version and the baselines on the same windows."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import pandas as pd

from crimecast.contracts import AreaGraph, Panel
from crimecast.data.version import data_version
from crimecast.forecast.backtest import backtest_model
from crimecast.forecast.models import ModelsSettings, get_model
from crimecast.lifecycle.audit import CHALLENGER
from crimecast.lifecycle.gate import PromotionSettings, gate_scores
from crimecast.lifecycle.provenance import git_commit
from crimecast.lifecycle.registry import RegistryError, model_spec, resolve_alias
from crimecast.lifecycle.store import TrackingSettings, mlflow_client
from crimecast.lifecycle.tracking import flat_metrics


def evaluate(panel: Panel, graph: AreaGraph, *, alias: str = CHALLENGER,
             version: str | None = None, settings: PromotionSettings | None = None,
             tracking: TrackingSettings | None = None,
             backtest: Callable[..., tuple[pd.DataFrame, dict[str, Any]]] | None = None,
             ) -> dict[str, Any]:
    """Backtest ``version`` (default: the version holding ``alias``) and the configured
    baselines on the same windows, as one MLflow run (``crimecast.stage=evaluate``; metrics prefixed with the
    model label, the challenger's per-row scores as ``evaluation/backtest.csv``).

    Returns ``{"version", "alias", "model", "models": {label: overall metrics},
    "gate": {label: gate scores}, "by_group": {...}, "run_id"}``.
    """
    import mlflow

    settings = settings or PromotionSettings.load()
    tracking = tracking or TrackingSettings.load()
    client = mlflow_client(tracking)
    backtest = backtest or backtest_model
    version = version or resolve_alias(alias, tracking)
    if version is None:
        raise RegistryError(f"no version of '{tracking.registered_model}' holds @{alias}; "
                            "run `crimecast train` first")
    name, params = model_spec(version, tracking)
    configured = ModelsSettings.load()
    # Baselines with their configured hyperparameters, even when the challenger is the same
    # model class (tuned params differ): the table then shows what tuning bought.
    candidates = {f"v{version}:{name}": (name, params),
                  **{b: (b, configured.params_for(b)) for b in settings.baselines}}
    versions = data_version()
    payload: dict[str, Any] = {"version": version, "alias": alias, "model": name,
                               "data_version": versions["version"], "models": {}, "gate": {}}
    with mlflow.start_run(run_name=f"evaluate-v{version}", tags={
            "crimecast.stage": "evaluate", "model.name": name, "model.version": version,
            "data.version": versions["version"], "git.commit": git_commit()}) as run:
        for label, (model_name, model_params) in candidates.items():
            rows, summary = backtest(get_model(model_name, **(model_params or {})), panel, graph)
            payload["models"][label] = summary["overall"]
            payload["gate"][label] = gate_scores(summary, settings)
            prefix = "challenger" if label.startswith("v") else label
            mlflow.log_metrics(flat_metrics(summary["overall"], prefix))
            if label.startswith("v"):
                payload["by_group"] = summary.get("by_group", {})
                payload["disparity"] = summary.get("disparity", {})
                with tempfile.TemporaryDirectory(prefix="crimecast-eval-") as tmp:
                    table = f"{tmp}/backtest.csv"
                    rows.to_csv(table, index=False)
                    mlflow.log_artifact(table, artifact_path="evaluation")
        mlflow.log_dict(payload, "evaluation/evaluation.json")
        payload["run_id"] = run.info.run_id
    client.set_model_version_tag(tracking.registered_model, version, "evaluation.run_id",
                                 payload["run_id"])
    return payload
