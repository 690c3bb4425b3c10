"""Stage ``features``: panel + graph → artifacts/features.parquet and artifacts/splits.json.

Lag, rolling-mean, spatial-lag and seasonal features per (area, origin week)
(:func:`crimecast.features.lag_features`) and the rolling-origin evaluation plan
(:func:`crimecast.features.rolling_origin_splits`); settings from configs/pipeline.yaml
keys ``features``, ``splits`` and ``panel``.

    python -m training.features
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from crimecast.contracts import ARTIFACTS, AreaGraph, ContractError, Panel
from crimecast.features import PipelineSettings, build_features
from crimecast.io import write_json, write_parquet


def run() -> tuple[pd.DataFrame, dict[str, Any]]:
    """Build and write features.parquet and splits.json; return both."""
    for path in (ARTIFACTS.panel, ARTIFACTS.graph, ARTIFACTS.areas):
        if not path.exists():
            raise ContractError(f"{path}: missing; run the panel and graph stages first")
    settings = PipelineSettings.load()
    features, splits = build_features(Panel.load(), AreaGraph.load(), settings)
    write_parquet(ARTIFACTS.features, features)
    write_json(ARTIFACTS.splits, splits)
    return features, splits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    features, splits = run()
    print(f"features: {len(features)} rows × {len(splits['feature_names'])} features; "
          f"backtest origins {splits['backtest']['origins'][0]} … "
          f"{splits['backtest']['origins'][-1]}, validation origins "
          f"{splits['validation']['origins'][0]} … {splits['validation']['origins'][-1]}")
    print(f"wrote {ARTIFACTS.features}")
    print(f"wrote {ARTIFACTS.splits}")


if __name__ == "__main__":
    main()
