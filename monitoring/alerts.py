"""Alerts: compare the latest monitoring summary with the thresholds, and track each
alert's status (open, acknowledged, resolved) with who and when.

Rules (thresholds in ``configs/monitoring.yaml``):

- ``drift``: the latest week's share of drifted *changing* model inputs (the lags)
  reached ``drift.drift_share``;
- ``area_data``: a static census input (population, income, poverty) drifted, which
  means the area data were replaced;
- ``forecast_drift``: the latest week's forecasts drifted from the reference window's
  (``drift.prediction_threshold``);
- ``disparity``: a group's hotspot flags per incident, relative to the city, left
  ``disparity.band`` over the monitored window (groups with fewer than
  ``disparity.min_group_areas`` areas and the gate's ``exempt_groups`` are skipped);
- ``error``: the window's MAE exceeds ``errors.mae_ratio_max`` × the reference MAE, or
  80 % interval coverage fell below ``errors.coverage80_min``;
- ``manual_alias``: a registry alias was moved outside crimecast (the MLflow UI), past
  the promotion gate (an audit record with event ``manual``).

Every alert has a stable ``id`` (the same condition keeps its id from check to check), a
plain-words ``message`` and a ``next_step``. Statuses live in the append-only
``alert_status_path`` (JSON lines ``{id, status, at, actor, note, kind, message,
next_step}``): :func:`reconcile` (``monitor check``) opens new alerts, reopens resolved
ones that came back and resolves the ones whose condition cleared; people acknowledge
and resolve with :func:`set_status` (``monitor ack|resolve``). A ``manual_alias`` alert
never clears by itself: only a person can resolve it.

:func:`evaluate` is pure (summary in, alerts out).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crimecast.errors import CrimecastError
from monitoring.settings import MonitoringSettings

STATUSES: tuple[str, ...] = ("open", "acknowledged", "resolved")
CHECKER = "crimecast monitor check"

NEXT_STEPS: dict[str, str] = {
    "drift": ("The data team checks whether the city changed how it records crime (new "
              "offence codes, a feed outage) before the next weekly retrain; forecasts keep "
              "being served meanwhile."),
    "area_data": ("The data team confirms the new census figures are intended (a census "
                  "refresh) and retrains so the model learns them."),
    "forecast_drift": ("The model team compares this week's forecasts with recorded crime; "
                       "if they disagree, the model is retrained or rolled back "
                       "(`crimecast rollback`)."),
    "disparity": ("The model team reviews where hotspot flags went for this group; if the "
                  "gap is still there at the next check, the model in service is rolled back "
                  "or replaced through the promotion gate, and the committee is told."),
    "error": ("The model team retrains on the latest weeks and runs the promotion gate; "
              "until then, treat the forecasts as less reliable."),
    "manual_alias": ("Someone changed which model serves forecasts outside crimecast, "
                     "without the promotion gate. An administrator finds out who, then either "
                     "runs the gate (`crimecast promote`) or restores the previous model "
                     "(`crimecast rollback`), and resolves this alert with a note."),
}


def _alert(kind: str, subject: str, message: str, **details: Any) -> dict[str, Any]:
    return {"id": f"{kind}:{subject}" if subject else kind, "kind": kind, "message": message,
            "next_step": NEXT_STEPS[kind], **details}


def evaluate(summary: dict[str, Any] | None, settings: MonitoringSettings,
             exempt: list[str] | None = None,
             manual: Iterable[dict[str, Any]] = (), group_rule: str = "majority"
             ) -> list[dict[str, Any]]:
    """Alerts raised by one monitoring summary (``state/monitoring/summary.json``; None
    when there is none yet) and by the audit log's ``manual`` records.

    ``exempt``: labels never alerted on for disparity (default: the gate's
    ``exempt_groups``); ``group_rule``: how groups were labelled (configs/data.yaml
    ``groups.rule``), for the words (``Hispanic-majority``). Each alert has ``id``, ``kind``, ``message`` (plain words),
    ``next_step``, ``value``/``threshold`` and details; an empty list means everything is
    inside its band.
    """
    alerts: list[dict[str, Any]] = []
    if summary is not None:
        alerts += _summary_alerts(summary, settings, exempt, group_rule)
    for record in manual:
        for change in record.get("alias_changes") or []:
            was = f"version {change['from']}" if change.get("from") else "no model"
            now = f"version {change['to']}" if change.get("to") else "no model"
            alerts.append(_alert(
                "manual_alias", str(record.get("at")),
                (f"On {str(record.get('at'))[:16].replace('T', ' ')} UTC the @{change['alias']} "
                 f"label moved from {was} to {now} outside crimecast (for example in the "
                 "MLflow UI), so the promotion gate never checked it."),
                alias=change["alias"], value=change.get("to"), threshold=None))
    return alerts


def _summary_alerts(summary: dict[str, Any], settings: MonitoringSettings,
                    exempt: list[str] | None, group_rule: str) -> list[dict[str, Any]]:
    from monitoring.disparity import exempt_groups
    from monitoring.glossary import group_words

    exempt = exempt_groups() if exempt is None else exempt
    alerts: list[dict[str, Any]] = []
    latest = summary["latest"]
    week = latest["week"]
    share = latest["drift_share"]
    if share >= settings.drift.drift_share:
        columns = latest.get("drifted_columns", [])
        alerts.append(_alert(
            "drift", "inputs",
            (f"In the week of {week}, {share:.0%} of the recent-crime figures the model reads "
             f"changed markedly from the reference weeks (an alert is raised at "
             f"{settings.drift.drift_share:.0%}): {', '.join(columns) or '-'}."),
            week=week, value=share, threshold=settings.drift.drift_share, columns=columns))
    static = latest.get("static_drifted") or []
    if static:
        alerts.append(_alert(
            "area_data", "census",
            (f"In the week of {week}, the census figures of the areas changed "
             f"({', '.join(static)}): the area data were replaced."),
            week=week, value=len(static), threshold=0, columns=static))
    if latest.get("prediction_drifted"):
        score = latest.get("prediction_drift_score")
        alerts.append(_alert(
            "forecast_drift", "forecasts",
            (f"In the week of {week}, the forecasts themselves moved away from those of the "
             f"reference weeks (drift score {score:.2f}, alert at "
             f"{settings.drift.prediction_threshold:g})."),
            week=week, value=score, threshold=settings.drift.prediction_threshold))
    low, high = settings.disparity.band
    weeks = summary.get("weeks") or ["?"]
    for breach in summary.get("disparity_breaches", []):
        if breach["group"] in exempt:
            continue
        value = breach["value"]
        more = "more" if breach["direction"] == "above" else "fewer"
        alerts.append(_alert(
            "disparity", f"{breach['group']}:{breach['direction']}",
            (f"{group_words(breach['group'], group_rule)} areas received {value:.2f}× the "
             "hotspot flags "
             f"their share of recorded crime would suggest ({more} than the allowed "
             f"{low:g}–{high:g}×) over the weeks {weeks[0]} to {weeks[-1]}."),
            group=breach["group"], ratio=breach["ratio"], value=value, threshold=[low, high],
            direction=breach["direction"]))
    window = summary.get("window", {})
    mae, ref_mae = window.get("mae"), window.get("reference_mae")
    if mae is not None and ref_mae and mae > settings.errors.mae_ratio_max * ref_mae:
        alerts.append(_alert(
            "error", "mae",
            (f"Forecasts missed by {mae:.2f} crimes per area and week on average, "
             f"{mae / ref_mae:.1f}× the {ref_mae:.2f} of the reference weeks (alert above "
             f"{settings.errors.mae_ratio_max:g}×)."),
            metric="mae", value=mae, threshold=settings.errors.mae_ratio_max * ref_mae))
    coverage = window.get("coverage_80")
    if coverage is not None and coverage < settings.errors.coverage80_min:
        alerts.append(_alert(
            "error", "coverage_80",
            (f"Only {coverage:.0%} of recorded counts fell inside the forecasts' 80 % ranges "
             f"(alert below {settings.errors.coverage80_min:.0%})."),
            metric="coverage_80", value=coverage, threshold=settings.errors.coverage80_min))
    return alerts


def alert_record(alerts: list[dict[str, Any]], summary: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON record appended to the alert log and POSTed to the webhook."""
    summary = summary or {}
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": CHECKER,
        "model": summary.get("model"),
        "weeks": [summary["weeks"][0], summary["weeks"][-1]] if summary.get("weeks") else [],
        "alerts": alerts,
    }


