"""`crimecast city init`: what it guesses from a city's three files, on the two csv
fixtures (a centroid city with text labels and fractions; a polygon city with integer
codes and percentages), and that its proposal is a valid configs/data.yaml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from crimecast.cli import app
from crimecast.data.cityinit import propose_city, render_data_yaml
from crimecast.data.settings import DataSettings

FIXTURES = Path(__file__).parent / "fixtures" / "data"
REPO = Path(__file__).resolve().parents[1]


def test_centroid_city_guesses_every_column_label_scale_and_zone(tmp_project: Path) -> None:
    shutil.copytree(FIXTURES / "csv_city", tmp_project / "city")
    files = [tmp_project / "city" / n for n in
             ("incidents.csv", "neighbourhoods.csv", "demographics.csv")]
    proposal = propose_city(*files, tmp_project)
    assert proposal.columns == {"source_key": "incident_number", "occurred_local": "reported_utc",
                                "offense_code": "call_type", "lon": "longitude",
                                "lat": "latitude", "category": None, "area_id": "nbhd"}
    assert proposal.area_columns == {"area_id": "nbhd_name", "aland_m2": None,
                                     "lon": "center_lon", "lat": "center_lat"}
    assert proposal.demographic_columns["pct_hispanic"] == "share_hispanic"
    assert proposal.demographic_columns["population"] == "total_pop"
    assert (proposal.timezone, proposal.timestamps, proposal.share_scale) == \
        ("America/Denver", "utc", "fraction")
    assert proposal.unit_label == "neighbourhood" and proposal.city_name == "City"
    labels = {label: count for label, count, _ in proposal.labels}
    assert labels["TRAFFIC STOP"] == 1782  # "Traffic Stop" counted with it
    assert not any("Market" in label for label in labels)  # free text left out
    assert {key for key, _ in proposal.unguessed} == {"city.name", "city.source", "city.licence"}
    text = render_data_yaml(proposal)
    config = yaml.safe_load(text)
    assert config["categories"]["traffic_stop"] == ["TRAFFIC STOP", "Traffic Stop"]
    assert "# TODO: not guessed" in text.split("\n  name:")[1].splitlines()[0]
    (tmp_project / "configs" / "data.yaml").write_text(text)
    assert DataSettings.load().csv.columns.area_id == "nbhd"


def test_polygon_city_with_integer_codes_groups_many_labels_under_one_todo(
        tmp_project: Path) -> None:
    shutil.copytree(FIXTURES / "tiny_city", tmp_project / "city")
    files = [tmp_project / "city" / n for n in
             ("incidents.csv", "tracts.geojson", "demographics.csv")]
    proposal = propose_city(*files, tmp_project, name="Kensington")
    assert proposal.columns["source_key"] == "case_id"
    assert proposal.columns["occurred_local"] == "reported"
    assert proposal.columns["offense_code"] == "code"
    assert (proposal.columns["lon"], proposal.columns["lat"]) == ("longitude", "latitude")
    assert proposal.columns["area_id"] is None  # the records carry no area label
    assert proposal.area_columns["area_id"] == "tract"
    assert proposal.area_columns["aland_m2"] == "land_m2"
    assert proposal.demographic_columns["pct_black"] == "pct_black"  # not black_alone
    assert proposal.demographic_columns["pct_poverty"] == "pct_poverty"
    assert proposal.share_scale == "percent" and proposal.timezone == "America/New_York"
    assert proposal.unit_label == "tract" and not proposal.centroids
    config = yaml.safe_load(render_data_yaml(proposal))
    if len(proposal.labels) > 12:
        assert list(config["categories"]) == ["all"]
        assert ("categories" in {key for key, _ in proposal.unguessed})
    listed = {str(v) for labels in config["categories"].values() for v in labels}
    assert listed == {label for label, _, _ in proposal.labels}


def test_city_init_will_not_replace_a_config_without_force(tmp_project: Path) -> None:
    shutil.copytree(FIXTURES / "csv_city", tmp_project / "city")
    args = ["city", "init", "city/incidents.csv", "city/neighbourhoods.csv",
            "city/demographics.csv", "--name", "Denver"]
    before = (tmp_project / "configs" / "data.yaml").read_text()
    refused = subprocess.run([sys.executable, "-m", "crimecast", *args], cwd=tmp_project,
                             capture_output=True, text=True, check=False,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("error: ") and "--force" in refused.stderr
    assert (tmp_project / "configs" / "data.yaml").read_text() == before
    written = CliRunner().invoke(app, [*args, "--force"])
    assert written.exit_code == 0, written.output
    assert "could not guess" in written.output and "city.source" in written.output
    assert DataSettings.load().city.name == "Denver"
