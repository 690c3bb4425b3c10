"""Ingest: each quarantine rule, the incidents contract, atomic outputs, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely

from crimecast.contracts import ARTIFACTS, ContractError
from crimecast.data.ingest import QUARANTINE_COLUMNS, REASONS, clean_incidents, run_ingest
from crimecast.data.settings import DataSettings
from crimecast.data.sources.philadelphia import PhiladelphiaSource

SLICE = Path(__file__).parent / "fixtures" / "data" / "philly_slice"
NOW = pd.Timestamp("2025-01-01 12:00", tz="America/New_York")


@pytest.fixture
def slice_project(tmp_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose Philadelphia snapshot is the 6-tract fixture, fetched into data/."""
    monkeypatch.setenv("CRIMECAST_DATA__SOURCE", "philadelphia")
    monkeypatch.setenv("CRIMECAST_DATA__PHILADELPHIA__SNAPSHOT_DIR", str(SLICE))
    settings = DataSettings.load()
    PhiladelphiaSource(settings).fetch(settings.raw_path())
    return tmp_project


@pytest.fixture(scope="module")
def slice_areas():
    return PhiladelphiaSource(DataSettings()).read_areas(SLICE)


def _point_outside_areas(areas) -> tuple[float, float]:
    """A point inside the areas' bounding box but in none of them."""
    union = shapely.union_all(areas.geometry.values)
    minx, miny, maxx, maxy = union.bounds
    for fx in np.linspace(0.01, 0.99, 25):
        for fy in np.linspace(0.01, 0.99, 25):
            x, y = minx + fx * (maxx - minx), miny + fy * (maxy - miny)
            if not union.intersects(shapely.Point(x, y)):
                return x, y
    raise AssertionError("fixture areas fill their bounding box")


def test_each_bad_row_is_quarantined_with_its_reason(slice_areas) -> None:
    inside = slice_areas.geometry.iloc[0].representative_point()
    x, y = inside.x, inside.y
    ox, oy = _point_outside_areas(slice_areas)
    rows = [
        ("1", "2024-01-08 10:00:00", 600, x, y, ""),  # good
        ("2", "2024-01-09", 100, x, y, ""),  # good: a date alone is midnight
        ("3", "2024-03-10 02:30:00", 300, x, y, ""),  # good: spring-forward gap, shifted
        ("4", "2024-11-03 01:30:00", 2600, x, y, ""),  # good: autumn overlap
        (None, "2024-01-08 10:00:00", 600, x, y, "missing_source_key"),
        ("1", "2024-01-08 11:00:00", 600, x, y, "duplicate_source_key"),
        ("5", "yesterday-ish 400 BLOCK W INDIANA AV", 600, x, y, "unparseable_date"),
        ("6", "2099-01-01 00:00:00", 600, x, y, "future_timestamp"),
        ("7", "2024-01-08 10:00:00", 9999, x, y, "unknown_offense_code"),
        ("8", "2024-01-08 10:00:00", "THEFT", x, y, "unknown_offense_code"),
        ("9", "2024-01-08 10:00:00", 600, np.nan, y, "missing_coordinates"),
        ("10", "2024-01-08 10:00:00", 600, 0.0, 0.0, "missing_coordinates"),
        ("11", "2024-01-08 10:00:00", 600, -80.0, 40.0, "outside_bbox"),
        ("12", "2024-01-08 10:00:00", 600, ox, oy, "outside_areas"),
    ]
    raw = pd.DataFrame(rows, columns=["source_key", "occurred_local", "offense_code", "lon",
                                      "lat", "expected"])
    result = clean_incidents(raw.drop(columns="expected"), slice_areas, DataSettings(), now=NOW)

    expected = raw.loc[raw["expected"] != "", "expected"].tolist()
    assert result.quarantine["reason"].tolist() == expected
    assert len(result.incidents) == 4
    counts = result.report["quarantine_by_reason"]
    assert counts["missing_coordinates"] == 2 and counts["unknown_offense_code"] == 2
    assert sum(counts.values()) == len(expected) and set(counts) == set(REASONS)
    # The quarantine keeps no free text: the address typed into the date field is redacted.
    assert list(result.quarantine.columns) == list(QUARANTINE_COLUMNS)
    assert "INDIANA" not in result.quarantine.to_csv()


def test_given_category_column_overrides_codes_and_unknown_is_quarantined(slice_areas) -> None:
    point = slice_areas.geometry.iloc[1].representative_point()
    raw = pd.DataFrame({
        "source_key": ["a", "b", "c"], "occurred_local": ["2024-02-01 08:00:00"] * 3,
        "offense_code": [600, 600, 600], "lon": [point.x] * 3, "lat": [point.y] * 3,
        "category": ["Violent", None, "arson-ish"],
    })
    result = clean_incidents(raw, slice_areas, DataSettings(), now=NOW)
    assert result.incidents.set_index("offense_code")["category"].tolist() == ["violent", "property"]
    assert result.quarantine["reason"].tolist() == ["unknown_category"]


def test_incidents_follow_the_contract(slice_project: Path) -> None:
    result = run_ingest(now=NOW)
    incidents = pd.read_parquet(ARTIFACTS.incidents)
    assert list(incidents.columns) == ["incident_id", "occurred_at", "week", "category",
                                       "offense_code", "lat", "lon", "area_id"]
    assert str(incidents["occurred_at"].dt.tz) == "America/New_York"
    assert incidents["week"].dtype == "datetime64[ns]"
    assert (incidents["week"].dt.dayofweek == 0).all()
    local_day = incidents["occurred_at"].dt.tz_localize(None).dt.normalize()
    assert ((local_day - incidents["week"]).dt.days.between(0, 6)).all()
    assert incidents["incident_id"].is_unique
    source_keys = set(pq.read_table(SLICE / "incidents.parquet").column("objectid").to_pylist())
    assert not set(incidents["incident_id"]) & {str(k) for k in source_keys}
    assert set(incidents["category"]) <= {"violent", "property", "other", "enforcement"}
    assert result.report["rows_valid"] == len(incidents)
    assert result.report["rows_read"] == len(incidents) + result.report["rows_quarantined"]


def test_same_input_gives_identical_output_bytes(slice_project: Path) -> None:
    run_ingest(now=NOW)
    first = {p: p.read_bytes() for p in (ARTIFACTS.incidents, ARTIFACTS.quarantine)}
    run_ingest(now=NOW)
    assert all(p.read_bytes() == content for p, content in first.items())


def test_salt_changes_incident_ids(slice_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default_ids = set(run_ingest(now=NOW, write=False).incidents["incident_id"])
    monkeypatch.setenv("CRIMECAST_DATA__SALT", "a-private-salt")
    salted_ids = set(run_ingest(now=NOW, write=False).incidents["incident_id"])
    assert len(salted_ids) == len(default_ids) and not salted_ids & default_ids


def test_missing_column_names_file_and_column_and_leaves_outputs_untouched(
        slice_project: Path) -> None:
    run_ingest(now=NOW)
    outputs = (ARTIFACTS.incidents, ARTIFACTS.quarantine, ARTIFACTS.ingest_report)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in outputs}

    raw_file = slice_project / "data" / "incidents.parquet"
    table = pq.read_table(raw_file)
    pq.write_table(table.drop(["point_y"]), raw_file)
    with pytest.raises(ContractError) as error:
        run_ingest(now=NOW)
    assert str(raw_file) in str(error.value) and "point_y" in str(error.value)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in outputs} == before
    assert not list(ARTIFACTS.incidents.parent.glob(".*.tmp"))
