"""H3 cells as the spatial unit: coverage of incidents, conserved population, the graph,
the settings, and the unit in the data version and the registered model's name."""

from __future__ import annotations

from pathlib import Path

import h3
import numpy as np
import pytest
import shapely

from crimecast.contracts import ContractError
from crimecast.data.areas import run_areas
from crimecast.data.graph import build_graph, graph_summary
from crimecast.data.ingest import run_ingest
from crimecast.data.settings import DataSettings
from crimecast.data.sources.philadelphia import PhiladelphiaSource
from crimecast.data.units import h3_cover

SLICE = Path(__file__).parent / "fixtures" / "data" / "philly_slice"
NOW = "2025-01-01 12:00"


@pytest.fixture
def h3_project(tmp_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The 6-tract Philadelphia slice, fetched, with units.kind = h3 (resolution 9)."""
    monkeypatch.setenv("CRIMECAST_DATA__SOURCE", "philadelphia")
    monkeypatch.setenv("CRIMECAST_DATA__PHILADELPHIA__SNAPSHOT_DIR", str(SLICE))
    monkeypatch.setenv("CRIMECAST_DATA__UNITS__KIND", "h3")
    monkeypatch.setenv("CRIMECAST_DATA__UNITS__RESOLUTION", "9")
    settings = DataSettings.load()
    PhiladelphiaSource(settings).fetch(settings.raw_path())
    return tmp_project


def test_units_come_from_config_and_env(tmp_project: Path, monkeypatch) -> None:
    assert DataSettings.load().units.tag == "tract"
    monkeypatch.setenv("CRIMECAST_DATA__UNITS__KIND", "h3")
    monkeypatch.setenv("CRIMECAST_DATA__UNITS__RESOLUTION", "10")
    assert DataSettings.load().units.tag == "h3r10"
    monkeypatch.setenv("CRIMECAST_DATA__UNITS__KIND", "hexagons")
    with pytest.raises(Exception, match="units.kind"):
        DataSettings.load()


def test_every_valid_incident_lands_in_exactly_one_cell(h3_project: Path, monkeypatch) -> None:
    import pandas as pd

    settings = DataSettings.load()
    areas = run_areas(settings, write=False)
    result = run_ingest(settings, now=pd.Timestamp(NOW), write=False)
    incidents = result.incidents
    monkeypatch.setenv("CRIMECAST_DATA__UNITS__KIND", "tract")
    tract_result = run_ingest(DataSettings.load(), now=pd.Timestamp(NOW), write=False)
    # The same incidents are valid at both units: the cells cover the city exactly.
    assert len(incidents) == len(tract_result.incidents) > 1000
    assert result.report["quarantine_by_reason"]["outside_cells"] == 0
    assert incidents["area_id"].isin(areas["area_id"]).all()
    assert (areas["unit"] == "h3r9").all() and areas["area_id"].is_unique
    # Each incident's cell is the one holding its point, and no other cell contains it.
    sample = incidents.sample(300, random_state=1)
    geoms = dict(zip(areas["area_id"], areas.geometry, strict=True))
    for row in sample.itertuples():
        point = shapely.Point(row.lon, row.lat)
        holding = [a for a, g in geoms.items() if g.covers(point)]
        assert row.area_id == h3.latlng_to_cell(row.lat, row.lon, 9)
        assert holding == [row.area_id] or (len(holding) > 1 and row.area_id in holding)
    # Totals per tract equal totals over that tract's points' cells.
    assert incidents.groupby("category").size().sum() == len(tract_result.incidents)


def test_interpolation_conserves_population_and_land(h3_project: Path) -> None:
    settings = DataSettings.load()
    cells = run_areas(settings, write=False)
    tracts = run_areas(DataSettings.load(units={"kind": "tract"}), write=False)
    total = tracts["population"].sum()
    assert cells["population"].sum() == pytest.approx(total, rel=0.005)
    assert cells["land_area_km2"].sum() == pytest.approx(tracts["land_area_km2"].sum(), rel=0.005)
    # Land never exceeds the clipped polygon (census ALAND excludes water; 0.2 % for
    # the projection census areas are measured in).
    utm = cells.estimate_utm_crs()
    polygon_km2 = cells.geometry.to_crs(utm).area.to_numpy() / 1e6
    assert (cells["land_area_km2"].to_numpy() <= polygon_km2 * 1.002 + 1e-9).all()
    # Shares are population-weighted: the city's black residents are conserved too.
    black = (tracts["population"] * tracts["pct_black"] / 100).sum()
    cell_black = (cells["population"] * cells["pct_black"].fillna(0) / 100).sum()
    assert cell_black == pytest.approx(black, rel=0.005)
    assert set(cells["group"]) <= {"black", "white", "asian", "hispanic", "mixed", "unknown"}
    empty = cells["population"] < 1
    assert (cells.loc[empty, "group"] == "unknown").all()
    assert cells.loc[empty, "low_population"].all()


def test_group_can_be_inherited_from_the_tract_with_most_residents(h3_project: Path) -> None:
    by_tract = run_areas(DataSettings.load(units={"kind": "h3", "group_from": "tract"}),
                         write=False)
    tracts = run_areas(DataSettings.load(units={"kind": "tract"}), write=False)
    tract_group = tracts.set_index("area_id")["group"]
    resident = by_tract["population"] >= 1
    expected = by_tract.loc[resident, "tract_id"].map(tract_group)
    assert (by_tract.loc[resident, "group"] == expected).all()


def test_h3_graph_is_symmetric_connected_and_follows_the_grid(h3_project: Path) -> None:
    areas = run_areas(DataSettings.load(), write=False)
    edge_index, weight = build_graph(areas)
    summary = graph_summary(edge_index, len(areas))
    assert summary["symmetric"] and summary["components"] == 1
    assert summary["self_loops"] == 0 and summary["duplicates"] == 0
    assert summary["degree_max"] <= 6 + 2  # a hexagon's ring, plus island links
    ids = areas["area_id"].to_numpy()
    grid = [h3.are_neighbor_cells(ids[i], ids[j]) for i, j in edge_index.T]
    assert np.mean(grid) > 0.99
    assert np.isfinite(weight).all() and (weight > 0).all()


def test_islands_are_linked_like_tracts() -> None:
    import geopandas as gpd

    # Two separate patches of cells: the graph links them with one edge pair.
    left = h3.grid_disk(h3.latlng_to_cell(39.95, -75.20, 9), 1)
    right = h3.grid_disk(h3.latlng_to_cell(39.95, -75.10, 9), 1)
    cells = sorted(set(left) | set(right))
    from crimecast.data.units import hexagons

    areas = gpd.GeoDataFrame({"area_id": cells, "unit": "h3r9"}, geometry=hexagons(cells),
                             crs="EPSG:4326")
    edge_index, _ = build_graph(areas)
    summary = graph_summary(edge_index, len(cells))
    assert summary["components"] == 1 and summary["symmetric"]
    assert summary["num_edges"] == 2 * (12 + 12) + 2


def test_graph_method_h3_needs_cells(h3_project: Path) -> None:
    tracts = run_areas(DataSettings.load(units={"kind": "tract"}), write=False)
    with pytest.raises(ContractError, match="graph.method"):
        build_graph(tracts, method="h3")


def test_cover_clips_cells_to_the_city() -> None:
    city = shapely.box(-75.17, 39.95, -75.15, 39.96)
    cover = h3_cover(city, 9)
    assert shapely.union_all(cover.geometry.to_numpy()).equals_exact(city, 1e-9) or \
        abs(shapely.union_all(cover.geometry.to_numpy()).area - city.area) < 1e-12
    assert cover["area_id"].map(lambda c: h3.get_resolution(c) == 9).all()


def test_unit_is_part_of_the_data_version_and_the_model_name(tmp_project: Path,
                                                             monkeypatch) -> None:
    from crimecast.data.version import data_version
    from crimecast.lifecycle.store import TrackingSettings

    tract = data_version()
    assert TrackingSettings.load().registered_model == "crimecast"
    monkeypatch.setenv("CRIMECAST_DATA__UNITS__KIND", "h3")
    cells = data_version()
    assert (tract["unit"], cells["unit"]) == ("tract", "h3r9")
    assert tract["version"] != cells["version"]
    assert TrackingSettings.load().registered_model == "crimecast-h3r9"
