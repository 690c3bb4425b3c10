"""The model registry: aliases, the fairness-checked promotion gate, rollback, audit log.

Versions of the registered model (``crimecast`` by default) carry two aliases:
``@challenger`` (set by every training run) and ``@champion`` (what serving loads).

``promote`` backtests the challenger and the champion on the SAME rolling-origin windows
(:func:`backtest_model`; both models are refitted from their logged hyperparameters on the
current data, so neither sees the future) and moves ``@champion`` only if

1. Poisson deviance is not worse than the champion's (``deviance_tolerance``),
2. PAI at ``pai_area_share`` of land area is not worse (``pai_tolerance``), and
3. for every group (with at least ``min_group_areas`` areas) and every ratio in
   ``disparity_kinds`` (default: flag rate per true incident), the challenger's ratio is inside
   ``disparity_band`` (default 0.8-1.25) or is not further from parity than the champion's
   by more than ``disparity_margin`` (distance = ``|ln ratio|``, so 0.8 and 1.25 are equally
   far from 1).

With no champion yet the reference is the best baseline (lowest deviance) of
``baselines``. Every decision and every alias change is appended to ``state/audit.jsonl``
(one JSON object per line, fsynced; never rewritten) and written as model-version tags.
MLflow keeps no alias history, so :func:`alias_history` and :func:`rollback` read the
audit log.

Audit record fields: ``at`` (ISO UTC), ``actor``, ``event`` (register | promote |
rollback | set_alias), ``decision`` (registered | promoted | refused | rolled_back |
alias_set), ``reason``, ``challenger_version``, ``champion_version``, ``metrics``
(``{"challenger": {...}, "reference": {...}}`` for promotions), ``checks`` (list of the
gate's checks), ``alias_changes`` (``[{"alias", "from", "to"}]``), ``registered_model``.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from pydantic import Field, field_validator

from crimecast.config import ConcernSettings
from crimecast.contracts import AreaGraph, Panel
from crimecast.paths import resolve

CHAMPION = "champion"
CHALLENGER = "challenger"


class RegistryError(LookupError):
    """The registry lacks what was asked for (no such alias, no previous champion)."""


class PromotionSettings(ConcernSettings):
    """configs/promotion.yaml: the promotion gate's tolerances."""

    concern: ClassVar[str] = "promotion"
    deviance_tolerance: float = 0.0
    pai_tolerance: float = 0.0
    pai_area_share: float = 0.05
    disparity_band: tuple[float, float] = (0.8, 1.25)
    disparity_margin: float = 0.10
    disparity_kinds: list[str] = Field(default_factory=lambda: ["flag_rate_per_incident"])
    min_group_areas: int = 5
    exempt_groups: list[str] = Field(default_factory=lambda: ["unknown"])
    seed_champion_with_baseline: bool = True
    baselines: list[str] = Field(
        default_factory=lambda: ["historical_average", "seasonal_naive"])

    @field_validator("disparity_band")
    @classmethod
    def _band_ordered(cls, band: tuple[float, float]) -> tuple[float, float]:
        if not 0 < band[0] <= 1 <= band[1]:
            raise ValueError(f"disparity_band must satisfy 0 < low <= 1 <= high, got {band}")
        return band


# ------------------------------------------------------------------------- audit log

def audit_path() -> Path:
    return resolve("state/audit.jsonl")


