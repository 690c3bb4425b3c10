"""``evaluate``: backtest a registered version, the champion and the baselines on the same
windows, and compare them with paired confidence intervals.

The payload (``artifacts/evaluation.json``; docs/lifecycle.md lists every key):

- ``version``, ``alias``, ``model``, ``data_version``, ``run_id``;
- ``models``: each model's pooled metrics (``overall``), ``gate``: the gate's point
  numbers, ``by_group`` / ``disparity``: the evaluated version's pooled tables;
- ``headline``: each model's metrics of every target (``"all"`` and each category) at
  horizon 1; ``coverage_by_group``: each model's horizon-1 coverage before and after
  calibration, by group and target;
- ``reference``: the label every model is compared with (the best baseline by the gate's
  deviance); ``comparisons``: per model, per target, the paired differences from the
  reference with 95 % CIs (:func:`crimecast.forecast.evidence.paired_comparison`);
- ``ceilings``: the ceilings' and the reference mean's headline metrics, and
  ``ceiling_comparisons``: the evaluated version against each ceiling, paired;
  ``gap_closed``: per model, the share of the gap to each ceiling it closes (horizon 1);
- ``calibration``: per model, the validation weeks' calibration table;
- ``disparity_ci``: per model, each group's flag-rate ratio with its CI (gate target);
- ``gate_preview``: the verdict the gate would give the evaluated version against the
  champion (or the best baseline), and ``policy``: the policy with its plain words.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import pandas as pd

from crimecast.contracts import AreaGraph, Panel
from crimecast.data.version import data_version
from crimecast.forecast.backtest import HINDSIGHT, SMOOTHER, backtest_model, ceiling_rows
from crimecast.forecast.calibration import summary_rows
from crimecast.forecast.evidence import (
    disparity_evidence,
    paired_comparison,
    population_by_group,
    target_components,
)
from crimecast.forecast.models import ModelsSettings, get_model, model_class
from crimecast.forecast.settings import EvaluationSettings
from crimecast.lifecycle.audit import CHALLENGER, CHAMPION
from crimecast.lifecycle.gate import (
    PromotionSettings,
    gate,
    gate_evidence,
    gate_scores,
    group_sizes,
    policy_record,
)
from crimecast.lifecycle.provenance import git_commit
from crimecast.lifecycle.registry import RegistryError, model_spec, resolve_alias
from crimecast.lifecycle.store import TrackingSettings, mlflow_client
from crimecast.lifecycle.tracking import flat_metrics


def compared_metrics(settings: EvaluationSettings, share: float) -> tuple[str, ...]:
    """The metrics every comparison table shows: the scores, the hit rate at every area
    share, PAI and PEI* at the gate's ``share``, and coverage."""
    label = f"{share * 100:g}%"
    return ("poisson_deviance", "log_score", "rps", "mae",
            *(f"hit_rate@{s * 100:g}%" for s in settings.area_shares),
            f"pai@{label}", f"pei_star@{label}", "coverage_80", "coverage_95")


def compare_backtests(backtests: dict[str, tuple[pd.DataFrame, dict[str, Any]]],
                      reference: str, graph: AreaGraph, targets: list[str],
                      settings: EvaluationSettings, metrics: tuple[str, ...],
                      horizon: int = 1) -> dict[str, Any]:
    """Paired comparisons of every backtest with ``reference`` on each of ``targets`` at
    ``horizon``: ``{label: {target: {metric: comparison}}}`` (the reference left out)."""
    population = population_by_group(graph.areas)

    def components(label: str, target: str) -> pd.DataFrame:
        rows, summary = backtests[label]
        return target_components(rows, graph.areas, target, horizon,
                                 summary.get("calibration"), settings)

    out: dict[str, Any] = {}
    reference_parts = {t: components(reference, t) for t in targets}
    for label in backtests:
        if label == reference:
            continue
        out[label] = {t: paired_comparison(reference_parts[t], components(label, t), settings,
                                           population, list(metrics)) for t in targets}
    return out


