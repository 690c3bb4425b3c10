"""Alerts: compare the latest monitoring summary with the configured thresholds.

Rules (thresholds in ``configs/monitoring.yaml``):

- ``drift``: the latest week's share of drifted model inputs reached ``drift.drift_share``;
- ``disparity``: a group's hotspot flags per incident, relative to the city, left
  ``disparity.band`` over the monitored window (groups with fewer than
  ``disparity.min_group_areas`` areas are skipped);
- ``error``: the window's MAE exceeds ``errors.mae_ratio_max`` × the reference MAE, or
  80 % interval coverage fell below ``errors.coverage80_min``.

:func:`evaluate` is pure (summary in, alerts out); :func:`append_alerts` and
:func:`post_webhook` are the two side effects ``crimecast monitor check`` performs.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitoring.settings import MonitoringSettings


def evaluate(summary: dict[str, Any], settings: MonitoringSettings) -> list[dict[str, Any]]:
    """Alerts raised by one monitoring summary (``state/monitoring/summary.json``).

    Each alert is a dict with ``kind`` (drift/disparity/error), ``message``, ``value``,
    ``threshold`` and details; an empty list means everything is inside its band.
    """
    alerts: list[dict[str, Any]] = []
    latest = summary["latest"]
    if latest["drift_share"] >= settings.drift.drift_share:
        alerts.append({
            "kind": "drift", "week": latest["week"], "value": latest["drift_share"],
            "threshold": settings.drift.drift_share,
            "columns": latest.get("drifted_columns", []),
            "message": (f"week {latest['week']}: {latest['drift_share']:.0%} of model inputs "
                        f"drifted (alert at {settings.drift.drift_share:.0%}): "
                        f"{', '.join(latest.get('drifted_columns', [])) or '-'}"),
        })
    low, high = settings.disparity.band
    for breach in summary.get("disparity_breaches", []):
        alerts.append({
            "kind": "disparity", "group": breach["group"], "ratio": breach["ratio"],
            "value": breach["value"], "threshold": [low, high], "direction": breach["direction"],
            "message": (f"group '{breach['group']}': {breach['ratio']} = {breach['value']:.2f} "
                        f"is {breach['direction']} the band [{low}, {high}] over weeks "
                        f"{summary['weeks'][0]}..{summary['weeks'][-1]}"),
        })
    window = summary.get("window", {})
    mae, ref_mae = window.get("mae"), window.get("reference_mae")
    if mae is not None and ref_mae and mae > settings.errors.mae_ratio_max * ref_mae:
        alerts.append({
            "kind": "error", "metric": "mae", "value": mae,
            "threshold": settings.errors.mae_ratio_max * ref_mae,
            "message": (f"MAE {mae:.3f} exceeds {settings.errors.mae_ratio_max} x the reference "
                        f"MAE {ref_mae:.3f}"),
        })
    coverage = window.get("coverage_80")
    if coverage is not None and coverage < settings.errors.coverage80_min:
        alerts.append({
            "kind": "error", "metric": "coverage_80", "value": coverage,
            "threshold": settings.errors.coverage80_min,
            "message": (f"80% interval coverage {coverage:.0%} is below "
                        f"{settings.errors.coverage80_min:.0%}"),
        })
    return alerts


def alert_record(alerts: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    """The JSON record appended to the alert log and POSTed to the webhook."""
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": "crimecast monitor check",
        "model": summary.get("model"),
        "weeks": [summary["weeks"][0], summary["weeks"][-1]] if summary.get("weeks") else [],
        "alerts": alerts,
    }


def append_alerts(path: Path, record: dict[str, Any]) -> Path:
    """Append one JSON line to the alert log (created if missing; fsynced, so a crash
    right after ``check`` returns never loses the alert)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def post_webhook(url: str, record: dict[str, Any], timeout_s: float) -> int:
    """POST the alert record as JSON; returns the HTTP status. Raises
    ``httpx.HTTPError`` when the endpoint cannot be reached or answers an error."""
    import httpx

    response = httpx.post(url, json=record, timeout=timeout_s)
    response.raise_for_status()
    return response.status_code