def default_actor() -> str:
    """Who acts: ``$USER``, else the login name, else ``"unknown"``."""
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def append_audit(record: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Append one decision to the audit log (append-only, locked, fsynced before return).

    ``at`` and ``actor`` are filled in when missing. Returns the record as written.
    """
    path = path or audit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**record, "at": record.get("at") or datetime.now(UTC).isoformat(timespec="microseconds"),
              "actor": record.get("actor") or default_actor()}
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


def read_audit(path: Path | None = None) -> list[dict[str, Any]]:
    """Every audit record, oldest first (a torn last line from a crash is skipped)."""
    path = path or audit_path()
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):  # only the last line may be torn
                raise RegistryError(f"{path}: line {number} is not valid JSON") from None
    return records


def alias_history(path: Path | None = None) -> list[dict[str, Any]]:
    """Every alias change, oldest first: ``at, actor, event, alias, from, to, reason``."""
    changes = []
    for record in read_audit(path):
        for change in record.get("alias_changes") or []:
            changes.append({"at": record.get("at"), "actor": record.get("actor"),
                            "event": record.get("event"), "alias": change.get("alias"),
                            "from": change.get("from"), "to": change.get("to"),
                            "reason": record.get("reason")})
    return changes


# --------------------------------------------------------------------------- aliases

def _client(settings: Any = None) -> tuple[Any, Any]:
    from crimecast.tracking import TrackingSettings, configure

    settings = settings or TrackingSettings.load()
    return configure(settings), settings


def resolve_alias(alias: str, settings: Any = None) -> str | None:
    """The version (as a string) holding ``alias``, or ``None`` when no version does."""
    from mlflow.exceptions import MlflowException

    client, settings = _client(settings)
    try:
        return str(client.get_model_version_by_alias(settings.registered_model, alias).version)
    except MlflowException:
        return None


def _move_alias(client: Any, model: str, alias: str, version: str | None,
                previous: str | None) -> dict[str, Any]:
    if version is None:
        client.delete_registered_model_alias(model, alias)
    else:
        client.set_registered_model_alias(model, alias, version)
    return {"alias": alias, "from": previous, "to": version}


def set_alias(alias: str, version: str | None, *, actor: str | None = None,
              event: str = "set_alias", reason: str = "", settings: Any = None) -> dict[str, Any]:
    """Point ``alias`` at ``version`` (``None`` removes it) and record the change in the
    audit log. Returns the audit record."""
    client, settings = _client(settings)
    previous = resolve_alias(alias, settings)
    change = _move_alias(client, settings.registered_model, alias, version, previous)
    decision = "registered" if event == "register" else "alias_set"
    return append_audit({"event": event, "decision": decision, "actor": actor, "reason": reason,
                         "registered_model": settings.registered_model,
                         "challenger_version": version if alias == CHALLENGER else None,
                         "champion_version": version if alias == CHAMPION else None,
                         "alias_changes": [change]})


def _run_for_version(client: Any, model: str, version: str) -> tuple[Any, Any]:
    mv = client.get_model_version(model, version)
    return mv, client.get_run(mv.run_id)


def model_info(alias: str = CHAMPION, settings: Any = None) -> dict[str, Any]:
    """What the registry knows about the version holding ``alias``: ``version``, ``alias``,
    ``registered_model``, ``run_id``, ``model_name``, ``data_version``,
    ``last_observed_week``, ``git_commit``, ``created_at``, ``backtest_metrics`` and the
    version's ``tags`` (including the last promotion decision). Raises
    :class:`RegistryError` when no version holds the alias."""
    client, settings = _client(settings)
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


def model_spec(version: str, settings: Any = None) -> tuple[str, dict[str, Any]]:
    """(model name, hyperparameters) of a registered version, read from its run's
    ``model_params.json`` artifact, so the same model can be refitted on other windows."""
    import mlflow.artifacts

    client, settings = _client(settings)
    mv, run = _run_for_version(client, settings.registered_model, version)
    params = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/model_params.json")
    return run.data.tags["model.name"], params


# -------------------------------------------------------------------------- backtest

def backtest_model(forecaster: Any, panel: Panel, graph: AreaGraph) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Rolling-origin backtest of an unfitted forecaster (:mod:`crimecast.backtest`, with
    the settings of configs/models.yaml). Returns (per-row scores, summary).

    Results are memoised under ``state/backtests/<key>/`` where the key hashes everything
    the result depends on: the model class and hyperparameters, the panel and graph
    contents, the backtest settings and the source of the model/backtest/metrics code.
    train, evaluate and promote backtest the same specifications on the same windows, so
    the chain computes each one once.
    """
    from crimecast import backtest
    from crimecast.io import atomic_path, write_json
    from crimecast.models import ModelsSettings

    settings = ModelsSettings.load().backtest
    cache = resolve("state/backtests") / _backtest_key(forecaster, panel, graph, settings)
    if (cache / "summary.json").exists():
        return pd.read_parquet(cache / "rows.parquet"), json.loads((cache / "summary.json").read_text())
    result = backtest.run_backtest(forecaster, panel, graph, settings)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache / "rows.parquet") as tmp:
        result.rows.to_parquet(tmp, index=False)
    write_json(cache / "summary.json", result.summary)  # written last: marks the entry complete
    return result.rows, result.summary