def ceiling_comparisons(rows: pd.DataFrame, summary: dict[str, Any], panel: Panel,
                        graph: AreaGraph, targets: list[str],
                        settings: EvaluationSettings, share: float = 0.05,
                        horizon: int = 1) -> dict[str, Any]:
    """The model against each ceiling, paired: ``{ceiling: {target: {metric: comparison}}}``
    where the ceiling is the *reference* (so ``diff`` is model − ceiling). The smoother is
    compared on every score, perfect hindsight on hit rates and PAI."""
    from crimecast.data.panel import panel_arrays

    ceilings = ceiling_rows(rows, panel_arrays(panel, graph), graph, settings)
    population = population_by_group(graph.areas)
    hotspot = (*(f"hit_rate@{s * 100:g}%" for s in settings.area_shares),
               f"pai@{share * 100:g}%")
    out: dict[str, Any] = {}
    for name, intervals, metrics in (
            (SMOOTHER, True, ("poisson_deviance", "log_score", "rps", "mae", *hotspot)),
            (HINDSIGHT, False, hotspot)):
        out[name] = {}
        for target in targets:
            model = target_components(rows, graph.areas, target, horizon,
                                      summary.get("calibration"), settings, intervals)
            ceiling = target_components(ceilings[name], graph.areas, target, horizon, None,
                                        settings, intervals)
            out[name][target] = paired_comparison(ceiling, model, settings, population,
                                                  list(metrics))
    return out


def evaluate(panel: Panel, graph: AreaGraph, *, alias: str = CHALLENGER,
             version: str | None = None, settings: PromotionSettings | None = None,
             tracking: TrackingSettings | None = None,
             backtest: Callable[..., tuple[pd.DataFrame, dict[str, Any]]] | None = None,
             ) -> dict[str, Any]:
    """Backtest ``version`` (default: the version holding ``alias``), the champion (when
    another version holds it) and the configured baselines on the same windows, as one
    MLflow run (``crimecast.stage=evaluate``; metrics prefixed with the model label, the
    evaluated version's per-row scores as ``evaluation/backtest.csv``). Returns the
    payload described in the module docstring."""
    import mlflow

    settings = settings or PromotionSettings.load()
    # The windows backtest_model uses for this panel (adapted to a short history).
    evaluation_settings, _ = EvaluationSettings.load().for_history(len(panel.weeks))
    tracking = tracking or TrackingSettings.load()
    client = mlflow_client(tracking)
    backtest = backtest or backtest_model
    version = version or resolve_alias(alias, tracking)
    if version is None:
        raise RegistryError(f"no version of '{tracking.registered_model}' holds @{alias}; "
                            "run `crimecast train` first")
    name, params = model_spec(version, tracking)
    configured = ModelsSettings.load()
    label = f"v{version}:{name}"
    # Baselines with their configured hyperparameters, even when the challenger is the same
    # model class (tuned params differ): the table then shows what tuning bought.
    candidates = {label: (name, params)}
    champion = resolve_alias(CHAMPION, tracking)
    champion_label = None
    if champion is not None and champion != version:
        champion_name, champion_params = model_spec(champion, tracking)
        champion_label = f"v{champion}:{champion_name} (@champion)"
        candidates[champion_label] = (champion_name, champion_params)
    candidates.update({b: (b, configured.params_for(b)) for b in settings.baselines})
    versions = data_version()
    payload: dict[str, Any] = {"version": version, "alias": alias, "model": name,
                               "data_version": versions["version"], "models": {}, "gate": {}}
    backtests: dict[str, tuple[pd.DataFrame, dict[str, Any]]] = {}
    with mlflow.start_run(run_name=f"evaluate-v{version}", tags={
            "crimecast.stage": "evaluate", "model.name": name, "model.version": version,
            "data.version": versions["version"], "git.commit": git_commit()}) as run:
        for model_label, (model_name, model_params) in candidates.items():
            rows, summary = backtest(get_model(model_name, **(model_params or {})), panel, graph)
            backtests[model_label] = (rows, summary)
            payload["models"][model_label] = summary["overall"]
            payload["gate"][model_label] = gate_scores(summary, settings)
            prefix = ("challenger" if model_label == label else
                      "champion" if model_label == champion_label else model_label)
            mlflow.log_metrics(flat_metrics({"overall": summary["overall"],
                                             "headline": _headline(summary)}, prefix))
            if model_label == label:
                payload["by_group"] = summary.get("by_group", {})
                payload["disparity"] = summary.get("disparity", {})
                with tempfile.TemporaryDirectory(prefix="crimecast-eval-") as tmp:
                    table = f"{tmp}/backtest.csv"
                    rows.to_csv(table, index=False)
                    mlflow.log_artifact(table, artifact_path="evaluation")
        payload.update(evidence_tables(backtests, label, champion_label, panel, graph,
                                       settings, evaluation_settings,
                                       {k: v[0] for k, v in candidates.items()}))
        mlflow.log_dict(payload, "evaluation/evaluation.json")
        payload["run_id"] = run.info.run_id
    client.set_model_version_tag(tracking.registered_model, version, "evaluation.run_id",
                                 payload["run_id"])
    return payload


