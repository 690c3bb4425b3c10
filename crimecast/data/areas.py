"""Areas: tract geometry + demographics → ``artifacts/areas.parquet`` with fairness groups.

:func:`build_areas` is pure (frames in, GeoDataFrame out). Each area gets:

- ``land_area_km2``: from the census land area (``aland_m2``) when given, else the area of
  the polygon in its local UTM projection; NaN for centroid-only areas without it;
- the demographic columns of the contract (NaN when unknown);
- ``income_tercile``: ``low``/``middle``/``high`` by tercile of median income among areas
  where it is known, ``unknown`` otherwise;
- ``group`` by the configured rule: ``majority`` labels the largest of the black / white /
  asian / hispanic shares when it reaches ``majority_threshold_pct`` and ``mixed``
  otherwise; ``income_tercile`` copies the tercile. Areas without residents or without
  demographics get ``unknown``. (ACS race counts "alone"; hispanic is an ethnicity that
  overlaps them, so the shares need not sum to 100.)
- ``low_population``: population below ``population_floor`` (or unknown).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crimecast.contracts import ARTIFACTS, ContractError
from crimecast.data.settings import AreaGroupSettings, DataSettings
from crimecast.data.sources.base import (
    RAW_DEMOGRAPHIC_COLUMNS,
    Source,
    get_source,
    require_columns,
)
from crimecast.io import atomic_path

SHARE_GROUPS: dict[str, str] = {
    "pct_black": "black", "pct_white": "white", "pct_asian": "asian", "pct_hispanic": "hispanic",
}
AREA_COLUMNS: tuple[str, ...] = (
    "area_id", "geometry", "land_area_km2", "population", "pct_black", "pct_white", "pct_asian",
    "pct_hispanic", "median_income", "pct_poverty", "group", "income_tercile", "low_population",
)


def majority_group(demographics: pd.DataFrame, threshold_pct: float) -> pd.Series:
    """Label of the largest share in :data:`SHARE_GROUPS` if it is ≥ ``threshold_pct``,
    ``mixed`` if none is, ``unknown`` if no share or no population is known."""
    shares = demographics[list(SHARE_GROUPS)].astype(float)
    known = shares.notna().any(axis=1) & (demographics["population"].fillna(0) > 0)
    largest = shares.fillna(-1).idxmax(axis=1).map(SHARE_GROUPS)
    top = shares.max(axis=1)
    label = np.where(top >= threshold_pct, largest, "mixed")
    return pd.Series(np.where(known, label, "unknown"), index=demographics.index, dtype=object)


def income_terciles(median_income: pd.Series) -> pd.Series:
    """``low``/``middle``/``high`` by tercile of the known incomes; ``unknown`` for NaN."""
    known = median_income.dropna()
    labels = pd.Series("unknown", index=median_income.index, dtype=object)
    if known.nunique() >= 3:
        # rank first so ties cannot make two tercile edges equal
        terciles = pd.qcut(known.rank(method="first"), 3, labels=["low", "middle", "high"])
        labels.loc[known.index] = terciles.astype(str)
    return labels


def land_area_km2(areas: Any) -> pd.Series:
    """Land area in km²: ``aland_m2`` / 1e6 where known, else the projected polygon area."""
    given = (areas["aland_m2"].astype(float) / 1e6 if "aland_m2" in areas.columns
             else pd.Series(np.nan, index=areas.index))
    polygons = areas.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
    if (given.isna() & polygons).any():
        projected = areas.geometry.to_crs(areas.estimate_utm_crs()).area / 1e6
        given = given.where(given.notna() | ~polygons, projected)
    return given


def build_areas(raw_areas: Any, demographics: pd.DataFrame,
                groups: AreaGroupSettings) -> Any:
    """Join geometry and demographics and label groups (see module docstring).

    ``raw_areas``: GeoDataFrame (``area_id``, geometry, optional ``aland_m2``);
    ``demographics``: :data:`RAW_DEMOGRAPHIC_COLUMNS`. Areas missing from the demographics
    keep NaN demographics and group ``unknown``. Returns a GeoDataFrame in EPSG:4326 with
    :data:`AREA_COLUMNS`, sorted by ``area_id`` (the node order of the graph).
    """
    import geopandas as gpd

    require_columns(raw_areas, ["area_id", "geometry"], "areas")
    require_columns(demographics, RAW_DEMOGRAPHIC_COLUMNS, "demographics")
    areas = raw_areas.copy()
    areas["area_id"] = areas["area_id"].astype(str)
    duplicated = areas["area_id"][areas["area_id"].duplicated()]
    if len(duplicated):
        raise ContractError(f"areas: duplicate area_id values, e.g. {duplicated.unique()[:3].tolist()}")
    if areas.crs is None or areas.crs.to_epsg() != 4326:
        areas = areas.set_crs("EPSG:4326") if areas.crs is None else areas.to_crs("EPSG:4326")
    demo = demographics[list(RAW_DEMOGRAPHIC_COLUMNS)].copy()
    demo["area_id"] = demo["area_id"].astype(str)
    demo = demo.drop_duplicates("area_id", keep="first")
    merged = areas.merge(demo, on="area_id", how="left")
    numeric = [c for c in RAW_DEMOGRAPHIC_COLUMNS if c != "area_id"]
    merged[numeric] = merged[numeric].astype(float)
    merged["land_area_km2"] = land_area_km2(merged)
    merged["income_tercile"] = income_terciles(merged["median_income"])
    if groups.rule == "majority":
        merged["group"] = majority_group(merged, groups.majority_threshold_pct)
    else:
        merged["group"] = merged["income_tercile"]
    merged["low_population"] = ~(merged["population"] >= groups.population_floor)
    result = gpd.GeoDataFrame(merged[list(AREA_COLUMNS)], geometry="geometry", crs="EPSG:4326")
    return result.sort_values("area_id", ignore_index=True)


def write_areas(target: Path, areas: Any) -> Path:
    """GeoParquet, atomically."""
    with atomic_path(target) as tmp:
        areas.to_parquet(tmp, index=False)
    return target


def run_areas(settings: DataSettings | None = None, source: Source | None = None,
              write: bool = True) -> Any:
    """Read the source's areas and demographics from ``data/``, build and (if ``write``)
    write ``artifacts/areas.parquet``; return the GeoDataFrame."""
    settings = settings or DataSettings.load()
    source = source or get_source(settings)
    raw_dir = settings.raw_path()
    areas = build_areas(source.read_areas(raw_dir), source.read_demographics(raw_dir),
                        settings.groups)
    if write:
        write_areas(ARTIFACTS.areas, areas)
    return areas