def _backtest_key(forecaster: Any, panel: Panel, graph: AreaGraph, settings: Any) -> str:
    import hashlib
    import inspect

    import crimecast.backtest
    import crimecast.features
    import crimecast.metrics
    import crimecast.models.base

    digest = hashlib.sha256()
    cls = type(forecaster)
    spec = {"class": f"{cls.__module__}:{cls.__qualname__}", "params": forecaster.get_params(),
            "backtest": settings.model_dump(mode="json")}
    digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
    for module in (crimecast.backtest, crimecast.features, crimecast.metrics,
                   crimecast.models.base, inspect.getmodule(cls)):
        try:
            digest.update(inspect.getsource(module).encode())
        except (OSError, TypeError):  # no source (e.g. a class built at runtime)
            digest.update(repr(module).encode())
    digest.update(pd.util.hash_pandas_object(panel.counts, index=False).to_numpy().tobytes())
    digest.update(pd.util.hash_pandas_object(graph.areas.reset_index(), index=False)
                  .to_numpy().tobytes())
    digest.update(graph.edge_index.tobytes() + graph.edge_weight.tobytes())
    return digest.hexdigest()[:24]


# ------------------------------------------------------------------------------ gate

@dataclass
class GateResult:
    """The promotion gate's verdict: ``promote``, the reasons, and every check made."""

    promote: bool
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)


def gate_scores(summary: dict[str, Any], settings: PromotionSettings) -> dict[str, Any]:
    """The numbers the gate compares, from a backtest summary: ``poisson_deviance``,
    ``pai`` (at ``pai_area_share``) and ``disparity`` (``{"<kind>/<group>": ratio}``)."""
    from crimecast import backtest

    return backtest.gate_view(summary, pai_area_share=settings.pai_area_share)


def gate(challenger: dict[str, Any], reference: dict[str, Any],
         settings: PromotionSettings, group_sizes: dict[str, int] | None = None) -> GateResult:
    """Decide whether ``challenger`` may replace ``reference`` (both from
    :func:`gate_scores`). ``group_sizes`` (areas per group) exempts groups with fewer than
    ``settings.min_group_areas`` areas from the disparity checks: their ratios rest on a
    handful of flags and swing from 0 to several-fold by chance. Pure function."""
    checks: list[dict[str, Any]] = []
    dev_c, dev_r = challenger["poisson_deviance"], reference["poisson_deviance"]
    limit = dev_r * (1 + settings.deviance_tolerance)
    checks.append({"check": "poisson_deviance", "challenger": dev_c, "reference": dev_r,
                   "limit": limit, "passed": bool(dev_c <= limit + 1e-12)})
    pai_c, pai_r = challenger["pai"], reference["pai"]
    floor = pai_r * (1 - settings.pai_tolerance)
    checks.append({"check": f"pai@{settings.pai_area_share:g}", "challenger": pai_c,
                   "reference": pai_r, "limit": floor, "passed": bool(pai_c >= floor - 1e-12)})
    low, high = settings.disparity_band
    for key in sorted(challenger["disparity"]):
        if key.split("/", 1)[0] not in settings.disparity_kinds:
            continue
        ratio_c = challenger["disparity"][key]
        ratio_r = reference["disparity"].get(key)
        if ratio_c is None or not math.isfinite(ratio_c):
            continue  # no incidents or residents in this group: nothing to compare
        group = key.split("/", 1)[-1]
        if group in settings.exempt_groups:
            checks.append({"check": f"disparity:{key}", "challenger": ratio_c,
                           "reference": ratio_r, "passed": True,
                           "note": "exempt: not a demographic group (exempt_groups)"})
            continue
        if group_sizes is not None and group_sizes.get(group, 0) < settings.min_group_areas:
            checks.append({"check": f"disparity:{key}", "challenger": ratio_c,
                           "reference": ratio_r, "passed": True,
                           "note": f"exempt: {group_sizes.get(group, 0)} areas < "
                                   f"min_group_areas {settings.min_group_areas}"})
            continue
        in_band = low <= ratio_c <= high
        distance_c = _parity_distance(ratio_c)
        distance_r = _parity_distance(ratio_r) if ratio_r is not None else None
        # A never-flagged group (ratio 0) is infinitely far from parity; it passes only
        # when the reference never flagged it either.
        not_worse = distance_r is not None and (
            distance_c <= distance_r + settings.disparity_margin or distance_c == distance_r)
        checks.append({"check": f"disparity:{key}", "challenger": ratio_c, "reference": ratio_r,
                       "band": [low, high], "passed": bool(in_band or not_worse)})
    failed = [c for c in checks if not c["passed"]]
    if not failed:
        return GateResult(True, "challenger is at least as accurate and every group's disparity "
                                "ratio is within the band or not worse", checks)
    parts = []
    for c in failed:
        if c["check"].startswith("disparity:"):
            parts.append(f"{c['check']} ratio {c['challenger']:.3f} outside "
                         f"[{low:g}, {high:g}] and further from parity than the reference "
                         f"({_fmt(c['reference'])}) by more than {settings.disparity_margin:g}")
        else:
            parts.append(f"{c['check']} {c['challenger']:.4f} vs reference "
                         f"{c['reference']:.4f} (limit {c['limit']:.4f})")
    return GateResult(False, "refused: " + "; ".join(parts), checks)


