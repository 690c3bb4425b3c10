"""The csv source: the worked example of docs/data.md on a tiny city made of six
Philadelphia tracts, with its own column names."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from crimecast.contracts import ContractError
from crimecast.data.areas import run_areas
from crimecast.data.ingest import clean_incidents, run_ingest
from crimecast.data.settings import DataSettings
from crimecast.data.sources import get_source
from crimecast.data.sources.philadelphia import PhiladelphiaSource

FIXTURES = Path(__file__).parent / "fixtures" / "data"
NOW = pd.Timestamp("2025-01-01", tz="America/New_York")

# The worked example (also in docs/data.md).
TINY_CITY_YAML = """
source: csv
csv:
  incidents: city/incidents.csv
  areas: city/tracts.geojson
  demographics: city/demographics.csv
  columns: {source_key: case_id, occurred_local: reported, offense_code: code,
            lon: longitude, lat: latitude}
  area_columns: {area_id: tract, aland_m2: land_m2}
  demographic_columns: {area_id: tract, population: residents, median_income: income}
"""


@pytest.fixture
def tiny_city(tmp_project: Path) -> Path:
    shutil.copytree(FIXTURES / "tiny_city", tmp_project / "city")
    (tmp_project / "configs" / "data.yaml").write_text(TINY_CITY_YAML)
    settings = DataSettings.load()
    get_source(settings).fetch(settings.raw_path())
    return tmp_project


def test_tiny_city_ingests_like_the_same_philadelphia_records(tiny_city: Path) -> None:
    result = run_ingest(now=NOW)
    areas = run_areas()

    philly = PhiladelphiaSource(DataSettings())
    slice_dir = FIXTURES / "philly_slice"
    reference = clean_incidents(philly.read_incidents(slice_dir), philly.read_areas(slice_dir),
                                DataSettings(), now=NOW)
    assert len(result.incidents) == len(reference.incidents) > 2000
    assert (result.incidents["area_id"].value_counts().sort_index()
            .equals(reference.incidents["area_id"].value_counts().sort_index()))
    assert len(areas) == 6 and set(areas["group"]) <= {"black", "white", "hispanic", "asian",
                                                        "mixed", "unknown"}
    saved = gpd.read_parquet(tiny_city / "artifacts" / "areas.parquet")
    assert saved["median_income"].notna().all() and saved["land_area_km2"].gt(0).all()


def test_centroid_areas_assign_incidents_to_the_nearest_tract(tiny_city: Path) -> None:
    tracts = gpd.read_file(tiny_city / "city" / "tracts.geojson")
    points = tracts.representative_point()
    pd.DataFrame({"tract": tracts["tract"], "lon": points.x, "lat": points.y}).to_csv(
        tiny_city / "city" / "centroids.csv", index=False)
    text = (tiny_city / "configs" / "data.yaml").read_text()
    (tiny_city / "configs" / "data.yaml").write_text(
        text.replace("city/tracts.geojson", "city/centroids.csv"))
    settings = DataSettings.load()
    get_source(settings).fetch(settings.raw_path())
    assert not (settings.raw_path() / "areas.geojson").exists()  # the stale format is gone

    result = run_ingest(now=NOW, write=False)
    assert result.incidents["area_id"].nunique() == 6
    assert len(result.incidents) > 0.95 * (result.report["rows_read"]
                                          - result.report["quarantine_by_reason"]["missing_coordinates"])


def test_missing_mapped_column_names_the_file_and_column(tiny_city: Path) -> None:
    raw_file = tiny_city / "data" / "incidents.csv"
    frame = pd.read_csv(raw_file).drop(columns="latitude")
    frame.to_csv(raw_file, index=False)
    with pytest.raises(ContractError) as error:
        run_ingest(now=NOW)
    assert str(raw_file) in str(error.value) and "latitude" in str(error.value)
