"""The synthetic source: a generated city (:mod:`crimecast.data.synthetic`) as raw files.

``fetch`` writes into ``data/``:

- ``incidents.parquet``: one row per recorded crime (``source_key``, ``occurred_local``,
  ``offense_code``, ``lon``, ``lat``, ``category``), points uniform inside their area;
- ``areas.parquet``: GeoParquet with ``area_id``, ``geometry``, ``aland_m2``;
- ``demographics.parquet``: the raw demographic columns;
- ``truth.parquet``: the true intensity per (area, week, category), copied to
  ``artifacts/truth.parquet`` by the panel stage;
- ``synthetic.json``: the settings that generated it.

Settings come from ``configs/data.yaml`` key ``synthetic`` (see
:class:`crimecast.data.synthetic.SyntheticSettings`); the same settings give byte-identical files.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
from pydantic import ValidationError

from crimecast.config import ConfigError
from crimecast.data.settings import DataSettings
from crimecast.data.sources.base import Source
from crimecast.data.synthetic import SyntheticSettings, generate_city
from crimecast.io import write_parquet, write_text

INCIDENTS_FILE = "incidents.parquet"
AREAS_FILE = "areas.parquet"
DEMOGRAPHICS_FILE = "demographics.parquet"
TRUTH_FILE = "truth.parquet"
SETTINGS_FILE = "synthetic.json"


def synthetic_settings(settings: DataSettings) -> SyntheticSettings:
    """Validate ``configs/data.yaml`` key ``synthetic`` into :class:`SyntheticSettings`."""
    try:
        return SyntheticSettings.model_validate(settings.synthetic)
    except ValidationError as exc:
        problems = "; ".join(f"synthetic.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"configs/data.yaml: {problems}") from None


class SyntheticSource(Source):
    """A generated city with a known truth (``source: synthetic``)."""

    name = "synthetic"

    def fetch(self, raw_dir: Path) -> list[Path]:
        cfg = synthetic_settings(self.settings)
        city = generate_city(settings=cfg)
        raw_dir.mkdir(parents=True, exist_ok=True)
        events = city.events().drop(columns="area_id")  # ingest must recover the area
        areas = city.areas[["area_id", "geometry"]].copy()
        areas["aland_m2"] = (city.areas["land_area_km2"] * 1e6).round()
        return [
            write_parquet(raw_dir / INCIDENTS_FILE, events),
            write_parquet(raw_dir / AREAS_FILE, areas),
            write_parquet(raw_dir / DEMOGRAPHICS_FILE, city.demographics_frame()),
            write_parquet(raw_dir / TRUTH_FILE, city.truth_frame()),
            write_text(raw_dir / SETTINGS_FILE,
                       json.dumps(cfg.model_dump(), indent=2, sort_keys=True) + "\n"),
        ]

    def _require(self, raw_dir: Path, name: str) -> Path:
        path = raw_dir / name
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: missing; run `crimecast data fetch` with source: synthetic first")
        return path

    def read_incidents(self, raw_dir: Path) -> pd.DataFrame:
        return pd.read_parquet(self._require(raw_dir, INCIDENTS_FILE))

    def read_areas(self, raw_dir: Path) -> gpd.GeoDataFrame:
        return gpd.read_parquet(self._require(raw_dir, AREAS_FILE))

    def read_demographics(self, raw_dir: Path) -> pd.DataFrame:
        return pd.read_parquet(self._require(raw_dir, DEMOGRAPHICS_FILE))

    def read_truth(self, raw_dir: Path) -> pd.DataFrame:
        """The true intensity (``truth.parquet`` contract) written by :meth:`fetch`."""
        return pd.read_parquet(self._require(raw_dir, TRUTH_FILE))

    def incidents_file(self, raw_dir: Path) -> Path:
        return raw_dir / INCIDENTS_FILE
