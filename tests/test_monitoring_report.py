"""The public transparency report: content, small-count suppression and privacy scan."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from crimecast.cli import app
from crimecast.data.privacy import scan_for_leaks
from crimecast.lifecycle.audit import append_audit
from monitoring.report import count_class, suppress

SECRET = "ck_live_9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def test_small_counts_are_suppressed():
    assert suppress(0) == "<5" and suppress(4.4) == "<5"
    assert suppress(5) == "5" and suppress(12) == "12"
    assert [count_class(c) for c in (0, 4, 5, 9, 10, 49, 50)] == \
        ["<5", "<5", "5–9", "5–9", "10–19", "20–49", "50+"]


@pytest.fixture(scope="module")
def published(synthetic_city, tmp_path_factory):
    """A monitoring run and the report, with an API key planted in env and config (built
    once for the module in a private copy of the synthetic city's project home)."""
    home = tmp_path_factory.mktemp("report") / "project"
    shutil.copytree(synthetic_city.home, home)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("CRIMECAST_HOME", str(home))
        monkeypatch.chdir(home)
        yield _publish(home, monkeypatch)


def _publish(home, monkeypatch):
    monkeypatch.setenv("CRIMECAST_API_KEY", SECRET)
    monkeypatch.setenv("CRIMECAST_MONITORING__WEBHOOK_URL",
                       f"https://hooks.example.org/services?api_key={SECRET}")
    monkeypatch.setenv("CRIMECAST_MONITORING__REFERENCE_WEEKS", "4")
    monkeypatch.setenv("CRIMECAST_MONITORING__HTML_REPORT", "false")
    append_audit({"event": "promote", "decision": "refused", "challenger_version": "2",
                  "champion_version": "1", "reason": "refused: group disparity grew past band"})
    runner = CliRunner()
    ran = runner.invoke(app, ["monitor", "run", "--weeks", "2", "--source", "replay",
                              "--model", "historical_average", "--no-workspace"])
    assert ran.exit_code == 0, ran.output
    reported = runner.invoke(app, ["report"])
    assert reported.exit_code == 0, reported.output
    return home / "reports"


def test_report_shows_metrics_maps_history_and_model_card(published):
    page = (published / "index.html").read_text()
    for heading in ("Maps", "Accuracy, drift and fairness", "By demographic group",
                    "Promotion history", "Did it work?", "Model card"):
        assert heading in page
    assert "No interventions recorded yet" in page  # no `crimecast impact` run here
    assert page.count("data:image/png;base64,") >= 3  # two maps + drift history
    assert "refused: group disparity grew past band" in page
    assert "never scores, lists or predicts individual people" in page


def test_geojson_export_holds_classes_never_small_counts(published):
    layers = json.loads((published / "map_layers.geojson").read_text())
    allowed = {"<5", "5–9", "10–19", "20–49", "50+"}
    assert layers["features"]
    for feature in layers["features"]:
        props = feature["properties"]
        assert set(props) == {"area_id", "group", "recent_count_class", "risk_class"}
        assert props["recent_count_class"] in allowed


def test_published_outputs_pass_the_privacy_scan(published, synthetic_city):
    source_keys = synthetic_city.city.events()["source_key"]
    findings = scan_for_leaks([published], source_keys=set(source_keys))
    assert findings == [], [str(f) for f in findings]
    for path in published.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="ignore"), path
    # Positive control: the scanner does catch this key where it would leak.
    leak = published / "leak.html"
    leak.write_text(f"<p>api_key={SECRET}</p>")
    assert scan_for_leaks([leak])
