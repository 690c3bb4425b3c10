"""A gate bypass is visible: an alias moved directly through MLflow (as the MLflow UI
does) becomes a `manual` audit entry and an open alert at the next `monitor check`; the
alert's status goes open -> acknowledged -> resolved with who and when; `models history`
lists every decision, the refusal and the manual change included."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from crimecast.cli import app
from crimecast.lifecycle.audit import append_audit, read_audit
from crimecast.lifecycle.registry import MANUAL_ACTOR, set_alias
from crimecast.lifecycle.store import TrackingSettings, mlflow_client

CLEAN_SUMMARY = {
    "weeks": ["2026-01-05", "2026-01-12"], "model": "champion v1", "source": "replay",
    "latest": {"week": "2026-01-12", "drift_share": 0.0, "drifted_columns": [],
               "static_drifted": [], "dataset_drift": False, "prediction_drifted": False,
               "prediction_drift_score": 0.01},
    "window": {"mae": 1.0, "reference_mae": 1.0, "coverage_80": 0.8},
    "disparity_breaches": [],
}


def _two_versions(project) -> None:
    """Two registered versions; v1 holds @champion through crimecast (audited)."""
    client = mlflow_client()
    name = TrackingSettings.load().registered_model
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=(project / "state").as_uri())
    set_alias("champion", "1", actor="alice", event="promote")
    append_audit({"event": "promote", "decision": "refused", "actor": "alice",
                  "challenger_version": "2", "champion_version": "1",
                  "reason": "refused: not better than the champion"})


def test_alias_set_directly_through_mlflow_is_recorded_as_manual_and_alerts(tracked_project):
    _two_versions(tracked_project)
    summary = tracked_project / "state" / "monitoring" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps(CLEAN_SUMMARY))
    runner = CliRunner()
    clean = runner.invoke(app, ["monitor", "check", "--no-webhook"])
    assert clean.exit_code == 0, clean.output
    assert "ok: nothing needs attention" in clean.output

    # What the MLflow UI's alias button does: straight to the registry, past the gate.
    client = mlflow_client()
    client.set_registered_model_alias(TrackingSettings.load().registered_model, "champion", "2")

    checked = runner.invoke(app, ["monitor", "check", "--no-webhook"])
    assert checked.exit_code == 1, checked.output
    manual = [r for r in read_audit() if r["event"] == "manual"]
    assert len(manual) == 1
    assert manual[0]["decision"] == "manual" and manual[0]["actor"] == MANUAL_ACTOR
    assert manual[0]["alias_changes"] == [{"alias": "champion", "from": "1", "to": "2"}]
    assert "OPEN: " in checked.output and "outside crimecast" in checked.output
    assert "what happens next:" in checked.output

    # Detected once: a second check records no second manual entry, the alert stays open.
    again = runner.invoke(app, ["monitor", "check", "--no-webhook"])
    assert again.exit_code == 1
    assert len([r for r in read_audit() if r["event"] == "manual"]) == 1

    alert_id = f"manual_alias:{manual[0]['at']}"
    acked = runner.invoke(app, ["monitor", "ack", alert_id, "--actor", "bob",
                                "--note", "asking who moved it"])
    assert acked.exit_code == 0, acked.output
    after_ack = runner.invoke(app, ["monitor", "check", "--no-webhook"])
    assert after_ack.exit_code == 0, after_ack.output
    assert "ACKNOWLEDGED by bob" in after_ack.output

    resolved = runner.invoke(app, ["monitor", "resolve", alert_id, "--actor", "carol",
                                   "--note", "v2 confirmed by the gate owner"])
    assert resolved.exit_code == 0, resolved.output
    listed = runner.invoke(app, ["monitor", "alerts", "--all"])
    assert "resolved" in listed.output and "carol" in listed.output
    statuses = [json.loads(line) for line in
                (tracked_project / "state" / "alert_status.jsonl").read_text().splitlines()]
    assert [(s["status"], s["actor"]) for s in statuses if s["id"] == alert_id] == [
        ("open", "crimecast monitor check"), ("acknowledged", "bob"), ("resolved", "carol")]
    # A resolved bypass stays resolved (the audit entry remains, the alert does not reopen).
    final = runner.invoke(app, ["monitor", "check", "--no-webhook"])
    assert final.exit_code == 0, final.output

    history = runner.invoke(app, ["models", "history", "--json"])
    decisions = [json.loads(line)["decision"] for line in history.output.splitlines()]
    assert decisions == ["alias_set", "refused", "manual"]
