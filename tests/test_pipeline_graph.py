"""The area graph: symmetric, simple, connected, in node order, on real and synthetic maps."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from crimecast.data.graph import build_graph, graph_summary
from crimecast.data.synthetic import generate_city

REPO_SNAPSHOT = "snapshot/philadelphia"


def philadelphia_tracts() -> gpd.GeoDataFrame:
    """The 408 real tracts from the committed snapshot (the synthetic city if absent)."""
    from pathlib import Path

    from crimecast.data.sources import DataSettings, get_source

    snapshot = Path(__file__).resolve().parents[1] / REPO_SNAPSHOT
    if (snapshot / "tracts.geojson.gz").exists():
        return get_source(DataSettings(source="philadelphia")).read_areas(snapshot)
    return generate_city(408, 8, seed=1).areas


def assert_valid_graph(edge_index: np.ndarray, n: int) -> dict:
    summary = graph_summary(edge_index, n)
    assert summary["symmetric"]
    assert summary["duplicates"] == 0
    assert summary["self_loops"] == 0
    assert summary["components"] == 1
    assert summary["num_nodes"] == n
    assert summary["degree_min"] >= 1
    assert edge_index.dtype == np.int64 and edge_index.shape[0] == 2
    return summary


def test_philadelphia_tract_graph_is_symmetric_simple_and_connected():
    tracts = philadelphia_tracts()
    edge_index, edge_weight = build_graph(tracts)
    summary = assert_valid_graph(edge_index, len(tracts))
    assert 4 <= summary["degree_mean"] <= 8  # queen contiguity of a tract map
    assert edge_weight.dtype == np.float32 and (edge_weight > 0).all()
    assert edge_weight.mean() == pytest.approx(1.0, rel=1e-5)


def test_corner_touching_squares_are_queen_neighbours():
    # A 2×2 grid: diagonal squares share a single point and must still be linked.
    squares = gpd.GeoDataFrame(geometry=[shapely.box(x, y, x + 0.01, y + 0.01)
                                         for x in (0, 0.01) for y in (0, 0.01)], crs=4326)
    edge_index, _ = build_graph(squares, method="queen", tolerance_deg=0)
    assert graph_summary(edge_index, 4)["num_edges"] == 12  # everyone touches everyone


def test_islands_are_linked_to_their_nearest_area():
    mainland = [shapely.box(x, 0, x + 0.01, 0.01) for x in (0, 0.01, 0.02)]
    island = shapely.box(0.05, 0, 0.06, 0.01)  # nearest mainland square is the third
    areas = gpd.GeoDataFrame(geometry=mainland + [island], crs=4326)
    edge_index, _ = build_graph(areas)
    assert_valid_graph(edge_index, 4)
    island_neighbours = set(edge_index[1, edge_index[0] == 3].tolist())
    assert island_neighbours == {2}


def test_centroids_only_fall_back_to_nearest_neighbours():
    city = generate_city(50, 8, seed=2)
    points = city.areas.copy()
    points["geometry"] = shapely.centroid(points.geometry.values)
    edge_index, _ = build_graph(points, knn_k=4)
    summary = assert_valid_graph(edge_index, 50)
    assert summary["degree_min"] >= 4


def test_queen_refuses_points_with_a_clear_error():
    points = gpd.GeoDataFrame(geometry=[shapely.Point(0, 0), shapely.Point(0.01, 0)], crs=4326)
    with pytest.raises(ValueError, match="use 'knn'"):
        build_graph(points, method="queen")


def test_large_synthetic_city_graph_is_valid():
    city = generate_city(3000, 8, seed=4)
    edge_index, _ = build_graph(city.areas)
    assert_valid_graph(edge_index, 3000)


def test_saved_graph_loads_in_node_order(synthetic_city, tmp_path):
    from crimecast.contracts import AreaGraph

    graph = synthetic_city.graph
    path = graph.save(tmp_path / "graph.npz")
    loaded = AreaGraph.load(path, synthetic_city.artifacts.areas)
    areas = gpd.read_parquet(synthetic_city.artifacts.areas)
    assert list(loaded.area_ids) == list(areas["area_id"])
    assert loaded.num_nodes == len(areas)
    np.testing.assert_array_equal(loaded.edge_index, graph.edge_index)
