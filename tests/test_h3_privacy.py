"""Privacy at micro-places: a cell holding a single incident cannot be read off the public
report or its GeoJSON map layers, which hold hexagons and classes, never incident points or
counts below 5; the privacy scanner flags both kinds of leak in a GeoJSON export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h3
import pandas as pd
import pytest

from crimecast.data.privacy import scan_for_leaks
from crimecast.data.settings import DataSettings
from crimecast.data.sources.philadelphia import PhiladelphiaSource

SLICE = Path(__file__).parent / "fixtures" / "data" / "philly_slice"


@pytest.fixture
def planted(tmp_project: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """The Philadelphia slice at H3 r10 with one incident planted, in the last full week,
    in a cell that has no other incident; the data stages built. Returns (home, cell)."""
    monkeypatch.setenv("CRIMECAST_DATA__SOURCE", "philadelphia")
    monkeypatch.setenv("CRIMECAST_DATA__PHILADELPHIA__SNAPSHOT_DIR", str(SLICE))
    monkeypatch.setenv("CRIMECAST_DATA__UNITS__KIND", "h3")
    monkeypatch.setenv("CRIMECAST_DATA__UNITS__RESOLUTION", "10")
    monkeypatch.setenv("CRIMECAST_TRACKING__LOG_MAP", "false")
    monkeypatch.setenv("CRIMECAST_EVALUATION__SHORT_HISTORY", "adapt")  # 26 weeks of data
    settings = DataSettings.load()
    PhiladelphiaSource(settings).fetch(settings.raw_path())
    from crimecast.data.areas import run_areas

    cells = run_areas(settings, write=False)
    raw_path = settings.raw_path() / "incidents.parquet"
    raw = pd.read_parquet(raw_path)
    used = {h3.latlng_to_cell(y, x, 10) for x, y in zip(raw["point_x"], raw["point_y"],
                                                        strict=True)}
    inner = cells[~cells["area_id"].isin(used) & (cells["land_area_km2"] > 0.012)]
    cell = str(inner["area_id"].iloc[0])
    lat, lng = h3.cell_to_latlng(cell)
    row = raw.iloc[[0]].copy()
    row["objectid"] = raw["objectid"].max() + 1
    row["dispatch_date"] = "2024-06-26"
    row["point_x"], row["point_y"] = lng, lat
    pd.concat([raw, row], ignore_index=True).to_parquet(raw_path, index=False)
    from crimecast.data.ingest import run_ingest
    from training import graph, panel

    run_ingest(settings, now=pd.Timestamp("2025-01-01", tz="America/New_York"))
    run_areas(settings)
    graph.run()
    panel.run()
    counts = pd.read_parquet(tmp_project / "artifacts" / "panel.parquet")
    assert counts.loc[counts["area_id"] == cell, "count"].sum() == 1  # the plant took
    return tmp_project, cell


def test_a_single_incident_cell_cannot_be_read_off_the_public_report(planted) -> None:
    from monitoring.report import build_report
    from monitoring.settings import MonitoringSettings

    home, cell = planted
    paths = build_report(MonitoringSettings.load(), home / "reports")
    layers = json.loads(paths["geojson"].read_text())
    features = {f["properties"]["area_id"]: f for f in layers["features"]}
    assert set(features) == set(pd.read_parquet(home / "artifacts" / "areas.parquet")["area_id"])
    spot = features[cell]
    assert spot["properties"]["recent_count_class"] == "<5"
    assert spot["geometry"]["type"] in ("Polygon", "MultiPolygon")
    # No feature carries a number that could be a count, nor a point.
    for feature in layers["features"]:
        assert not [v for v in feature["properties"].values()
                    if isinstance(v, int | float) and not isinstance(v, bool)]
    # The interactive map's hover text names the cell; its recorded count reads "<5" in
    # every category view (a planted count shown as "1" would fail here).
    html = paths["html"].read_text()
    hover = re.findall(re.escape(cell) + r"[^\"]*?last 4 weeks \(([^)]*)\): ([^\"]*)\"", html)
    assert hover, "the map's hover text covers the cell"
    assert {value for _, value in hover} <= {"\\u003c5", "<5", "&lt;5"}, hover
    assert scan_for_leaks([home / "reports"]) == []


def test_the_scanner_flags_points_and_small_counts_in_geojson(tmp_path: Path) -> None:
    leaky = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-75.15, 39.99]},
         "properties": {"area_id": "8a2a134a9077fff"}},
        {"type": "Feature", "geometry": None,
         "properties": {"area_id": "8a2a134a9057fff", "recent_count": 1}},
        {"type": "Feature", "geometry": None,
         "properties": {"area_id": "8a2a134a9067fff", "recent_count": "<5",
                        "incidents": 12}},
    ]}
    path = tmp_path / "layers.geojson"
    path.write_text(json.dumps(leaky))
    kinds = sorted(f.kind for f in scan_for_leaks([path]))
    assert kinds == ["incident_point", "small_count"]
