"""The public transparency report: content, small-count suppression and privacy scan."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from crimecast.cli import app
from crimecast.data.privacy import scan_for_leaks
from crimecast.forecast.models import get_model
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
    monkeypatch.setenv("CRIMECAST_DATA__CITY__NAME", "Testville")
    monkeypatch.setenv("CRIMECAST_DATA__CITY__SOURCE", "Testville Police open data")
    monkeypatch.setenv("CRIMECAST_DATA__CITY__LICENCE", "CC BY 4.0")
    monkeypatch.setenv("CRIMECAST_DATA__CITY__CONTACT", "oversight@testville.example")
    append_audit({"event": "promote", "decision": "refused", "challenger_version": "2",
                  "champion_version": "1", "reason": "refused: group disparity grew past band"})
    runner = CliRunner()
    ran = runner.invoke(app, ["monitor", "run", "--weeks", "2", "--source", "replay",
                              "--model", "historical_average", "--no-workspace"])
    assert ran.exit_code == 0, ran.output
    reported = runner.invoke(app, ["report"])
    assert reported.exit_code == 0, reported.output
    return home / "reports"


def test_report_shows_metrics_map_history_and_model_card(published):
    page = (published / "index.html").read_text()
    for heading in ("Map", "Accuracy and drift", "Fairness by group", "Alerts",
                    "Promotion history", "Did it work?", "Model card"):
        assert f">{heading}</h2>" in page
    assert "Testville" in page and "Testville Police open data" in page
    assert "CC BY 4.0" in page and "oversight@testville.example" in page
    assert 'id="area-map-plot"' in page and "<script src='plotly.min.js'>" in page
    assert (published / "plotly.min.js").stat().st_size > 1_000_000  # offline: JS on disk
    assert "version 2 was refused by the gate" in page
    assert "No interventions recorded yet" in page  # no `crimecast impact` run here
    assert "refused: group disparity grew past band" in page
    assert "never scores, lists or predicts individual people" in page
    # The gate's policy, in its own words.
    assert "A new model replaces the current one only if" in page


def test_report_names_the_target_week_and_flags_old_data(published, synthetic_city):
    page = (published / "index.html").read_text()
    last = synthetic_city.panel.weeks[-1]
    target = (last + pd.Timedelta(weeks=1)).date().isoformat()
    assert f"week of {target}" in page
    # The synthetic city's data end in 2023: far older than stale_after_days.
    assert "id='stale-banner'" in page and "do not read it as a forecast" in page


def test_fresh_data_have_no_stale_banner(published, synthetic_city, tmp_path):
    from monitoring.report import build_report
    from monitoring.settings import MonitoringSettings

    last = synthetic_city.panel.weeks[-1]
    build_report(MonitoringSettings.load(), tmp_path, today=(last + pd.Timedelta(days=9)).date())
    assert "stale-banner" not in (tmp_path / "index.html").read_text()


def test_every_term_links_to_a_glossary_entry_and_every_table_has_a_csv(published):
    page = (published / "index.html").read_text()
    glossary = (published / "glossary.html").read_text()
    slugs = set(re.findall(r"href='glossary.html#([\w-]+)'", page))
    assert {"mae", "pai", "mixed", "unknown", "disparity", "gate"} <= slugs
    for slug in slugs:
        assert f"id='{slug}'" in glossary, slug
    csvs = re.findall(r"href='(tables/[\w-]+\.csv)'", page)
    assert len(csvs) == page.count("<table>") - 1  # every table but the city facts
    for link in csvs:
        assert (published / link).stat().st_size > 0, link
    assert "groups.csv" in " ".join(csvs) and "promotion_history.csv" in " ".join(csvs)


def test_no_resident_areas_are_not_shown_as_a_disparity(published):
    groups = pd.read_csv(published / "tables" / "groups.csv")
    unknown = groups[groups["group"].str.startswith("no residents")]
    if not unknown.empty:
        assert (unknown["flags per recorded crime vs city"] == "not applicable").all()
    glossary = (published / "glossary.html").read_text()
    assert "no single race/ethnicity group makes up the majority" in glossary  # mixed
    assert "no resident population" in glossary  # unknown


def test_simulation_is_not_linked_when_it_was_not_run(published):
    page = (published / "index.html").read_text()
    assert not (published / "simulation").exists()
    assert "href='#simulation'" not in page


def test_map_hover_text_never_shows_a_count_below_the_floor(synthetic_city):
    from monitoring.areamap import hover_texts, measures

    areas = synthetic_city.graph.areas.reset_index()
    forecast = get_model("historical_average").fit(synthetic_city.panel, synthetic_city.graph
                                                   ).predict(synthetic_city.panel,
                                                             synthetic_city.graph, (1,))
    tables = measures(areas, synthetic_city.panel, forecast, 5)
    shown = []
    for category, table in tables.items():
        assert len(table) == len(areas)
        for text in hover_texts(areas, table, category, "tract", "2023-04-24", 5, {}):
            shown.append(text.rsplit(": ", 1)[-1])
    assert "<5" in shown
    assert all(value == "<5" or int(value) >= 5 for value in shown)


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


def test_exposure_table_reads_in_words(published, tmp_path):
    from crimecast.paths import resolve
    from monitoring.report import build_report
    from monitoring.settings import MonitoringSettings

    settings = MonitoringSettings.load()
    exposure = pd.DataFrame({
        "week": ["2023-04-24", "2023-04-24"], "kind": ["patrol", "patrol"],
        "group": ["black", "white"], "requests": [2, 2], "units": [6.0, 4.0],
        "units_share": [0.6, 0.4], "risk_share": [0.5, 0.5], "resident_share": [0.3, 0.7],
        "units_vs_risk": [1.2, 0.8]})
    target = resolve(settings.output_dir) / "exposure.csv"
    saved = target.read_text()
    try:
        exposure.to_csv(target, index=False)
        build_report(settings, tmp_path)
    finally:
        target.write_text(saved)
    page = (tmp_path / "index.html").read_text()
    assert "Black-majority tracts got 60% of the patrol units, with 50% of the forecast risk " \
           "and 30% of the residents." in page
    table = pd.read_csv(tmp_path / "tables" / "exposure.csv")
    assert list(table["share handed out"]) == ["60%", "40%"]


def test_alerts_show_status_who_when_and_next_step(published, tmp_path):
    from monitoring.alerts import alert_record, append_alerts, evaluate, reconcile, set_status
    from monitoring.report import build_report
    from monitoring.settings import MonitoringSettings

    settings = MonitoringSettings.load()
    summary = json.loads((settings.path("output_dir") / "summary.json").read_text())
    summary["latest"].update(prediction_drifted=True, prediction_drift_score=0.42)
    alerts = [a for a in evaluate(summary, settings) if a["kind"] == "forecast_drift"]
    status_log, alert_log = settings.path("alert_status_path"), settings.path("alerts_path")
    try:
        reconcile(status_log, alerts)
        append_alerts(alert_log, alert_record(alerts, summary))
        set_status(status_log, alerts[0]["id"], "acknowledged", "dana", "checking the feed")
        build_report(settings, tmp_path)
    finally:
        status_log.unlink(missing_ok=True)
        alert_log.unlink(missing_ok=True)
    table = pd.read_csv(tmp_path / "tables" / "alerts.csv")
    row = table.iloc[0]
    assert row["status"] == "acknowledged" and row["who"] == "dana"
    assert row["note"] == "checking the feed" and "forecasts themselves moved" in row["what"]
    assert row["what happens next"].startswith("The model team compares")
