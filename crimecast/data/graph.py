"""The area graph: which areas are neighbours, and how strongly.

H3 cells (``units.kind: h3``) link to the cells of their first ring
(``h3.grid_ring(cell, 1)``) that are also areas. Other areas: edges come from
**queen contiguity** of the area polygons: two areas are neighbours when
their boundaries meet, even in a single point (a shared corner), within a small
``tolerance_deg`` to forgive digitising gaps. When only centroids are known (points), or
``method: knn`` is configured, each area links to its ``knn_k`` nearest centroids.

The result is made **symmetric** (i→j implies j→i), with **no self loops** and **no
duplicate** edges, and **connected**: every connected component other than the largest
(an island, a tract across a river) is linked to its nearest area in the largest one.

Edge weight = inverse distance between centroids (km, local equirectangular projection),
divided by its mean over all edges so weights average 1. Close neighbours (small, dense
urban tracts) count more than distant ones (large, sparse tracts); GNN layers that
normalise by degree see relative, not absolute, weights.

:class:`crimecast.contracts.AreaGraph` holds the result and is the only reader and
writer of ``graph.npz``: ``area_ids`` (node order = ``areas.parquet`` row order), ``edge_index`` (int64 [2, E], PyTorch Geometric convention: row 0 source, row 1 target) and
``edge_weight`` (float32 [E]).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from crimecast.contracts import ContractError

KM_PER_DEG_LAT = 110.57


def centroids_km(geometry: Any) -> np.ndarray:
    """Centroids of WGS84 geometries as [n, 2] km coordinates (local equirectangular
    projection around the mean latitude; accurate to <1 % across a city)."""
    geoms = np.asarray(geometry)
    centres = shapely.centroid(geoms)
    lon, lat = shapely.get_x(centres), shapely.get_y(centres)
    if np.isnan(lon).any():
        bad = int(np.isnan(lon).sum())
        raise ContractError(f"areas: {bad} area(s) have an empty geometry (no centroid)")
    km_per_deg_lon = 111.32 * np.cos(np.radians(np.nanmean(lat)))
    return np.column_stack([lon * km_per_deg_lon, lat * KM_PER_DEG_LAT])


def queen_pairs(geometry: Any, tolerance_deg: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Directed pairs (i, j), i ≠ j, of polygons whose boundaries meet (shared edge or a
    single shared point) within ``tolerance_deg``. Uses one bulk STRtree query."""
    geoms = np.asarray(geometry)
    tree = shapely.STRtree(geoms)
    if tolerance_deg > 0:
        src, dst = tree.query(geoms, predicate="dwithin", distance=tolerance_deg)
    else:
        src, dst = tree.query(geoms, predicate="intersects")
    keep = src != dst
    return src[keep].astype(np.int64), dst[keep].astype(np.int64)


