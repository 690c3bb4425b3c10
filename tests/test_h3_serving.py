"""The service at H3: a synthetic city built at resolution 8 by the real data stages, a
historical-average @champion in a real MLflow registry, and a real BentoML server on a
loopback port. /hotspots answers hexagon polygons, /forecast and /allocate work by cell,
malformed H3 strings or cells outside the city get a 422 saying which, and monitoring
and the public report run on the cells."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h3
import pytest
from test_serving_api import Server, _register, start_server

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
H3_ENV = {"CRIMECAST_DATA__UNITS__KIND": "h3", "CRIMECAST_DATA__UNITS__RESOLUTION": "8"}


@pytest.fixture(scope="module")
def h3_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project home whose data stages ran at H3 r8 on a 30-area synthetic city."""
    home = tmp_path_factory.mktemp("h3_serving") / "project"
    shutil.copytree(REPO / "configs", home / "configs")
    data_yaml = home / "configs" / "data.yaml"
    text = re.sub(r"(?m)^source: .*$", "source: synthetic", data_yaml.read_text())
    text = re.sub(r"(?m)^synthetic: .*$", "synthetic: {n_areas: 30, n_weeks: 120, seed: 5}", text)
    data_yaml.write_text(text)
    env = {**os.environ, "CRIMECAST_HOME": str(home), **H3_ENV}
    fetch = ("from crimecast.data.sources import DataSettings, get_source; "
             "s = DataSettings.load(); get_source(s).fetch(s.raw_path())")
    for args in (["-c", fetch], *(["-m", f"training.{s}"] for s in
                                  ("ingest", "areas", "graph", "panel"))):
        subprocess.run([sys.executable, *args], cwd=home, env=env, check=True,
                       capture_output=True)
    saved = {k: os.environ.get(k) for k in H3_ENV}
    os.environ.update(H3_ENV)  # the registry name and the server follow the unit
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def server(h3_home: Path) -> Iterator[Server]:
    from crimecast.contracts import AreaGraph, Panel

    artifacts = h3_home / "artifacts"
    graph = AreaGraph.load(artifacts / "graph.npz", artifacts / "areas.parquet")
    panel = Panel.load(artifacts / "panel.parquet")
    _register(h3_home, "historical_average", panel, graph, "champion")
    running = start_server(h3_home, "server")
    yield running
    running.kill()


def test_model_is_registered_under_the_unit(server: Server, h3_home: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from crimecast.lifecycle.store import TrackingSettings, mlflow_client

    monkeypatch.setenv("CRIMECAST_HOME", str(h3_home))
    settings = TrackingSettings.load()
    assert settings.registered_model == "crimecast-h3r8"
    version = mlflow_client(settings).get_model_version_by_alias("crimecast-h3r8", "champion")
    assert version.tags["data.unit"] == "h3r8"


def test_hotspots_geojson_are_hexagons_of_cells(server: Server) -> None:
    geo = server.post("/hotspots", {"area_share": 0.05, "format": "geojson"}).json()
    assert geo["type"] == "FeatureCollection" and geo["features"]
    for feature in geo["features"]:
        assert h3.is_valid_cell(feature["id"]) and h3.get_resolution(feature["id"]) == 8
        assert feature["geometry"]["type"] == "Polygon"
        ring = feature["geometry"]["coordinates"][0]
        hexagon = [(round(lng, 5), round(lat, 5)) for lat, lng in h3.cell_to_boundary(feature["id"])]
        # an interior cell is its hexagon (6 corners + the closing one); one on the city's
        # edge is the hexagon clipped to the city, inside it
        corners = {(round(x, 5), round(y, 5)) for x, y in ring}
        assert corners == set(hexagon) or len(ring) >= 4
        assert "count" not in feature["properties"]  # expected counts only, no incidents
    interior = [f for f in geo["features"] if len(f["geometry"]["coordinates"][0]) == 7]
    assert interior, "at least one hotspot is a whole hexagon"


def test_forecast_and_allocate_by_cell(server: Server, h3_home: Path) -> None:
    import pandas as pd

    cells = pd.read_parquet(h3_home / "artifacts" / "areas.parquet")["area_id"].tolist()
    answer = server.post("/forecast", {"area_ids": cells[:3], "horizon": 1}).json()
    assert {row["area_id"] for row in answer["forecasts"]} == set(cells[:3])
    allocation = server.post("/allocate", {"units": 10, "kind": "patrol"}).json()
    assert sum(a["units"] for a in allocation["allocations"]) == 10
    assert all(a["area_id"] in cells for a in allocation["allocations"])


def test_malformed_or_outside_cells_get_422_saying_which(server: Server, h3_home: Path) -> None:
    import pandas as pd

    cells = set(pd.read_parquet(h3_home / "artifacts" / "areas.parquet")["area_id"])
    outside = h3.latlng_to_cell(40.7128, -74.0060, 8)  # New York
    assert outside not in cells
    wrong_resolution = h3.latlng_to_cell(39.99, -75.15, 9)
    reply = server.post("/forecast", {"area_ids": ["8a2a1072b59ffff-nope", outside,
                                                   wrong_resolution]})
    assert reply.status_code == 422
    problem = " ".join(p["problem"] for p in reply.json()["problems"])
    assert "not H3 cells at resolution 8" in problem and "8a2a1072b59ffff-nope" in problem
    assert wrong_resolution in problem.split("outside the city")[0]
    assert f"H3 cells outside the city: ['{outside}']" in problem


def test_monitoring_and_the_report_run_at_h3(server: Server, h3_home: Path) -> None:
    env = {**os.environ, "CRIMECAST_HOME": str(h3_home), **H3_ENV}
    for args in (["monitor", "run", "--weeks", "2"], ["report"]):
        result = subprocess.run([sys.executable, "-m", "crimecast", *args], cwd=h3_home,
                                env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((h3_home / "state" / "monitoring" / "summary.json").read_text())
    assert summary["groups"]  # per-group rows from the interpolated cell groups
    page = (h3_home / "reports" / "index.html").read_text()
    assert "H3 cells" in page and "the model in service (version 1)" in page
    layers = json.loads((h3_home / "reports" / "map_layers.geojson").read_text())
    assert all(h3.is_valid_cell(f["properties"]["area_id"]) for f in layers["features"])


def test_tune_train_evaluate_promote_run_at_h3(server: Server, h3_home: Path) -> None:
    """The model stages at H3 (a short study and a 2-epoch GNN to keep the test fast):
    the challenger is registered under the unit and the gate decides, in writing."""
    env = {**os.environ, "CRIMECAST_HOME": str(h3_home), **H3_ENV,
           "CRIMECAST_TUNING__TRIALS": "1", "CRIMECAST_MODELS__GNN__EPOCHS": "2",
           "CRIMECAST_TRACKING__LOG_MAP": "true"}
    for stage in ("tune", "train", "evaluate", "promote"):
        result = subprocess.run([sys.executable, "-m", f"training.{stage}"], cwd=h3_home,
                                env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{stage}:\n{result.stdout}\n{result.stderr}"
    run = json.loads((h3_home / "artifacts" / "train_run.json").read_text())
    assert run["model_uri"].startswith("models:/crimecast-h3r8/")
    decision = json.loads((h3_home / "artifacts" / "promotion.json").read_text())
    assert decision["registered_model"] == "crimecast-h3r8" and decision["checks"]
