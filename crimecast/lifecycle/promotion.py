"""Promotion and rollback: move ``@champion`` only through the gate, and write it down.

``promote`` backtests the challenger and the reference on the SAME rolling-origin windows
(:func:`crimecast.forecast.backtest.backtest_model`; both models are refitted from their
logged hyperparameters on the current data, so neither sees the future), computes their
paired evidence (:func:`crimecast.lifecycle.gate.gate_evidence`) and moves ``@champion``
only if the gate (:func:`crimecast.lifecycle.gate.gate`) passes under the configured
policy. With no champion yet the reference is the best baseline (lowest deviance on the
gate's target and horizon) of ``baselines``; if the challenger is refused, the first
baseline (in that order) that passes the fairness band on its own is seeded as the first
champion, and if none does, the best one is seeded with a recorded public ``exception``.
Every decision (policy, checks with numbers, intervals and plain sentences, exception)
and every alias change is appended to the audit log and written as model-version tags.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from crimecast.contracts import AreaGraph, Panel
from crimecast.forecast.backtest import backtest_model
from crimecast.forecast.evidence import disparity_evidence, population_by_group, target_components
from crimecast.forecast.models import ModelsSettings, get_model, model_class
from crimecast.forecast.settings import EvaluationSettings
from crimecast.lifecycle.audit import CHALLENGER, CHAMPION, append_audit, champion_lineage
from crimecast.lifecycle.gate import (
    GateResult,
    PromotionSettings,
    baseline_fairness,
    gate,
    gate_evidence,
    gate_scores,
    group_sizes,
    policy_record,
)
from crimecast.lifecycle.registry import RegistryError, model_spec, move_alias, resolve_alias
from crimecast.lifecycle.store import TrackingSettings, mlflow_client
from crimecast.lifecycle.tracking import train_and_register

if TYPE_CHECKING:
    from mlflow import MlflowClient

Backtest = tuple[pd.DataFrame, dict[str, Any]]


def promote(panel: Panel, graph: AreaGraph, *, actor: str | None = None,
            settings: PromotionSettings | None = None, tracking: TrackingSettings | None = None,
            backtest: Callable[..., Backtest] | None = None,
            evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the promotion gate on ``@challenger`` and move ``@champion`` if it passes.

    Both models are refitted from their logged specs and backtested on ``panel``/``graph``
    with the same windows. ``evaluation`` (the evaluate stage's payload), when given, must
    be of the current challenger; its MLflow run is named in the decision. Returns the
    audit record (``decision`` promoted | refused, ``outcome`` better | tie | worse,
    ``policy``, ``checks``, and ``exception`` when a seeded champion fails fairness).
    A refusal is a decision, not an error; a missing or unevaluated challenger raises
    RegistryError.
    """
    settings = settings or PromotionSettings.load()
    tracking = tracking or TrackingSettings.load()
    # The windows backtest_model uses for this panel (adapted to a short history).
    evaluation_settings, _ = EvaluationSettings.load().for_history(len(panel.weeks))
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
    backtests: dict[str, Backtest] = {}
    names: dict[str, str] = {}

    def run(label: str, name: str, params: dict[str, Any]) -> Backtest:
        backtests[label], names[label] = backtest(get_model(name, **(params or {})), panel,
                                                  graph), name
        return backtests[label]

    name, params = model_spec(challenger, tracking)
    run("challenger", name, params)
    ranked: list[str] = []
    if champion is not None:
        reference_key = "champion"
        champion_name, champion_params = model_spec(champion, tracking)
        run(reference_key, champion_name, champion_params)
        reference_label = f"champion v{champion}"
    else:
        configured = ModelsSettings.load()
        for baseline in settings.baselines:
            run(baseline, baseline, configured.params_for(baseline))
        ranked = sorted(settings.baselines, key=lambda b: gate_scores(
            backtests[b][1], settings)["poisson_deviance"])
        reference_key = ranked[0]
        reference_label = f"baseline {reference_key}"

    sizes = group_sizes(graph)
    if champion == challenger:
        verdict = GateResult(False, f"refused: v{challenger} already holds @{CHAMPION}",
                             policy=policy_record(settings))
    else:
        verdict = gate(gate_evidence(
            backtests["challenger"][0], backtests[reference_key][0], graph, settings,
            evaluation_settings, challenger=f"v{challenger} ({name})",
            reference=(f"{reference_label} ({names[reference_key]})" if champion is not None
                       else reference_label),
            challenger_calibration=backtests["challenger"][1].get("calibration"),
            reference_calibration=backtests[reference_key][1].get("calibration"),
            challenger_complexity=model_class(name).complexity,
            reference_complexity=model_class(names[reference_key]).complexity),
            settings, sizes)
    changes = []
    if verdict.promote:
        changes.append(move_alias(client, model, CHAMPION, challenger, champion))
        changes.append(move_alias(client, model, CHALLENGER, None, challenger))
    seed: dict[str, Any] | None = None
    extra: dict[str, Any] = {}
    if ranked and not verdict.promote and settings.seed_champion_with_baseline:
        seed = choose_seed(ranked, backtests, graph, settings, evaluation_settings, sizes)
        extra["seed"] = {"baseline": seed["baseline"], "checks": seed["checks"]}
        if seed["exception"]:
            extra["exception"] = seed["exception"]
    record = append_audit({
        "event": "promote", "decision": "promoted" if verdict.promote else "refused",
        "actor": actor, "reason": f"{verdict.reason} (reference: {reference_label})",
        "registered_model": model, "challenger_version": challenger,
        "champion_version": champion, "reference": reference_label,
        "outcome": verdict.outcome, "policy": verdict.policy,
        "metrics": {"challenger": gate_scores(backtests["challenger"][1], settings),
                    "reference": gate_scores(backtests[reference_key][1], settings)},
        "checks": verdict.checks, "alias_changes": changes, **extra,
        "evaluation_run_id": (evaluation or {}).get("run_id"),
    })
    _tag_version(client, model, challenger, "promotion", record)
    if seed is not None:
        _seed_champion(seed, backtests[seed["baseline"]], panel, graph, actor, tracking, client)
    return record


