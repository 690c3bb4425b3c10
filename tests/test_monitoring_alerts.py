"""`crimecast monitor run` + `monitor check` end to end: a challenger biased against one
group, served through the prediction log, raises a disparity alert that lands in
state/alerts.jsonl and at a webhook (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crimecast.cli import app
from crimecast.contracts import AreaGraph, Panel
from crimecast.forecast.models import get_model

SERVED_WEEKS = 3
BIAS_FACTOR = 6.0

SERVED_SCHEMA = """CREATE TABLE served_forecasts (
    model_version TEXT, data_week DATE, area_id TEXT, week DATE, category TEXT,
    horizon INTEGER, mean REAL, lower_80 REAL, upper_80 REAL, lower_95 REAL, upper_95 REAL,
    PRIMARY KEY (model_version, area_id, category, horizon))"""


def _target_group(graph: AreaGraph) -> str:
    """The biggest group that an honest model rarely flags (least crime per area)."""
    sizes = graph.areas.groupby("group").size()
    return str(sizes[sizes >= 4].index[-1]) if (sizes >= 4).any() else str(sizes.idxmax())


def _serve(home: Path, panel: Panel, graph: AreaGraph, biased_group: str | None) -> None:
    """Write the last SERVED_WEEKS weeks' one-week-ahead forecasts into the prediction log,
    as the serving API does (one model version per loaded week)."""
    model = get_model("historical_average", window=8)
    weeks = panel.weeks[-SERVED_WEEKS:]
    model.fit(panel.until(weeks[0] - pd.Timedelta(days=1)), graph)
    in_group = (graph.areas["group"] == biased_group).to_dict() if biased_group else {}
    rows = []
    for number, week in enumerate(weeks):
        forecast = model.predict(panel.until(week - pd.Timedelta(days=1)), graph, (1,))
        factor = np.where(forecast["area_id"].map(in_group).fillna(False), BIAS_FACTOR, 1.0)
        for column in ("mean", "lower_80", "upper_80", "lower_95", "upper_95"):
            forecast[column] = forecast[column] * factor
        forecast["model_version"] = f"{number + 1}"
        forecast["data_week"] = (week - pd.Timedelta(weeks=1)).date().isoformat()
        forecast["week"] = forecast["week"].dt.date.astype(str)
        rows.append(forecast)
    served = pd.concat(rows)
    (home / "state").mkdir(exist_ok=True)
    with sqlite3.connect(home / "state" / "predlog.db") as conn:
        conn.execute(SERVED_SCHEMA)
        served[["model_version", "data_week", "area_id", "week", "category", "horizon", "mean",
                "lower_80", "upper_80", "lower_95", "upper_95"]].to_sql(
            "served_forecasts", conn, if_exists="append", index=False)


class _Capture(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    _Capture.received = []
    server = HTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Capture.received
    server.shutdown()
    server.server_close()


def _run_and_check(home: Path, monkeypatch, webhook_url: str):
    monkeypatch.setenv("CRIMECAST_MONITORING__REFERENCE_WEEKS", "6")
    monkeypatch.setenv("CRIMECAST_MONITORING__HTML_REPORT", "false")
    monkeypatch.setenv("CRIMECAST_MONITORING__WEBHOOK_URL", webhook_url)
    runner = CliRunner()
    ran = runner.invoke(app, ["monitor", "run", "--source", "predlog", "--model",
                              "historical_average", "--no-workspace"])
    assert ran.exit_code == 0, ran.output
    assert "from the predlog" in ran.output
    return runner.invoke(app, ["monitor", "check"])


def test_biased_challenger_raises_disparity_alert_and_webhook(synthetic_project, synthetic_city,
                                                               monkeypatch, webhook):
    url, received = webhook
    group = _target_group(synthetic_city.graph)
    _serve(synthetic_project, synthetic_city.panel, synthetic_city.graph, biased_group=group)
    checked = _run_and_check(synthetic_project, monkeypatch, url)
    assert checked.exit_code == 1, checked.output
    log = synthetic_project / "state" / "alerts.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 1
    above = [a for a in records[0]["alerts"]
             if a["kind"] == "disparity" and a["group"] == group and a["direction"] == "above"]
    assert above, records[0]["alerts"]
    assert above[0]["value"] > 1.25
    assert len(received) == 1 and received[0] == records[0]


def test_honest_model_raises_no_alert_against_that_group(synthetic_project, synthetic_city,
                                                         monkeypatch, webhook):
    url, received = webhook
    group = _target_group(synthetic_city.graph)
    _serve(synthetic_project, synthetic_city.panel, synthetic_city.graph, biased_group=None)
    checked = _run_and_check(synthetic_project, monkeypatch, url)
    log = synthetic_project / "state" / "alerts.jsonl"
    alerts = [a for line in log.read_text().splitlines() for a in json.loads(line)["alerts"]] \
        if log.exists() else []
    assert not [a for a in alerts if a["kind"] == "disparity" and a["group"] == group
                and a["direction"] == "above"]
    assert not [a for a in alerts if a["kind"] == "drift"]
    assert len(received) == (1 if checked.exit_code == 1 else 0)


def test_check_without_a_monitoring_run_says_what_to_do(tmp_project):
    result = CliRunner().invoke(app, ["monitor", "check"])
    assert result.exit_code == 2
    assert "crimecast monitor run" in result.output


def _breach_summary(group: str) -> dict:
    return {"weeks": ["2026-01-05", "2026-01-12"],
            "latest": {"week": "2026-01-12", "drift_share": 0.0, "drifted_columns": [],
                       "prediction_drifted": False, "prediction_drift_score": 0.0},
            "window": {}, "disparity_breaches": [
                {"group": group, "ratio": "flag_rate_per_incident_ratio", "value": 3.1,
                 "band": [0.8, 1.25], "direction": "above"}]}


def test_alerts_on_exempt_groups_follow_the_gates_setting(tmp_project, monkeypatch):
    from monitoring import disparity
    from monitoring.alerts import evaluate
    from monitoring.settings import MonitoringSettings

    settings = MonitoringSettings.load()
    table = pd.DataFrame({"group": ["unknown", "white"], "areas": [10.0, 10.0],
                          "flag_rate_per_incident_ratio": [3.1, 1.0]})
    # configs/promotion.yaml exempts "unknown" (no residents): neither the breach list
    # nor the alerts name it ...
    assert disparity.exempt_groups() == ["unknown"]
    assert disparity.band_breaches(table, settings.disparity) == []
    assert evaluate(_breach_summary("unknown"), settings) == []
    assert [a["id"] for a in evaluate(_breach_summary("white"), settings)] == \
        ["disparity:white:above"]
    # ... and with the gate's exemption removed, both alert on it: one setting.
    monkeypatch.setenv("CRIMECAST_PROMOTION__EXEMPT_GROUPS", "[]")
    assert [b["group"] for b in disparity.band_breaches(table, settings.disparity)] == ["unknown"]
    alerts = evaluate(_breach_summary("unknown"), settings)
    assert [a["kind"] for a in alerts] == ["disparity"]
    assert "3.10× the hotspot flags" in alerts[0]["message"] and alerts[0]["next_step"]


def test_forecast_drift_raises_an_alert(tmp_project):
    from monitoring.alerts import evaluate
    from monitoring.settings import MonitoringSettings

    summary = _breach_summary("white")
    summary["disparity_breaches"] = []
    summary["latest"].update(prediction_drifted=True, prediction_drift_score=0.4)
    alerts = evaluate(summary, MonitoringSettings.load())
    assert [a["kind"] for a in alerts] == ["forecast_drift"]
    assert "forecasts themselves moved" in alerts[0]["message"]
