"""Data drift, prediction drift and regression performance with Evidently 0.7.

One Evidently report per monitored week compares that week's monitoring frame (see
:mod:`monitoring.frames`) with the reference window: drift of every model input
(``DataDriftPreset`` with the configured per-column tests), drift of the forecasts
(``ValueDrift`` on ``prediction``) and, once outcomes exist, ``RegressionPreset``
(target = observed count, prediction = expected count). The numbers the rest of the
system needs are read back from the snapshot into a small :class:`DriftResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from monitoring.frames import LAG_INPUTS, input_columns
from monitoring.settings import DriftSettings

LAG_SET = frozenset(LAG_INPUTS)


@dataclass(frozen=True)
class DriftResult:
    """What one week's drift report found.

    ``drift_share``: share of drifted *changing* inputs (the lags; 0–1);
    ``drifted_columns``: every drifted input, lags and census covariates;
    ``static_drifted``: the drifted census covariates (static inputs, outside the share); ``scores``: column → drift score (distance or p-value, per the column's test);
    ``prediction_score`` / ``prediction_drifted``: the same for the forecasts;
    ``dataset_drift``: share reached the configured ``drift_share``;
    ``mae`` / ``rmse``: Evidently's regression metrics (None without outcomes).
    """

    week: pd.Timestamp
    drift_share: float
    drifted_columns: list[str]
    scores: dict[str, float]
    prediction_score: float
    prediction_drifted: bool
    dataset_drift: bool
    mae: float | None = None
    rmse: float | None = None
    rows: int = 0
    static_drifted: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        """Flat record for the weekly table."""
        return {
            "week": self.week, "drift_share": self.drift_share,
            "drifted_columns": ",".join(self.drifted_columns),
            "static_drifted": ",".join(self.static_drifted),
            "dataset_drift": self.dataset_drift,
            "prediction_drift_score": self.prediction_score,
            "prediction_drifted": self.prediction_drifted,
            "evidently_mae": self.mae, "evidently_rmse": self.rmse, "rows": self.rows,
            **{f"drift_score__{c}": s for c, s in self.scores.items()},
        }


def sample_reference(reference: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """A seeded row sample of the reference window (all rows when it is small enough),
    so a long window does not make every weekly report slower."""
    if len(reference) <= max_rows:
        return reference
    return reference.sample(n=max_rows, random_state=seed).sort_index()


def _definitions(current: pd.DataFrame, reference: pd.DataFrame):
    """Column lists and Evidently data definitions for a (current, reference) pair.

    Returns ``(inputs, columns, definition, scored)``: the input columns, every column
    handed to Evidently, their data definition, and whether both sides have outcomes
    (so regression metrics apply)."""
    from evidently import DataDefinition, Regression

    if current.empty:
        raise ValueError("drift report: the current week has no rows")
    if reference.empty:
        raise ValueError("drift report: the reference window has no rows")
    inputs = input_columns(current)
    missing = [c for c in inputs + ["prediction"] if c not in reference.columns]
    if missing:
        raise ValueError(f"drift report: reference frame lacks column(s) {missing}")
    scored = ("target" in current and bool(current["target"].notna().all())
              and "target" in reference and bool(reference["target"].notna().all()))
    columns = inputs + ["prediction"] + (["target"] if scored else [])
    regression = [Regression(target="target", prediction="prediction")] if scored else None
    definition = DataDefinition(numerical_columns=columns, regression=regression)
    return inputs, columns, definition, scored


def _drift_metrics(inputs: list[str], settings: DriftSettings, preset: bool) -> list[Any]:
    from evidently.metrics import DriftedColumnsCount, ValueDrift
    from evidently.presets import DataDriftPreset

    per_method = {c: t.method for c, t in settings.per_feature.items() if c in inputs}
    per_threshold = {c: t.threshold for c, t in settings.per_feature.items() if c in inputs}
    # The share counts the changing inputs only: static census covariates would dilute
    # it (3 of 6 inputs can almost never drift), so they get their own per-column tests.
    common = {"columns": [c for c in inputs if c in LAG_SET] or inputs,
              "drift_share": settings.drift_share,
              "method": settings.method, "threshold": settings.threshold,
              "per_column_method": per_method or None,
              "per_column_threshold": per_threshold or None}
    prediction = ValueDrift(column="prediction", method=settings.prediction_method,
                            threshold=settings.prediction_threshold)
    if preset:
        return [DataDriftPreset(**common), prediction]
    # The lean form: the same drift share and per-column scores, without the preset's
    # large rendered table (which costs several seconds per report).
    per_column = [ValueDrift(column=c, method=per_method.get(c, settings.method),
                             threshold=per_threshold.get(c, settings.threshold)) for c in inputs]
    return [DriftedColumnsCount(**common), *per_column, prediction]


def drift_report(current: pd.DataFrame, reference: pd.DataFrame, settings: DriftSettings,
                 timestamp: datetime | None = None, tags: list[str] | None = None,
                 full: bool = False, name: str | None = None):
    """Run one week's Evidently report; returns ``(snapshot, DriftResult)``.

    ``current``: one week's monitoring frame; ``reference``: the reference window's
    monitoring frame (input columns and ``prediction``; ``target`` for regression
    metrics). The lean form (default) holds the drift share, one ``ValueDrift`` per input
    and for the forecasts, and MAE/RMSE when both sides have outcomes: what the weekly
    dashboard points need. ``full=True`` uses ``DataDriftPreset`` and ``RegressionPreset``
    instead, for a human-readable HTML report of one week.
    """
    from evidently import Dataset, Report
    from evidently.metrics import MAE, RMSE
    from evidently.presets import RegressionPreset

    inputs, columns, definition, scored = _definitions(current, reference)
    metrics: list[Any] = _drift_metrics(inputs, settings, preset=full)
    if scored:
        # Lean form: no error-distribution plots (rendering dominates report time).
        metrics += ([RegressionPreset()] if full
                    else [MAE(error_distr=False), RMSE(error_distr=False)])
    snapshot = Report(metrics, include_tests=True).run(
        Dataset.from_pandas(current[columns].reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(reference[columns].reset_index(drop=True), data_definition=definition),
        timestamp=timestamp, tags=tags or [], name=name,
    )
    week = pd.Timestamp(current["week"].iloc[0]) if "week" in current else pd.Timestamp(timestamp)
    return snapshot, parse_snapshot(snapshot.dict(), week, inputs, settings.drift_share,
                                    rows=len(current))


def parse_snapshot(payload: dict[str, Any], week: pd.Timestamp, inputs: list[str],
                   drift_share_threshold: float, rows: int = 0) -> DriftResult:
    """Read drift share, per-column scores and drift flags, and MAE/RMSE out of an Evidently
    snapshot's ``dict()`` (the flags come from the snapshot's own per-column tests)."""
    status_by_metric: dict[str, bool] = {}
    for test in payload.get("tests", []):
        metric_id = test.get("metric_config", {}).get("metric_id")
        failed = str(test.get("status", "")).upper().endswith("FAIL")
        status_by_metric[metric_id] = status_by_metric.get(metric_id, False) or failed
    share, scores, drifted = 0.0, {}, {}
    mae = rmse = None
    for metric in payload["metrics"]:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]
        value = metric["value"]
        if kind == "DriftedColumnsCount":
            share = float(value["share"])
        elif kind == "ValueDrift":
            column = metric["config"]["column"]
            scores[column] = float(value)
            drifted[column] = status_by_metric.get(metric["id"], False)
        elif kind == "MAE":
            mae = float(value["mean"])
        elif kind == "RMSE":
            rmse = float(value if not isinstance(value, dict) else value.get("mean", np.nan))
    return DriftResult(
        week=week,
        drift_share=share,
        drifted_columns=[c for c in inputs if drifted.get(c)],
        static_drifted=[c for c in inputs if drifted.get(c) and c not in LAG_SET],
        scores={c: scores[c] for c in inputs if c in scores},
        prediction_score=scores.get("prediction", float("nan")),
        prediction_drifted=drifted.get("prediction", False),
        dataset_drift=share >= drift_share_threshold,
        mae=mae, rmse=rmse, rows=rows,
    )
