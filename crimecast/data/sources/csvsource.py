"""Any city from three files: an incidents CSV, an areas file and a demographics CSV.

Configured under ``csv:`` in ``configs/data.yaml`` (see :class:`CsvSettings`): the paths of
the three files and which of their columns holds each raw field. ``fetch`` copies the files
byte for byte into ``data/`` as ``incidents.csv[.gz]``, ``areas.geojson`` or ``areas.csv``
and ``demographics.csv[.gz]``; the readers apply the column mapping.

The areas file is either GeoJSON (polygons; incidents are joined point-in-polygon) or a CSV
of centroids with lon/lat columns (incidents go to the nearest centroid, and the graph falls
back to k-nearest neighbours).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crimecast.contracts import ContractError
from crimecast.data.settings import CsvSettings, DataSettings
from crimecast.data.sources.base import (
    RAW_DEMOGRAPHIC_COLUMNS,
    Source,
    require_columns,
)
from crimecast.io import atomic_path
from crimecast.paths import resolve

_GEOJSON_SUFFIXES = (".geojson", ".json", ".geojson.gz", ".json.gz")


def _suffix(path: Path) -> str:
    """``.csv.gz``-style double suffix when compressed, else the single suffix."""
    suffixes = path.suffixes
    if len(suffixes) >= 2 and suffixes[-1] == ".gz":
        return "".join(suffixes[-2:]).lower()
    return path.suffix.lower()


class CsvSource(Source):
    """A city given as CSV/GeoJSON files (``source: csv``)."""

    name = "csv"

    def __init__(self, settings: DataSettings) -> None:
        super().__init__(settings)
        self.cfg: CsvSettings = settings.csv

    def _configured(self) -> dict[str, Path]:
        files = {"incidents": self.cfg.incidents, "areas": self.cfg.areas,
                 "demographics": self.cfg.demographics}
        missing = [k for k, v in files.items() if not v]
        if missing:
            raise ContractError(
                f"source 'csv' needs csv.{missing[0]} (a file path); "
                f"unset: {['csv.' + m for m in missing]}", file="configs/data.yaml",
                key=f"csv.{missing[0]}", hint="`crimecast city init` writes these for you")
        if self.cfg.outline:  # optional: the outline centroid cells are clipped to
            files["outline"] = self.cfg.outline
        return {kind: resolve(path) for kind, path in files.items()}

    def _raw_name(self, kind: str, original: Path) -> str:
        return kind + _suffix(original)

    def _find(self, raw_dir: Path, kind: str) -> Path:
        matches = sorted(raw_dir.glob(f"{kind}.*"))
        if not matches:
            raise ContractError(f"{raw_dir}/{kind}.*: raw file missing; run `crimecast data fetch`")
        return matches[0]

    def fetch(self, raw_dir: Path) -> list[Path]:
        raw_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for kind, source in self._configured().items():
            if not source.exists():
                raise ContractError(f"{source}: file not found", file="configs/data.yaml",
                                    key=f"csv.{kind}", hint="give the path of the city's "
                                    f"{kind} file, relative to the project home")
            for stale in raw_dir.glob(f"{kind}.*"):  # an earlier fetch with another format
                stale.unlink()
            target = raw_dir / self._raw_name(kind, source)
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
            written.append(target)
        return written

    def incidents_file(self, raw_dir: Path) -> Path:
        return self._find(raw_dir, "incidents")

    def read_incidents(self, raw_dir: Path) -> pd.DataFrame:
        path = self._find(raw_dir, "incidents")
        columns = self.cfg.columns
        mapping = {"source_key": columns.source_key, "occurred_local": columns.occurred_local,
                   "offense_code": columns.offense_code, "lon": columns.lon, "lat": columns.lat}
        if columns.category:
            mapping["category"] = columns.category
        if columns.area_id:
            mapping["area_id"] = columns.area_id
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        require_columns(raw, list(mapping.values()), path)
        # only the mapped columns are read on: free text (addresses, narratives) stops here
        return pd.DataFrame({field: raw[column] for field, column in mapping.items()})

    def read_areas(self, raw_dir: Path) -> Any:
        import geopandas as gpd

        path = self._find(raw_dir, "areas")
        cols = self.cfg.area_columns
        if _suffix(path) in _GEOJSON_SUFFIXES:
            raw = gpd.read_file(path)
            require_columns(raw, [cols.area_id], path)
            geometry = raw.geometry.values
            crs = raw.crs or "EPSG:4326"
        else:
            raw = pd.read_csv(path, dtype={cols.area_id: str})
            require_columns(raw, [cols.area_id, cols.lon, cols.lat], path)
            geometry = gpd.points_from_xy(raw[cols.lon].astype(float), raw[cols.lat].astype(float))
            crs = "EPSG:4326"
        aland = (pd.to_numeric(raw[cols.aland_m2], errors="coerce").astype(float)
                 if cols.aland_m2 and cols.aland_m2 in raw.columns else np.nan)
        areas = gpd.GeoDataFrame({"area_id": raw[cols.area_id].astype(str), "aland_m2": aland},
                                 geometry=geometry, crs=crs)
        return areas.to_crs("EPSG:4326")

    def read_outline(self, raw_dir: Path) -> Any:
        """The ``csv.outline`` GeoJSON, as fetched into ``data/outline.*``; None if unset."""
        import geopandas as gpd
        import shapely

        if not self.cfg.outline:
            return None
        frame = gpd.read_file(self._find(raw_dir, "outline"))
        frame = frame.set_crs("EPSG:4326") if frame.crs is None else frame.to_crs("EPSG:4326")
        return shapely.union_all(frame.geometry.values)

    def read_demographics(self, raw_dir: Path) -> pd.DataFrame:
        path = self._find(raw_dir, "demographics")
        mapping = self.cfg.demographic_columns.model_dump()
        raw = pd.read_csv(path, dtype={mapping["area_id"]: str})
        require_columns(raw, [c for c in mapping.values() if c], path)
        frame = pd.DataFrame({"area_id": raw[mapping["area_id"]].astype(str)})
        for field in RAW_DEMOGRAPHIC_COLUMNS[1:]:
            column = mapping[field]
            frame[field] = (pd.to_numeric(raw[column], errors="coerce").astype(float)
                            if column else np.nan)
        numeric = list(RAW_DEMOGRAPHIC_COLUMNS[1:])
        frame[numeric] = frame[numeric].mask(frame[numeric].isin(self.cfg.na_sentinels))
        return frame
