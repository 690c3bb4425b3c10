"""Stage ``graph``: area adjacency from artifacts/areas.parquet → artifacts/graph.npz.

Queen contiguity of the polygons (k nearest neighbours when only centroids are known),
symmetric, weighted, connected; settings from configs/data.yaml key ``graph``.

    python -m training.graph
"""

from __future__ import annotations

import argparse
from typing import Any

import geopandas as gpd
import pandas as pd

from crimecast.contracts import ARTIFACTS, AreaGraph, ContractError
from crimecast.data.graph import build_graph, graph_summary
from crimecast.data.settings import DataSettings
from crimecast.errors import run_main

READS: tuple[str, ...] = ("areas",)
WRITES: tuple[str, ...] = ("graph",)


def run() -> dict[str, Any]:
    """Build and write graph.npz; return its summary (:func:`graph_summary`)."""
    settings = DataSettings.load().graph
    if not ARTIFACTS.areas.exists():
        raise ContractError(f"{ARTIFACTS.areas}: missing; run the areas stage first")
    areas = gpd.read_parquet(ARTIFACTS.areas)
    if "area_id" not in areas.columns:
        raise ContractError(f"{ARTIFACTS.areas}: missing column 'area_id'")
    edge_index, edge_weight = build_graph(areas, settings.method, settings.knn_k,
                                          settings.tolerance_deg)
    table = pd.DataFrame(areas.drop(columns="geometry")).set_index("area_id")
    AreaGraph(areas["area_id"].astype(str).to_numpy(), edge_index, edge_weight,
              table).save(ARTIFACTS.graph)
    return graph_summary(edge_index, len(areas))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    summary = run()
    print(f"graph: {summary['num_nodes']} areas, {summary['num_edges']} directed edges, "
          f"degree {summary['degree_min']}–{summary['degree_max']} "
          f"(mean {summary['degree_mean']:.1f}), {summary['components']} component(s)")
    print(f"wrote {ARTIFACTS.graph}")


if __name__ == "__main__":
    run_main(main)
