"""Each failure a second city hit (issue 12), on the "city from CSV" fixture
(tests/fixtures/data/csv_city: text call types, UTC timestamps, the city's own
neighbourhood labels, centroids without land area, fractional shares, 60 weeks).

Failures run the real stage or command in a subprocess and assert: exit code 2, one
``error:`` line naming the key plus a ``fix:`` line, no traceback, and stored outputs
untouched (same bytes and mtime). Behaviour that replaced a failure (mapping text labels,
detecting fractions, using the city's labels, the city's words) is asserted directly.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from crimecast.data.cityinit import propose_city, render_data_yaml

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "data" / "csv_city"
DOCS = REPO / "docs" / "data.md"
FILES = ("city/incidents.csv", "city/neighbourhoods.csv", "city/demographics.csv")


def documented_categories() -> str:
    """The category map of docs/data.md's worked example (what a user fills in)."""
    text = DOCS.read_text()
    block = text.split("<!-- city-categories:start -->")[1].split("<!-- city-categories:end -->")[0]
    return block.split("```yaml")[1].split("```")[0].strip() + "\n"


def fill_categories(config: Path, categories: str) -> None:
    """Replace the proposal's ``categories:`` block by ``categories``."""
    text = config.read_text()
    start = text.index("\ncategories:") + 1
    end = text.index("\ncsv:")
    config.write_text(text[:start] + categories + text[end:])


def run(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "CRIMECAST_HOME": str(home), "PYTHONPATH": str(REPO)}
    environment.pop("CRIMECAST_DEBUG", None)
    environment.update(env)
    return subprocess.run([sys.executable, *args], cwd=home, env=environment,
                          capture_output=True, text=True, check=False)


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "  fix: " in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    return result.stderr