def _append_line(path: Path, record: dict[str, Any]) -> Path:
    """Append one JSON line (created if missing; fsynced, so a crash right after
    ``check`` returns never loses it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def append_alerts(path: Path, record: dict[str, Any]) -> Path:
    """Append one check's raised alerts to the alert log."""
    return _append_line(path, record)


def read_statuses(path: Path) -> dict[str, dict[str, Any]]:
    """Each alert id's latest status record (in the order alerts first appeared)."""
    latest: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return latest
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line after a crash
        previous = latest.get(record["id"], {})
        latest[record["id"]] = {**previous, **record}
    return latest


def _status(alert_id: str, status: str, actor: str, note: str = "",
            alert: dict[str, Any] | None = None) -> dict[str, Any]:
    record = {"id": alert_id, "status": status, "actor": actor, "note": note,
              "at": datetime.now(UTC).isoformat(timespec="seconds")}
    if alert is not None:
        record.update(kind=alert["kind"], message=alert["message"],
                      next_step=alert["next_step"])
    return record


def reconcile(path: Path, alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Bring the status log up to date with the alerts of this check and return every
    alert's latest status.

    A new alert, or one resolved before that is raised again, is ``open``; an
    acknowledged one stays acknowledged (someone is on it);
    an open or acknowledged alert no longer raised is ``resolved`` by the checker, except
    ``manual_alias`` alerts, which only a person resolves.
    """
    statuses = read_statuses(path)
    raised = {a["id"]: a for a in alerts}
    for alert_id, alert in raised.items():
        current = statuses.get(alert_id)
        if current is None or (current["status"] == "resolved"
                               and alert["kind"] != "manual_alias"):
            _append_line(path, _status(alert_id, "open", CHECKER, alert=alert))
    for alert_id, current in statuses.items():
        if (alert_id not in raised and current["status"] != "resolved"
                and current.get("kind") != "manual_alias"):
            _append_line(path, _status(alert_id, "resolved", CHECKER,
                                       "the condition cleared at the latest check"))
    return read_statuses(path)


def set_status(path: Path, alert_id: str, status: str, actor: str, note: str = ""
               ) -> dict[str, Any]:
    """A person acknowledges or resolves an alert; returns its new status record.
    Raises :class:`CrimecastError` for an unknown id or status."""
    if status not in STATUSES:
        raise CrimecastError(f"unknown alert status {status!r}",
                             hint=f"use one of {', '.join(STATUSES)}")
    statuses = read_statuses(path)
    if alert_id not in statuses:
        known = ", ".join(statuses) or "none yet"
        raise CrimecastError(f"no alert with id {alert_id!r} in {path}",
                             hint=f"`crimecast monitor alerts` lists them (known: {known})")
    current = statuses[alert_id]
    record = {**_status(alert_id, status, actor, note),
              **{k: current[k] for k in ("kind", "message", "next_step") if k in current}}
    _append_line(path, record)
    return record


def post_webhook(url: str, record: dict[str, Any], timeout_s: float) -> int:
    """POST the alert record as JSON; returns the HTTP status. Raises
    ``httpx.HTTPError`` when the endpoint cannot be reached or answers an error."""
    import httpx

    response = httpx.post(url, json=record, timeout=timeout_s)
    response.raise_for_status()
    return response.status_code
