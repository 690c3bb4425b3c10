"""The model registry: versions of the registered model and their aliases.

Versions of the registered model (``crimecast`` by default) carry two aliases:
``@challenger`` (set by every training run) and ``@champion`` (what serving loads).
Every alias change made here is recorded in the audit log (:mod:`crimecast.lifecycle.audit`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crimecast.errors import CrimecastError
from crimecast.lifecycle.audit import CHALLENGER, CHAMPION, alias_history, append_audit
from crimecast.lifecycle.store import TrackingSettings, mlflow_client

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["CHALLENGER", "CHAMPION", "MANUAL_ACTOR", "RegistryError", "detect_manual_changes",
           "model_info", "model_spec", "move_alias", "resolve_alias", "set_alias"]

#: Who the audit log names for an alias change made outside crimecast.
MANUAL_ACTOR = "unknown (outside crimecast)"


class RegistryError(CrimecastError, LookupError):
    """The registry lacks what was asked for (no such alias, no previous champion)."""


def resolve_alias(alias: str, settings: TrackingSettings | None = None) -> str | None:
    """The version (as a string) holding ``alias``, or ``None`` when no version does."""
    from mlflow.exceptions import MlflowException

    settings = settings or TrackingSettings.load()
    client = mlflow_client(settings)
    try:
        return str(client.get_model_version_by_alias(settings.registered_model, alias).version)
    except MlflowException:
        return None


def move_alias(client: MlflowClient, model: str, alias: str, version: str | None,
               previous: str | None) -> dict[str, Any]:
    """Point ``alias`` at ``version`` (``None`` removes it) on ``model`` and return the
    change ``{"alias", "from", "to"}``; the caller records it in the audit log."""
    if version is None:
        client.delete_registered_model_alias(model, alias)
    else:
        client.set_registered_model_alias(model, alias, version)
    return {"alias": alias, "from": previous, "to": version}


def set_alias(alias: str, version: str | None, *, actor: str | None = None,
              event: str = "set_alias", reason: str = "", settings: TrackingSettings | None = None) -> dict[str, Any]:
    """Point ``alias`` at ``version`` (``None`` removes it) and record the change in the
    audit log. Returns the audit record."""
    settings = settings or TrackingSettings.load()
    client = mlflow_client(settings)
    previous = resolve_alias(alias, settings)
    change = move_alias(client, settings.registered_model, alias, version, previous)
    decision = "registered" if event == "register" else "alias_set"
    return append_audit({"event": event, "decision": decision, "actor": actor, "reason": reason,
                         "registered_model": settings.registered_model,
                         "challenger_version": version if alias == CHALLENGER else None,
                         "champion_version": version if alias == CHAMPION else None,
                         "alias_changes": [change]})


def _run_for_version(client: MlflowClient, model: str, version: str) -> tuple[Any, Any]:
    mv = client.get_model_version(model, version)
    return mv, client.get_run(mv.run_id)


def model_info(alias: str = CHAMPION, settings: TrackingSettings | None = None) -> dict[str, Any]:
    """What the registry knows about the version holding ``alias``: ``version``, ``alias``,
    ``registered_model``, ``run_id``, ``model_name``, ``data_version``,
    ``last_observed_week``, ``git_commit``, ``created_at``, ``backtest_metrics`` and the
    version's ``tags`` (including the last promotion decision). Raises
    :class:`RegistryError` when no version holds the alias."""
    settings = settings or TrackingSettings.load()
    client = mlflow_client(settings)
    version = resolve_alias(alias, settings)
    if version is None:
        raise RegistryError(f"no version of registered model '{settings.registered_model}' holds "
                            f"@{alias} (store {settings.resolved_tracking_uri()}); "
                            "run `crimecast train` and `crimecast promote` first")
    mv, run = _run_for_version(client, settings.registered_model, version)
    return {
        "version": version,
        "alias": alias,
        "registered_model": settings.registered_model,
        "run_id": mv.run_id,
        "model_name": run.data.tags.get("model.name"),
        "data_version": run.data.tags.get("data.version"),
        "last_observed_week": run.data.params.get("data.last_week"),
        "git_commit": run.data.tags.get("git.commit"),
        "created_at": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(),
        "backtest_metrics": dict(run.data.metrics),
        "tags": dict(mv.tags),
    }


def model_spec(version: str, settings: TrackingSettings | None = None) -> tuple[str, dict[str, Any]]:
    """(model name, hyperparameters) of a registered version, read from its run's
    ``model_params.json`` artifact, so the same model can be refitted on other windows."""
    import mlflow.artifacts

    settings = settings or TrackingSettings.load()
    client = mlflow_client(settings)
    mv, run = _run_for_version(client, settings.registered_model, version)
    params = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/model_params.json")
    return run.data.tags["model.name"], params




def recorded_aliases() -> dict[str, str | None]:
    """Where the audit log says each alias points now (its last recorded change)."""
    state: dict[str, str | None] = {}
    for change in alias_history():
        state[change["alias"]] = None if change["to"] is None else str(change["to"])
    return state


def detect_manual_changes(settings: TrackingSettings | None = None) -> list[dict[str, Any]]:
    """Compare the registry's ``@champion`` and ``@challenger`` with the audit log and
    record every difference as an audit entry with event and decision ``manual``.

    MLflow keeps no alias history, and its UI can move an alias directly, past the
    promotion gate; this is how such a change becomes visible (``monitor run`` and
    ``monitor check`` call it). Returns the new audit records (empty when they agree).
    """
    settings = settings or TrackingSettings.load()
    recorded = recorded_aliases()
    records = []
    for alias in (CHAMPION, CHALLENGER):
        current = resolve_alias(alias, settings)
        known = recorded.get(alias)
        if current == known:
            continue
        was = f"v{known}" if known else "no version"
        now = f"v{current}" if current else "no version"
        records.append(append_audit({
            "event": "manual", "decision": "manual", "actor": MANUAL_ACTOR,
            "reason": (f"@{alias} moved from {was} to {now} outside crimecast (e.g. the "
                       "MLflow UI), bypassing the promotion gate; detected by crimecast"),
            "registered_model": settings.registered_model,
            "champion_version": current if alias == CHAMPION else None,
            "challenger_version": current if alias == CHALLENGER else None,
            "alias_changes": [{"alias": alias, "from": known, "to": current}]}))
    return records