def stored(home: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(home)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted((home / "artifacts").glob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def city_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project home for the fixture city: configs from `city init` (+ the documented
    category map), raw files fetched, data stages built once."""
    from crimecast.data.sources import DataSettings, get_source

    home = tmp_path_factory.mktemp("csv_city") / "project"
    shutil.copytree(REPO / "configs", home / "configs")
    shutil.copytree(FIXTURE, home / "city")
    proposal = propose_city(*(home / f for f in FILES), home, name="Denver")
    (home / "configs" / "data.yaml").write_text(render_data_yaml(proposal, "example", "example"))
    fill_categories(home / "configs" / "data.yaml", documented_categories())
    previous = os.environ.get("CRIMECAST_HOME")
    os.environ["CRIMECAST_HOME"] = str(home)
    try:
        settings = DataSettings.load()
        get_source(settings).fetch(settings.raw_path())
    finally:
        if previous is None:
            os.environ.pop("CRIMECAST_HOME")
        else:
            os.environ["CRIMECAST_HOME"] = previous
    for stage in ("ingest", "areas", "graph", "panel"):
        result = run(["-m", f"training.{stage}"], home)
        assert result.returncode == 0, result.stdout + result.stderr
    return home


@pytest.fixture
def city(city_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "project"
    shutil.copytree(city_template, home)
    monkeypatch.setenv("CRIMECAST_HOME", str(home))
    monkeypatch.chdir(home)
    return home


def set_key(home: Path, pattern: str, replacement: str) -> None:
    config = home / "configs" / "data.yaml"
    text, count = re.subn(pattern, replacement, config.read_text(), flags=re.MULTILINE)
    assert count == 1, pattern
    config.write_text(text)


# --- text categories -----------------------------------------------------------------

def test_text_labels_and_integer_codes_map_through_one_category_map() -> None:
    import geopandas as gpd
    import shapely

    from crimecast.data.ingest import clean_incidents
    from crimecast.data.settings import DataSettings

    areas = gpd.GeoDataFrame({"area_id": ["A"]}, geometry=[shapely.box(0, 0, 1, 1)],
                             crs="EPSG:4326")
    settings = DataSettings(categories={"traffic": ["TRAFFIC STOP", 100],
                                        "suspicious": ["Suspicious Vehicle"]})
    raw = pd.DataFrame({
        "source_key": list("abcdef"),
        "occurred_local": ["2024-02-01 08:00:00"] * 6,
        "offense_code": ["traffic  stop", "100.0", 100, "SUSPICIOUS VEHICLE", "ALARM",
                         "caller says a man at 1234 Market St is yelling"],
        "lon": [0.5] * 6, "lat": [0.5] * 6,
    })
    result = clean_incidents(raw, areas, settings, now=pd.Timestamp("2025-01-01"))
    assert result.incidents["category"].tolist() == ["traffic", "traffic", "traffic", "suspicious"]
    quarantine = result.quarantine.set_index("reason")
    assert quarantine["value"].tolist() == ["ALARM", "<redacted: 46 chars>"]
    assert "Market" not in result.quarantine.to_csv()
    assert result.report["incidents_by_category"] == {"traffic": 3, "suspicious": 1}


def test_a_label_under_two_categories_is_a_config_error() -> None:
    from crimecast.config import ConfigError
    from crimecast.data.labels import category_lookup

    with pytest.raises(ConfigError) as error:
        category_lookup({"traffic": ["TRAFFIC STOP"], "other": ["traffic stop"]})
    assert error.value.key == "categories.other"


def test_the_old_offense_categories_key_names_its_new_name(city: Path) -> None:
    set_key(city, r"^categories:$", "offense_categories:")
    result = run(["-m", "training.ingest"], city)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'offense_categories' is now 'categories'" in result.stderr


# --- mass quarantine -------------------------------------------------------------------

def test_mass_quarantine_stops_ingest_and_validate_naming_samples_and_the_key(city: Path) -> None:
    before = stored(city)
    # Philadelphia's UCR map: none of this city's text call types is in it.
    fill_categories(city / "configs" / "data.yaml",
                    "categories:\n  violent: [100, 200]\n  property: [500, 600]\n")
    ingest = assert_user_error(run(["-m", "training.ingest"], city), "key 'categories'",
                               "unknown_offense_code", "'TRAFFIC STOP'", "max_quarantine_share")
    assert "5,612 of 5,612 incidents quarantined (100%" in ingest
    validate = run(["-m", "crimecast", "data", "validate"], city)
    assert_user_error(validate, "key 'categories'", "'SUSPICIOUS PERSON'")
    assert "unknown_offense_code" in validate.stdout and "TRAFFIC STOP" in validate.stdout
    assert stored(city) == before


# --- short history ---------------------------------------------------------------------

def test_short_history_stops_at_the_panel_stage_listing_every_key(city: Path) -> None:
    before = stored(city)
    result = run(["-m", "training.panel"], city, CRIMECAST_EVALUATION__BACKTEST_WEEKS="52")
    message = assert_user_error(result, "configs/evaluation.yaml", "backtest_weeks",
                                "validation_weeks", "min_train_weeks", "short_history: adapt")
    assert "60 weeks of history" in message and "at least 73" in message
    assert stored(city) == before


def test_short_history_adapts_the_windows_when_asked_and_says_so(city: Path) -> None:
    from crimecast.forecast.settings import EvaluationSettings

    result = run(["-m", "training.panel"], city, CRIMECAST_EVALUATION__BACKTEST_WEEKS="52",
                 CRIMECAST_EVALUATION__SHORT_HISTORY="adapt")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if "short_history: adapt" in line]
    assert notes == [("history of 60 weeks is shorter than the 73 the evaluation windows "
                      "need: backtest_weeks 52 -> 41, validation_weeks 8 -> 6 "
                      "(configs/evaluation.yaml short_history: adapt)")]
    adapted, _ = EvaluationSettings(backtest_weeks=52, short_history="adapt").for_history(60)
    assert adapted.minimum_weeks() == 60 and adapted.backtest_weeks == 41


# --- land area -------------------------------------------------------------------------

def test_centroids_without_land_area_stop_at_the_areas_stage(city: Path) -> None:
    before = stored(city)
    set_key(city, r"^  cells: voronoi.*$", "  cells: none")
    assert_user_error(run(["-m", "training.areas"], city), "key 'csv.area_columns.aland_m2'",
                      "land area unknown for 30 of 30 areas")
    assert stored(city) == before


def test_centroids_get_voronoi_cells_that_ingest_joins_incidents_to(city: Path) -> None:
    import geopandas as gpd
    import shapely

    areas = gpd.read_parquet(city / "artifacts" / "areas.parquet")
    assert set(areas.geometry.geom_type) <= {"Polygon", "MultiPolygon"}
    assert (areas["land_area_km2"] > 0).all()
    # the cells tile the hull: no overlaps, each holds its own centroid
    union = shapely.union_all(areas.geometry.values)
    assert union.area == pytest.approx(shapely.area(areas.geometry.values).sum(), rel=1e-6)
    centroids = pd.read_csv(city / "city" / "neighbourhoods.csv")
    points = gpd.points_from_xy(centroids["center_lon"], centroids["center_lat"])
    cells = areas.set_index("area_id").geometry
    assert all(cells[name].contains(point)
               for name, point in zip(centroids["nbhd_name"], points, strict=True))


# --- fractional shares -----------------------------------------------------------------

def test_fractional_shares_are_detected_warned_and_read_as_fractions(city: Path) -> None:
    from crimecast.data.areas import run_areas

    set_key(city, r"^share_scale: fraction.*$", "share_scale: null")
    result = run(["-m", "training.areas"], city)
    assert result.returncode == 0, result.stderr
    assert "share_scale not set: the demographic shares look like fractions" in result.stdout
    groups = re.search(r"groups by 'majority': ([^;]+);", result.stdout).group(1)
    assert groups == "white 10, mixed 9, black 6, asian 3, hispanic 2"  # not all "mixed"
    assert run_areas(write=False)["pct_white"].max() > 50


def test_fraction_scale_with_percent_values_stops_naming_share_scale(city: Path) -> None:
    before = stored(city)
    demographics = city / "data" / "demographics.csv"
    frame = pd.read_csv(demographics)
    shares = [c for c in frame.columns if c.startswith("share_")]
    frame[shares] = frame[shares] * 100
    frame.to_csv(demographics, index=False)
    assert_user_error(run(["-m", "training.areas"], city), "configs/data.yaml",
                      "share_scale is 'fraction'", "set share_scale: percent")
    assert stored(city) == before


# --- data version ----------------------------------------------------------------------

def test_data_version_changes_when_only_the_areas_file_changes(city: Path) -> None:
    from crimecast.data.version import data_version
    from crimecast.lifecycle.tuning import TuningSettings, default_study_name

    before = data_version()
    study_before = default_study_name(TuningSettings.load(), "gnn")
    areas_file = city / "data" / "areas.csv"
    frame = pd.read_csv(areas_file)
    frame.loc[0, "center_lon"] += 0.001  # one centroid moved by ~85 m
    frame.to_csv(areas_file, index=False)
    after = data_version()
    assert after["raw_md5"] != before["raw_md5"]
    assert after["version"] != before["version"]
    assert {k for k in before if before[k] != after[k]} == {"raw_md5", "version"}
    assert default_study_name(TuningSettings.load(), "gnn") != study_before
    # the wording block is not data: renaming the city keeps the version
    set_key(city, r'^  name: "Denver".*$', '  name: "Denver, CO"')
    assert data_version()["version"] == after["version"]


# --- the city's words, its categories ---------------------------------------------------

def test_outputs_name_the_city_and_its_unit_and_drop_empty_categories(city: Path) -> None:
    summary = run(["-m", "crimecast", "data", "summary"], city, COLUMNS="200")
    assert summary.returncode == 0, summary.stderr
    assert "areas (neighbourhoods of Denver)" in summary.stdout
    assert "tract" not in summary.stdout.lower()
    areas = run(["-m", "training.areas"], city)
    assert "30 neighbourhoods of Denver" in areas.stdout and "tract" not in areas.stdout
    panel = run(["-m", "training.panel"], city)
    assert ("warning: category 'weapons' has no incidents; dropped from the panel "
            "(configs/data.yaml key 'categories')") in panel.stdout
    categories = pd.read_parquet(city / "artifacts" / "panel.parquet")["category"].unique()
    assert sorted(categories) == ["disturbance", "suspicious", "traffic"]


def test_model_card_carries_the_city(city: Path) -> None:
    from crimecast.lifecycle.tracking import city_card

    assert city_card() == {"name": "Denver", "unit_label": "neighbourhood", "unit": "tract",
                           "source": "example", "licence": "example"}


# --- the city's own area labels ---------------------------------------------------------

def test_own_area_labels_replace_the_spatial_join_and_unknown_ones_are_quarantined(
        city: Path) -> None:
    from crimecast.data.ingest import hash_keys, run_ingest
    from crimecast.data.settings import DataSettings

    raw = pd.read_csv(city / "city" / "incidents.csv")
    result = run_ingest(write=False, now=pd.Timestamp("2026-01-01"))
    incidents = result.incidents
    quarantine = result.quarantine
    unknown = quarantine[quarantine["reason"] == "unknown_area"]
    assert len(unknown) == 11 and set(unknown["value"]) == {"Unincorporated"}
    # every kept incident sits in the neighbourhood its record names, even those
    # without coordinates, which the spatial join would have dropped
    settings = DataSettings.load()
    label_of = pd.Series(raw["nbhd"].to_numpy(),
                         index=hash_keys(raw["incident_number"], settings.salt).to_numpy())
    assert (incidents["area_id"].to_numpy() == label_of[incidents["incident_id"]].to_numpy()).all()
    assert incidents["lat"].isna().sum() > 0
    # the spatial join (nearest cell) would disagree with the city for some records
    spatial = settings.model_copy(update={"csv": settings.csv.model_copy(update={
        "columns": settings.csv.columns.model_copy(update={"area_id": None})})})
    joined = run_ingest(spatial, write=False, now=pd.Timestamp("2026-01-01")).incidents
    assert len(joined) < len(incidents)  # records without coordinates are lost
    disagree = (joined.set_index("incident_id")["area_id"]
                != incidents.set_index("incident_id")["area_id"].reindex(joined["incident_id"]))
    assert 0 < disagree.mean() < 0.5


# --- --debug ---------------------------------------------------------------------------

def test_debug_shows_the_traceback_of_the_same_mistake(city: Path) -> None:
    set_key(city, r"^  cells: voronoi.*$", "  cells: none")
    result = run(["-m", "training.areas"], city, CRIMECAST_DEBUG="1")
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert "ContractError" in result.stderr