def group_sizes(graph: AreaGraph) -> dict[str, int]:
    """Areas per demographic group (``graph.areas["group"]``)."""
    return {str(g): int(n) for g, n in graph.areas["group"].value_counts().items()}


def _parity_distance(ratio: float) -> float:
    """``|ln ratio|``: 0 at parity, equal for 0.8 and 1.25, infinite for 0; NaN -> inf."""
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return math.inf
    return abs(math.log(ratio))


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


# ------------------------------------------------------------------ promote/rollback

def promote(panel: Panel, graph: AreaGraph, *, actor: str | None = None,
            settings: PromotionSettings | None = None, tracking: Any = None,
            backtest: Any = None) -> dict[str, Any]:
    """Run the promotion gate on ``@challenger`` and move ``@champion`` if it passes.

    Both models are refitted from their logged specs and backtested on ``panel``/``graph``
    with the same windows. Returns the audit record (``decision`` promoted | refused).
    A refusal is a decision, not an error; a missing challenger raises RegistryError.
    """
    from crimecast.pyfunc import build_forecaster

    settings = settings or PromotionSettings.load()
    client, tracking = _client(tracking)
    backtest = backtest or backtest_model
    model = tracking.registered_model
    challenger = resolve_alias(CHALLENGER, tracking)
    if challenger is None:
        raise RegistryError(f"no version of '{model}' holds @{CHALLENGER}: run `crimecast train`")
    champion = resolve_alias(CHAMPION, tracking)

    backtests: dict[str, tuple[Any, dict[str, Any]]] = {}

    def scores_of(label: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        backtests[label] = backtest(build_forecaster(name, params), panel, graph)
        return gate_scores(backtests[label][1], settings)

    name, params = model_spec(challenger, tracking)
    challenger_scores = scores_of("challenger", name, params)
    best = None
    if champion is not None:
        reference_label = f"champion v{champion}"
        reference_scores = scores_of("champion", *model_spec(champion, tracking))
    else:
        from crimecast.models import ModelsSettings

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
        changes.append(_move_alias(client, model, CHAMPION, challenger, champion))
        changes.append(_move_alias(client, model, CHALLENGER, None, challenger))
    record = append_audit({
        "event": "promote", "decision": "promoted" if verdict.promote else "refused",
        "actor": actor, "reason": f"{verdict.reason} (reference: {reference_label})",
        "registered_model": model, "challenger_version": challenger,
        "champion_version": champion, "reference": reference_label,
        "metrics": {"challenger": challenger_scores, "reference": reference_scores},
        "checks": verdict.checks, "alias_changes": changes,
    })
    _tag_version(client, model, challenger, "promotion", record)
    if best is not None and not verdict.promote and settings.seed_champion_with_baseline:
        _seed_champion(best, backtests[best], panel, graph, actor, tracking)
    return record


def _seed_champion(baseline: str, scored: tuple[Any, dict[str, Any]], panel: Panel,
                   graph: AreaGraph, actor: str | None, tracking: Any) -> None:
    """Register the reference baseline (already backtested on these windows) and make it
    the first ``@champion``, so serving has a model that met the bar the challenger missed."""
    from crimecast.models import ModelsSettings
    from crimecast.tracking import train_and_register

    train_and_register(baseline, panel, graph, ModelsSettings.load().params_for(baseline),
                       settings=tracking, backtest=lambda *_: scored, actor=actor,
                       alias=CHAMPION, run_name=f"seed-champion-{baseline}",
                       reason=f"no champion yet and the challenger was refused: the reference "
                              f"baseline {baseline} becomes the first @{CHAMPION}")


def _tag_version(client: Any, model: str, version: str, prefix: str, record: dict[str, Any]) -> None:
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


def champion_lineage(path: Path | None = None) -> list[str]:
    """The stack of champion versions implied by the audit log: promotions push, rollbacks
    pop; the last element is the current champion."""
    stack: list[str] = []
    for change in alias_history(path):
        if change["alias"] != CHAMPION or change["to"] is None:
            continue
        if change["event"] == "rollback":
            while stack and stack[-1] != change["to"]:
                stack.pop()
            if not stack:
                stack.append(change["to"])
        else:
            stack.append(change["to"])
    return stack


def rollback(*, actor: str | None = None, reason: str = "", tracking: Any = None) -> dict[str, Any]:
    """Give ``@champion`` back to the champion before the current one (per the audit log)
    and record it. Returns the audit record; raises RegistryError when there is none."""
    client, tracking = _client(tracking)
    model = tracking.registered_model
    current = resolve_alias(CHAMPION, tracking)
    lineage = champion_lineage()
    if current is None or len(lineage) < 2 or lineage[-1] != current:
        raise RegistryError(f"no previous @{CHAMPION} of '{model}' to roll back to "
                            f"(current: {current}, champion history: {lineage or 'empty'})")
    target = lineage[-2]
    change = _move_alias(client, model, CHAMPION, target, current)
    record = append_audit({
        "event": "rollback", "decision": "rolled_back", "actor": actor,
        "reason": reason or f"rolled back from v{current} to v{target}",
        "registered_model": model, "champion_version": target,
        "challenger_version": current, "alias_changes": [change],
    })
    _tag_version(client, model, current, "rollback", record)
    return record


# -------------------------------------------------------------------------- evaluate

def evaluate(panel: Panel, graph: AreaGraph, *, alias: str = CHALLENGER,
             settings: PromotionSettings | None = None, tracking: Any = None,
             backtest: Any = None) -> dict[str, Any]:
    """Backtest the version holding ``alias`` and the configured baselines on the same
    windows, as one MLflow run (``crimecast.stage=evaluate``; metrics prefixed with the
    model label, the challenger's per-row scores as ``evaluation/backtest.csv``).

    Returns ``{"version", "alias", "model", "models": {label: overall metrics},
    "gate": {label: gate scores}, "by_group": {...}, "run_id"}``.
    """
    import tempfile

    import mlflow

    from crimecast.pyfunc import build_forecaster
    from crimecast.tracking import data_version, flat_metrics, git_commit

    settings = settings or PromotionSettings.load()
    client, tracking = _client(tracking)
    backtest = backtest or backtest_model
    version = resolve_alias(alias, tracking)
    if version is None:
        raise RegistryError(f"no version of '{tracking.registered_model}' holds @{alias}")
    name, params = model_spec(version, tracking)
    from crimecast.models import ModelsSettings

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
            rows, summary = backtest(build_forecaster(model_name, model_params), panel, graph)
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