def _headline(summary: dict[str, Any], horizon: int = 1) -> dict[str, Any]:
    return {target: {k: v for k, v in by_h.get(str(horizon), {}).items()
                     if k != "pit_histogram"}
            for target, by_h in summary.get("targets", {}).items()}


def evidence_tables(backtests: dict[str, tuple[pd.DataFrame, dict[str, Any]]], label: str,
                    champion_label: str | None, panel: Panel, graph: AreaGraph,
                    settings: PromotionSettings, evaluation: EvaluationSettings,
                    model_names: dict[str, str]) -> dict[str, Any]:
    """The evaluation payload's evidence keys (see the module docstring) from backtests
    of the same windows; ``label`` is the evaluated version, ``model_names`` maps each
    label to its registered model name."""
    summary = backtests[label][1]
    targets = list(summary.get("targets", {}))
    baselines = [b for b in settings.baselines if b in backtests]
    reference = min(baselines or list(backtests),
                    key=lambda b: gate_scores(backtests[b][1], settings)["poisson_deviance"])
    population = population_by_group(graph.areas)
    out: dict[str, Any] = {
        "headline": {k: _headline(s) for k, (_, s) in backtests.items()},
        "coverage_by_group": {k: s.get("headline_by_group", {}) for k, (_, s) in
                              backtests.items()},
        "reference": reference,
        "comparisons": compare_backtests(backtests, reference, graph, targets, evaluation,
                                         compared_metrics(evaluation, settings.pai_area_share)),
        "ceilings": {name: _headline({"targets": per_target})
                     for name, per_target in summary.get("ceilings", {}).items()},
        "ceiling_comparisons": ceiling_comparisons(*backtests[label], panel, graph, targets,
                                                   evaluation, settings.pai_area_share),
        "gap_closed": {k: {t: by_h.get("1", {}) for t, by_h in s.get("gap_closed", {}).items()}
                       for k, (_, s) in backtests.items()},
        "calibration": {k: summary_rows(s.get("calibration") or {}) for k, (_, s) in
                        backtests.items()},
        "disparity_ci": {k: disparity_evidence(None, target_components(
            rows, graph.areas, settings.target, settings.horizon, s.get("calibration"),
            evaluation), evaluation, population, settings.disparity_kinds)
            for k, (rows, s) in backtests.items()},
        "policy": policy_record(settings),
    }
    against = champion_label or reference
    verdict = gate(gate_evidence(
        backtests[label][0], backtests[against][0], graph, settings, evaluation,
        challenger=label, reference=against,
        challenger_calibration=summary.get("calibration"),
        reference_calibration=backtests[against][1].get("calibration"),
        challenger_complexity=model_class(model_names[label]).complexity,
        reference_complexity=model_class(model_names[against]).complexity),
        settings, group_sizes(graph))
    out["gate_preview"] = {"against": against, "promote": verdict.promote,
                           "outcome": verdict.outcome, "reason": verdict.reason,
                           "checks": verdict.checks}
    return out