def choose_seed(ranked: list[str], backtests: dict[str, Backtest], graph: AreaGraph,
                settings: PromotionSettings, evaluation: EvaluationSettings,
                sizes: dict[str, int]) -> dict[str, Any]:
    """The baseline to seed as the first champion: the most accurate of ``ranked`` whose
    every group passes the fairness band on its own; with none, the most accurate one
    and a public exception saying which groups fail. Returns ``{"baseline", "checks",
    "exception"}`` (``exception`` None when the seed passes)."""
    population = population_by_group(graph.areas)
    failures: dict[str, list[dict[str, Any]]] = {}
    for baseline in ranked:
        rows, summary = backtests[baseline]
        components = target_components(rows, graph.areas, settings.target, settings.horizon,
                                       summary.get("calibration"), evaluation)
        checks = baseline_fairness(disparity_evidence(None, components, evaluation, population,
                                                      settings.disparity_kinds),
                                   settings, sizes)
        if all(c["passed"] for c in checks):
            return {"baseline": baseline, "checks": checks, "exception": None}
        failures[baseline] = checks
    best = ranked[0]
    failed = [c["plain"] for c in failures[best] if not c["passed"]]
    reason = (f"no baseline ({', '.join(ranked)}) passes the fairness band on its own, so "
              f"the most accurate one, {best}, serves as the first champion under a public "
              f"exception (a forecast must be served; a later model must pass the gate "
              f"against it). Failing: " + " ".join(failed))
    return {"baseline": best, "checks": failures[best],
            "exception": {"public": True, "reason": reason}}


def _seed_champion(seed: dict[str, Any], scored: Backtest, panel: Panel, graph: AreaGraph,
                   actor: str | None, tracking: TrackingSettings,
                   client: MlflowClient) -> None:
    """Register the chosen baseline (already backtested on these windows) and make it the
    first ``@champion``, so serving has a model; an exception is tagged on the version."""
    baseline = seed["baseline"]
    exception = seed.get("exception")
    why = (f"no champion yet and the challenger was refused: the baseline {baseline} "
           f"becomes the first @{CHAMPION}")
    result = train_and_register(
        baseline, panel, graph, ModelsSettings.load().params_for(baseline), settings=tracking,
        backtest=lambda *_: scored, actor=actor, alias=CHAMPION,
        run_name=f"seed-champion-{baseline}",
        reason=why + (f"; PUBLIC EXCEPTION: {exception['reason']}" if exception else
                      " and passes the fairness band on its own"))
    if exception:
        client.set_model_version_tag(tracking.registered_model, result.version,
                                     "promotion.exception", exception["reason"][:5000])


def _tag_version(client: MlflowClient, model: str, version: str, prefix: str, record: dict[str, Any]) -> None:
    """Write a decision onto the model version as readable ``<prefix>.*`` tags (one per
    fact and one per check, each a sentence) and as a JSON artifact of the version's run
    (``promotion/decision-<at>.json``, named by the ``<prefix>.record`` tag)."""
    tags = {"decision": record.get("decision"), "at": record.get("at"),
            "actor": record.get("actor"), "reason": record.get("reason"),
            "outcome": record.get("outcome"), "reference": record.get("reference"),
            "champion_version": record.get("champion_version"),
            "policy": (record.get("policy") or {}).get("text")}
    for side, scores in (record.get("metrics") or {}).items():
        for metric, value in (scores or {}).items():
            tags[f"metric.{side}.{metric}"] = value
    for check in record.get("checks") or []:
        mark = "passed" if check.get("passed") else "FAILED"
        tags[f"check.{check.get('check')}"] = f"{mark}: {check.get('plain') or ''}"
    run_id = client.get_model_version(model, version).run_id
    stamp = str(record.get("at", "")).replace(":", "-")
    artifact = f"{prefix}/decision-{stamp}.json"
    if run_id:
        client.log_dict(run_id, json.loads(json.dumps(record, default=str)), artifact)
        tags["record"] = f"runs:/{run_id}/{artifact}"
    for key, value in tags.items():
        if value is not None:
            client.set_model_version_tag(model, version, _tag_key(f"{prefix}.{key}"),
                                         str(value)[:5000])


def _tag_key(key: str) -> str:
    """An MLflow tag key: letters, digits, ``_ - . / space`` only (``pai@5%`` → ``pai_5_``)."""
    return re.sub(r"[^\w\-./ ]", "_", key)


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