def h3_pairs(area_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Directed pairs (i, j) of H3 cells that are grid neighbours (``grid_ring(i, 1)``),
    keeping only neighbours that are areas themselves."""
    import h3

    ids = [str(a) for a in area_ids]
    position = {a: i for i, a in enumerate(ids)}
    src: list[int] = []
    dst: list[int] = []
    for i, cell in enumerate(ids):
        for neighbour in h3.grid_ring(cell, 1):
            j = position.get(neighbour)
            if j is not None:
                src.append(i)
                dst.append(j)
    return np.asarray(src, np.int64), np.asarray(dst, np.int64)


def knn_pairs(xy_km: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Directed pairs linking each point to its ``k`` nearest other points."""
    n = len(xy_km)
    k = min(k, n - 1)
    if k < 1:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    _, idx = cKDTree(xy_km).query(xy_km, k=k + 1)
    src = np.repeat(np.arange(n), k + 1)
    dst = idx.reshape(-1)
    keep = src != dst
    return src[keep].astype(np.int64), dst[keep].astype(np.int64)


def _symmetric_unique(src: np.ndarray, dst: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Both directions of every pair, duplicates and self loops removed, sorted by (src, dst)."""
    both_src = np.concatenate([src, dst])
    both_dst = np.concatenate([dst, src])
    keep = both_src != both_dst
    key = np.unique(both_src[keep] * n + both_dst[keep])
    return key // n, key % n


def connect_components(src: np.ndarray, dst: np.ndarray, xy_km: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, int]:
    """Link every component other than the largest to its nearest node of the largest
    (closest pair of centroids). Returns (src, dst, number of links added); links are
    added in one direction only (symmetrise afterwards)."""
    n = len(xy_km)
    adj = sparse.csr_matrix((np.ones(src.size), (src, dst)), shape=(n, n))
    n_comp, labels = connected_components(adj, directed=False)
    if n_comp <= 1:
        return src, dst, 0
    sizes = np.bincount(labels)
    main = int(sizes.argmax())
    main_nodes = np.flatnonzero(labels == main)
    tree = cKDTree(xy_km[main_nodes])
    distance, nearest = tree.query(xy_km)
    add_src, add_dst = [], []
    # One link per component: its node closest to the main component.
    for comp in range(n_comp):
        if comp == main:
            continue
        members = np.flatnonzero(labels == comp)
        best = members[distance[members].argmin()]
        add_src.append(best)
        add_dst.append(main_nodes[nearest[best]])
    return (np.concatenate([src, np.array(add_src, np.int64)]),
            np.concatenate([dst, np.array(add_dst, np.int64)]), len(add_src))


def inverse_distance_weights(src: np.ndarray, dst: np.ndarray, xy_km: np.ndarray) -> np.ndarray:
    """1 / centroid distance (km, floored at 10 m), scaled so the mean weight is 1."""
    distance = np.linalg.norm(xy_km[src] - xy_km[dst], axis=1)
    weight = 1.0 / np.maximum(distance, 0.01)
    return (weight / weight.mean()).astype(np.float32) if weight.size else weight.astype(np.float32)


def build_graph(areas: pd.DataFrame, method: str = "auto", knn_k: int = 6,
                tolerance_deg: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Adjacency of ``areas`` (a GeoDataFrame with a ``geometry`` column in EPSG:4326).

    Returns ``edge_index`` (int64 [2, E], node i = row i of ``areas``) and ``edge_weight``
    (float32 [E]); symmetric, no self loops or duplicates, connected.
    """
    if "geometry" not in areas:
        raise ContractError("areas: no 'geometry' column to build the graph from")
    geoms = np.asarray(areas.geometry.values)
    n = len(geoms)
    if n == 0:
        raise ContractError("areas: no rows; cannot build a graph")
    xy = centroids_km(geoms)
    is_polygon = np.isin(shapely.get_type_id(geoms), (3, 6))  # Polygon, MultiPolygon
    is_h3 = "unit" in areas and bool(areas["unit"].astype(str).str.startswith("h3").all())
    if method == "auto":
        method = "h3" if is_h3 else "queen" if is_polygon.all() else "knn"
    if method == "h3":
        if not is_h3:
            raise ContractError("areas: graph method 'h3' needs H3 cells (units.kind: h3)",
                                file="configs/data.yaml", key="graph.method",
                                hint="use auto, queen or knn for these areas")
        src, dst = h3_pairs(areas["area_id"].to_numpy())
    elif method == "queen":
        if not is_polygon.all():
            raise ContractError(f"areas: method 'queen' needs polygons, but "
                                f"{int((~is_polygon).sum())} geometries are not; use 'knn'")
        src, dst = queen_pairs(geoms, tolerance_deg)
    elif method == "knn":
        src, dst = knn_pairs(xy, knn_k)
    else:
        raise ValueError(f"graph method {method!r}: expected auto, h3, queen or knn")
    src, dst, _ = connect_components(src, dst, xy)
    src, dst = _symmetric_unique(src, dst, n)
    edge_index = np.stack([src, dst]).astype(np.int64)
    return edge_index, inverse_distance_weights(src, dst, xy)


def graph_summary(edge_index: np.ndarray, num_nodes: int) -> dict[str, Any]:
    """Checks and sizes of a graph: nodes, edges, components, symmetric, duplicates,
    self loops, min/mean/max degree (what the stage prints and the tests assert)."""
    src, dst = edge_index
    key = src * num_nodes + dst
    reverse = dst * num_nodes + src
    adj = sparse.csr_matrix((np.ones(src.size), (src, dst)), shape=(num_nodes, num_nodes))
    n_comp, _ = connected_components(adj, directed=False)
    degree = np.bincount(src, minlength=num_nodes)
    return {
        "num_nodes": int(num_nodes), "num_edges": int(src.size),
        "components": int(n_comp),
        "symmetric": bool(np.isin(reverse, key).all()),
        "duplicates": int(src.size - np.unique(key).size),
        "self_loops": int((src == dst).sum()),
        "degree_min": int(degree.min()), "degree_mean": float(degree.mean()),
        "degree_max": int(degree.max()),
    }


def row_normalised_adjacency(edge_index: np.ndarray, num_nodes: int,
                             edge_weight: np.ndarray | None = None) -> sparse.csr_matrix:
    """``[A, A]`` sparse matrix whose row ``i`` is the (edge-weighted) mean over ``i``'s
    neighbours: ``W @ x`` gives every area the mean of ``x`` next door. Edges point
    source → target and area ``i`` gathers from the sources of the edges ending at ``i``
    (the same thing for the symmetric graphs built here). Isolated rows stay 0.
    ``edge_weight=None`` weighs every neighbour equally."""
    src, dst = np.asarray(edge_index)
    weight = (np.ones(src.size) if edge_weight is None
              else np.asarray(edge_weight, dtype=np.float64))
    adj = sparse.csr_matrix((weight, (dst, src)), shape=(num_nodes, num_nodes))
    total = np.asarray(adj.sum(axis=1)).ravel()
    inv = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
    return (sparse.diags(inv) @ adj).tocsr()
