"""Promotion and rollback: move ``@champion`` only through the gate, and write it down.

``promote`` backtests the challenger and the reference on the SAME rolling-origin windows
(:func:`crimecast.forecast.backtest.backtest_model`; both models are refitted from their
logged hyperparameters on the current data, so neither sees the future) and moves
``@champion`` only if the gate (:func:`crimecast.lifecycle.gate.gate`) passes. With no
champion yet the reference is the best baseline (lowest deviance) of ``baselines``. Every
decision and every alias change is appended to the audit log and written as model-version
tags.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from crimecast.contracts import AreaGraph, Panel
from crimecast.forecast.backtest import backtest_model
from crimecast.forecast.models import ModelsSettings, get_model
from crimecast.lifecycle.audit import CHALLENGER, CHAMPION, append_audit, champion_lineage
from crimecast.lifecycle.gate import GateResult, PromotionSettings, gate, gate_scores, group_sizes
from crimecast.lifecycle.registry import RegistryError, model_spec, move_alias, resolve_alias
from crimecast.lifecycle.store import TrackingSettings, mlflow_client
from crimecast.lifecycle.tracking import train_and_register

if TYPE_CHECKING:
    from mlflow import MlflowClient


def promote(panel: Panel, graph: AreaGraph, *, actor: str | None = None,
            settings: PromotionSettings | None = None, tracking: TrackingSettings | None = None,
            backtest: Callable[..., tuple[pd.DataFrame, dict[str, Any]]] | None = None,
            evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the promotion gate on ``@challenger`` and move ``@champion`` if it passes.

    Both models are refitted from their logged specs and backtested on ``panel``/``graph``
    with the same windows. ``evaluation`` (the evaluate stage's payload), when given, must
    be of the current challenger; its MLflow run is named in the decision. Returns the
    audit record (``decision`` promoted | refused). A refusal is a decision, not an error;
    a missing or unevaluated challenger raises RegistryError.
    """
    settings = settings or PromotionSettings.load()
    tracking = tracking or TrackingSettings.load()
    client = mlflow_client(tracking)
    backtest = backtest or backtest_model
    model = tracking.registered_model
    challenger = resolve_alias(CHALLENGER, tracking)
    if challenger is None:
        raise RegistryError(f"no version of '{model}' holds @{CHALLENGER}: run `crimecast train`")
    if evaluation is not None and str(evaluation.get("version")) != challenger:
        raise RegistryError(f"the evaluation is of v{evaluation.get('version')} but @{CHALLENGER} "
                            f"is v{challenger}: run the evaluate stage (`crimecast evaluate`) first")
    champion = resolve_alias(CHAMPION, tracking)

    backtests: dict[str, tuple[Any, dict[str, Any]]] = {}

    def scores_of(label: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        backtests[label] = backtest(get_model(name, **(params or {})), panel, graph)
        return gate_scores(backtests[label][1], settings)

    name, params = model_spec(challenger, tracking)
    challenger_scores = scores_of("challenger", name, params)
    best = None
    if champion is not None:
        reference_label = f"champion v{champion}"
        reference_scores = scores_of("champion", *model_spec(champion, tracking))
    else:
        configured = ModelsSettings.load()
        baselines = {b: scores_of(b, b, configured.params_for(b)) for b in settings.baselines}
        best = min(baselines, key=lambda b: baselines[b]["poisson_deviance"])
        reference_label, reference_scores = f"baseline {best}", baselines[best]

    if champion == challenger:
        verdict = GateResult(False, f"refused: v{challenger} already holds @{CHAMPION}")
    else:
        verdict = gate(challenger_scores, reference_scores, settings, group_sizes(graph))
    changes = []
    if verdict.promote:
        changes.append(move_alias(client, model, CHAMPION, challenger, champion))
        changes.append(move_alias(client, model, CHALLENGER, None, challenger))
    record = append_audit({
        "event": "promote", "decision": "promoted" if verdict.promote else "refused",
        "actor": actor, "reason": f"{verdict.reason} (reference: {reference_label})",
        "registered_model": model, "challenger_version": challenger,
        "champion_version": champion, "reference": reference_label,
        "metrics": {"challenger": challenger_scores, "reference": reference_scores},
        "checks": verdict.checks, "alias_changes": changes,
        "evaluation_run_id": (evaluation or {}).get("run_id"),
    })
    _tag_version(client, model, challenger, "promotion", record)
    if best is not None and not verdict.promote and settings.seed_champion_with_baseline:
        _seed_champion(best, backtests[best], panel, graph, actor, tracking)
    return record


def _seed_champion(baseline: str, scored: tuple[Any, dict[str, Any]], panel: Panel,
                   graph: AreaGraph, actor: str | None,
                   tracking: TrackingSettings) -> None:
    """Register the reference baseline (already backtested on these windows) and make it
    the first ``@champion``, so serving has a model that met the bar the challenger missed."""
    from crimecast.forecast.models import ModelsSettings
    train_and_register(baseline, panel, graph, ModelsSettings.load().params_for(baseline),
                       settings=tracking, backtest=lambda *_: scored, actor=actor,
                       alias=CHAMPION, run_name=f"seed-champion-{baseline}",
                       reason=f"no champion yet and the challenger was refused: the reference "
                              f"baseline {baseline} becomes the first @{CHAMPION}")


def _tag_version(client: MlflowClient, model: str, version: str, prefix: str, record: dict[str, Any]) -> None:
    """Write a decision onto the model version as ``<prefix>.*`` tags (5000-char values)."""
    tags = {"decision": record.get("decision"), "at": record.get("at"),
            "actor": record.get("actor"), "reason": record.get("reason"),
            "reference": record.get("reference"), "champion_version": record.get("champion_version")}
    for key, value in tags.items():
        if value is not None:
            client.set_model_version_tag(model, version, f"{prefix}.{key}", str(value)[:5000])
    if record.get("metrics"):
        client.set_model_version_tag(model, version, f"{prefix}.metrics",
                                     json.dumps(record["metrics"], default=str)[:5000])


def rollback(*, actor: str | None = None, reason: str = "", tracking: TrackingSettings | None = None) -> dict[str, Any]:
    """Give ``@champion`` back to the champion before the current one (per the audit log)
    and record it. Returns the audit record; raises RegistryError when there is none."""
    tracking = tracking or TrackingSettings.load()
    client = mlflow_client(tracking)
    model = tracking.registered_model
    current = resolve_alias(CHAMPION, tracking)
    lineage = champion_lineage()
    if current is None or len(lineage) < 2 or lineage[-1] != current:
        raise RegistryError(f"no previous @{CHAMPION} of '{model}' to roll back to "
                            f"(current: {current}, champion history: {lineage or 'empty'})")
    target = lineage[-2]
    change = move_alias(client, model, CHAMPION, target, current)
    record = append_audit({
        "event": "rollback", "decision": "rolled_back", "actor": actor,
        "reason": reason or f"rolled back from v{current} to v{target}",
        "registered_model": model, "champion_version": target,
        "challenger_version": current, "alias_changes": [change],
    })
    _tag_version(client, model, current, "rollback", record)
    return record


