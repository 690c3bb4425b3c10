"""Enforcement-driven offences: counted in the panel, never learnt by the patrol model."""

from __future__ import annotations

import pandas as pd
import pytest

from crimecast.config import ConfigError
from crimecast.contracts import Panel
from crimecast.data.labels import category_lookup
from crimecast.data.panel import build_panel, target_panel
from crimecast.data.settings import DataSettings
from tests.test_pipeline_panel import incidents_frame

WEEKS = pd.date_range("2024-01-01", periods=2, freq="7D")


def test_philadelphia_codes_of_narcotics_dui_prostitution_weapons_are_enforcement(tmp_project):
    settings = DataSettings.load()
    lookup = category_lookup(settings.categories)
    for code, name in (("1800", "narcotics"), ("2100", "DUI"), ("1600", "prostitution"),
                       ("1500", "weapons")):
        assert lookup[code] == "enforcement", name
    assert lookup["800"] == "violent" and lookup["2600"] == "other"
    assert settings.enforcement_categories == ["enforcement"]
    assert settings.target_categories == ["violent", "property", "other"]


def test_enforcement_counts_stay_in_the_panel_but_leave_the_target():
    incidents = incidents_frame(["2024-01-01 10:00", "2024-01-02 11:00", "2024-01-09 12:00"],
                                ["a", "a", "b"], ["violent", "enforcement", "enforcement"])
    panel = Panel(build_panel(incidents, ["a", "b"], weeks=WEEKS,
                              categories=["violent", "property", "enforcement"]))
    assert panel.counts.loc[panel.counts["category"] == "enforcement", "count"].sum() == 2
    target = target_panel(panel, ["enforcement"])
    assert target.categories == ["violent", "property"]
    assert target.counts["count"].sum() == 1
    assert target_panel(target, ["enforcement"]) is target  # nothing to drop


def test_target_panel_reads_the_configured_setting(tmp_project, monkeypatch):
    incidents = incidents_frame(["2024-01-01 10:00", "2024-01-02 11:00"], ["a", "a"],
                                ["violent", "property"])
    panel = Panel(build_panel(incidents, ["a"], weeks=WEEKS,
                              categories=["violent", "property"]))
    assert target_panel(panel).categories == ["violent", "property"]
    monkeypatch.setenv("CRIMECAST_DATA__ENFORCEMENT_CATEGORIES", '["property"]')
    assert target_panel(panel).categories == ["violent"]


def test_unknown_enforcement_category_names_the_key(tmp_project, monkeypatch):
    monkeypatch.setenv("CRIMECAST_DATA__ENFORCEMENT_CATEGORIES", '["narcotic"]')
    with pytest.raises(ConfigError, match="enforcement_categories"):
        DataSettings.load()


def test_stages_that_fit_or_score_models_use_the_target_panel():
    # The model-facing stages all read the panel through target_panel (one setting).
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for stage in ("train", "tune", "evaluate", "promote"):
        source = (root / "training" / f"{stage}.py").read_text()
        assert "target_panel(Panel.load())" in source, stage
        assert "Panel.load()" not in source.replace("target_panel(Panel.load())", ""), stage
    dvc = (root / "dvc.yaml").read_text()
    assert dvc.count("- enforcement_categories") == 4
