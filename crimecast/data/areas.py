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

Areas known only as centroids (points) get cells first (:func:`area_cells`): Voronoi
polygons clipped to the city's outline (``csv.outline``) or to the centroids' convex hull
buffered by ``centroids.hull_buffer_m``; ingest joins incidents to the same cells. With
``centroids.cells: none`` the areas file must give ``aland_m2``. Either way an area
without a land area stops the areas stage, naming the key, before any model runs.

Demographic shares are 0-100 in ``areas.parquet``. ``share_scale`` says whether the raw
file holds percent (0-100) or fractions (0-1); unset, it is detected (every share <= 1
means fractions) and the stage says which it assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crimecast.config import ConfigError
from crimecast.contracts import ARTIFACTS, ContractError
from crimecast.data.settings import AreaGroupSettings, CentroidSettings, DataSettings
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
    "area_id", "unit", "geometry", "land_area_km2", "population", "pct_black", "pct_white", "pct_asian",
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


def is_centroids(raw_areas: Any) -> bool:
    """True when every area is a point (the areas file gave centroids only)."""
    return bool(len(raw_areas)) and bool((raw_areas.geometry.geom_type == "Point").all())


def area_cells(raw_areas: Any, centroids: CentroidSettings, outline: Any = None) -> Any:
    """``raw_areas`` with each centroid replaced by its cell, when the areas are points
    and ``centroids.cells`` is ``voronoi``; otherwise ``raw_areas`` unchanged.

    The cells are the Voronoi polygons of the centroids, clipped to ``outline`` (a
    shapely geometry in EPSG:4326, the city's outline) or, without one, to the convex hull
    of the centroids buffered by ``centroids.hull_buffer_m`` metres (default: the median
    distance between neighbouring centroids, so outer cells are about as deep as inner
    ones). Computed in the local UTM zone so distances are metres.
    """
    import geopandas as gpd
    import shapely

    if not is_centroids(raw_areas) or centroids.cells != "voronoi":
        return raw_areas
    if len(raw_areas) < 3:
        raise ContractError(f"areas: {len(raw_areas)} centroid(s); Voronoi cells need at least 3",
                            file="configs/data.yaml", key="centroids.cells",
                            hint="give polygons, or set centroids.cells: none and aland_m2")
    points = raw_areas.geometry.set_crs("EPSG:4326", allow_override=raw_areas.crs is None)
    utm = raw_areas.estimate_utm_crs()
    xy = points.to_crs(utm)
    duplicated = raw_areas["area_id"][xy.geometry.duplicated()].astype(str)
    if len(duplicated):
        raise ContractError(f"areas: centroids of {duplicated.tolist()[:3]} repeat another "
                            "area's coordinates", file="configs/data.yaml",
                            key="csv.area_columns.lon", hint="give each area its own centroid")
    if outline is not None:
        region = gpd.GeoSeries([outline], crs="EPSG:4326").to_crs(utm).iloc[0]
    else:
        buffer_m = centroids.hull_buffer_m
        if buffer_m is None:
            tree = shapely.STRtree(xy.values)
            _, distance = tree.query_nearest(xy.values, exclusive=True, return_distance=True)
            buffer_m = float(np.median(distance))
        region = shapely.convex_hull(shapely.MultiPoint(list(xy.values))).buffer(buffer_m)
    diagram = shapely.voronoi_polygons(shapely.MultiPoint(list(xy.values)), extend_to=region)
    cells = np.asarray(shapely.get_parts(diagram))
    # Each Voronoi cell holds exactly one centroid: match them through a spatial index.
    point_i, cell_i = shapely.STRtree(cells).query(xy.values, predicate="intersects")
    first = pd.Series(cell_i).groupby(point_i).first()
    matched = np.empty(len(xy), dtype=object)
    matched[first.index.to_numpy()] = cells[first.to_numpy()]
    clipped = shapely.intersection(matched, region)
    out = raw_areas.copy()
    out = gpd.GeoDataFrame(out.drop(columns="geometry"),
                           geometry=gpd.GeoSeries(clipped, crs=utm).to_crs("EPSG:4326").values,
                           crs="EPSG:4326")
    if out.geometry.is_empty.any():
        empty = out.loc[out.geometry.is_empty, "area_id"].astype(str).tolist()
        raise ContractError(f"areas: centroids {empty[:3]} lie outside the city outline",
                            file="configs/data.yaml", key="csv.outline",
                            hint="use an outline that contains every centroid, or leave it "
                            "empty for a buffered hull")
    return out


SHARE_COLUMNS: tuple[str, ...] = (*SHARE_GROUPS, "pct_poverty")


def detect_share_scale(demographics: pd.DataFrame) -> str | None:
    """``fraction`` when every known share is within 0-1 and one is above 0, ``percent``
    when one exceeds 1, None when no share is known."""
    columns = [c for c in SHARE_COLUMNS if c in demographics.columns]
    values = demographics[columns].astype(float).to_numpy().ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    return "percent" if values.max() > 1.0 else "fraction"


def shares_as_percent(demographics: pd.DataFrame, share_scale: str | None,
                      notes: list[str] | None = None) -> pd.DataFrame:
    """Shares on the 0-100 scale. ``share_scale`` (configs/data.yaml key ``share_scale``)
    says what the raw file holds; None detects it and notes the guess. A file that
    contradicts the configured scale is a :class:`ConfigError`."""
    detected = detect_share_scale(demographics)
    scale = share_scale or detected or "percent"
    if share_scale is None and detected is not None and notes is not None:
        notes.append(f"share_scale not set: the demographic shares look like "
                     f"{detected}s (0-{'1' if detected == 'fraction' else '100'}); "
                     f"set share_scale: {detected} in configs/data.yaml to say so")
    if share_scale == "fraction" and detected == "percent":
        raise ConfigError("share_scale is 'fraction' but some demographic shares exceed 1",
                          file="configs/data.yaml", key="share_scale",
                          hint="set share_scale: percent (shares are 0-100)")
    if share_scale == "percent" and detected == "fraction" and notes is not None:
        notes.append("share_scale is 'percent' but every demographic share is <= 1: "
                     "if the file holds fractions, set share_scale: fraction")
    if scale != "fraction":
        return demographics
    out = demographics.copy()
    columns = [c for c in SHARE_COLUMNS if c in out.columns]
    out[columns] = out[columns].astype(float) * 100.0
    return out


def require_land_area(areas: Any, settings: DataSettings | None = None) -> None:
    """Stop with the key to set when some area has no positive land area (it is the
    denominator of PAI and the hotspot share, so training would fail much later)."""
    bad = areas.loc[~(areas["land_area_km2"] > 0), "area_id"].astype(str).tolist()
    if not bad:
        return
    csv = settings is None or settings.source == "csv"
    raise ContractError(
        f"areas: land area unknown for {len(bad)} of {len(areas)} areas, e.g. {bad[:3]}",
        file="configs/data.yaml",
        key="csv.area_columns.aland_m2" if csv else "source",
        hint="map csv.area_columns.aland_m2 to a land-area column (square metres), give "
             "polygons, or leave centroids.cells: voronoi to derive cells from centroids")


def build_areas(raw_areas: Any, demographics: pd.DataFrame,
                groups: AreaGroupSettings, share_scale: str | None = "percent",
                notes: list[str] | None = None, unit: str = "tract") -> Any:
    """Join geometry and demographics and label groups (see module docstring).

    ``raw_areas``: GeoDataFrame (``area_id``, geometry, optional ``aland_m2``);
    ``demographics``: :data:`RAW_DEMOGRAPHIC_COLUMNS` with shares on ``share_scale``
    (None: detect, appending the guess to ``notes``). Areas missing from the demographics
    keep NaN demographics and group ``unknown``. Returns a GeoDataFrame in EPSG:4326 with
    :data:`AREA_COLUMNS` (``unit`` = ``unit``), sorted by ``area_id`` (the node order of
    the graph).
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
    demo = shares_as_percent(demographics[list(RAW_DEMOGRAPHIC_COLUMNS)], share_scale, notes)
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
    merged["unit"] = unit
    result = gpd.GeoDataFrame(merged[list(AREA_COLUMNS)], geometry="geometry", crs="EPSG:4326")
    return result.sort_values("area_id", ignore_index=True)


def write_areas(target: Path, areas: Any) -> Path:
    """GeoParquet, atomically."""
    with atomic_path(target) as tmp:
        areas.to_parquet(tmp, index=False)
    return target


def source_areas(settings: DataSettings, source: Source, raw_dir: Path,
                 notes: list[str] | None = None) -> Any:
    """The source's areas with cells for centroids (:func:`area_cells`): what both the
    areas stage and ingest join incidents to. Notes the derivation in ``notes``."""
    raw_areas = source.read_areas(raw_dir)
    cells = area_cells(raw_areas, settings.centroids, source.read_outline(raw_dir))
    if cells is not raw_areas and notes is not None:
        where = "csv.outline" if settings.csv.outline else "their buffered convex hull"
        notes.append(f"{len(cells)} areas are centroids: cells and land area from Voronoi "
                     f"polygons clipped to {where} (key centroids.cells)")
    return cells


def unit_areas(tracts: Any, settings: DataSettings) -> Any:
    """The areas at the configured unit (``units`` in configs/data.yaml) from the built
    source areas ``tracts``: the tracts themselves, or H3 cells covering them with
    interpolated demographics (:func:`crimecast.data.units.h3_areas`)."""
    import geopandas as gpd

    from crimecast.data.units import h3_areas

    units = settings.units
    if units.kind != "h3":
        return tracts
    cells = h3_areas(tracts, units.resolution, settings.groups, units.group_from,
                     income_terciles=income_terciles, majority_group=majority_group)
    cells["unit"] = units.tag
    columns = [*AREA_COLUMNS, "tract_id"]
    return gpd.GeoDataFrame(cells[columns], geometry="geometry",
                            crs="EPSG:4326").sort_values("area_id", ignore_index=True)


def run_areas(settings: DataSettings | None = None, source: Source | None = None,
              write: bool = True, notes: list[str] | None = None) -> Any:
    """Read the source's areas and demographics from ``data/``, build the areas at the
    configured unit (:func:`unit_areas`) and (if ``write``) write
    ``artifacts/areas.parquet``; return the GeoDataFrame. Guesses and warnings
    (the detected share scale, cells derived from centroids) are appended to ``notes``.
    Stops before writing when an area has no land area (:func:`require_land_area`)."""
    settings = settings or DataSettings.load()
    source = source or get_source(settings)
    raw_dir = settings.raw_path()
    tracts = build_areas(source_areas(settings, source, raw_dir, notes),
                         source.read_demographics(raw_dir), settings.groups,
                         settings.share_scale, notes,
                         unit="tract" if settings.units.kind == "h3" else settings.units.tag)
    require_land_area(tracts, settings)
    areas = unit_areas(tracts, settings)
    if areas is not tracts and notes is not None:
        notes.append(f"{len(areas)} H3 cells at resolution {settings.units.resolution} cover "
                     f"the {len(tracts)} source areas; demographics interpolated by area "
                     f"(population {areas['population'].sum():,.0f} of "
                     f"{tracts['population'].sum():,.0f})")
    require_land_area(areas, settings)
    if write:
        write_areas(ARTIFACTS.areas, areas)
    return areas
