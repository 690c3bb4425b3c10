"""Spatial units other than the source's own areas: H3 cells covering the city.

With ``units: {kind: h3, resolution: R}`` (configs/data.yaml) the areas stage turns the
source's areas (Philadelphia's census tracts) into H3 cells and ingest assigns each
incident to its cell. Everything here is pure (frames in, frames out):

- :func:`h3_cover`: every resolution-R cell that overlaps the city (the union of the
  source's areas), its hexagon clipped to the city; ``area_id`` is the H3 index string.
  A cell is kept when its clipped part has a positive area, so every point of the city
  lies in exactly one kept cell.
- :func:`h3_areas`: the cells with land area and demographics from the tracts by
  area-weighted interpolation (``tobler.area_weighted.area_interpolate``, in the city's
  UTM zone):

  * ``aland_m2`` — the tracts' land area (census ``ALAND``, which excludes water) is
    extensive, so a cell gets each tract's land in proportion to the share of the tract's
    polygon it covers: water is excluded by the tracts' own land/water split;
  * ``population`` — extensive (cell total = sum over tracts of population x covered
    share of the tract); the city total is conserved because the cells cover the city;
  * shares (``pct_black`` … ``pct_hispanic``, ``pct_poverty``) — population-weighted:
    the interpolated count of each share (population x share) over the interpolated
    population of the tracts where the share is known, never an average of percentages;
  * ``median_income`` — medians do not add up, so the documented rule is the
    population-weighted mean of the tract medians (over tracts where it is known);
  * ``group`` — the tract rule (``groups`` in configs/data.yaml) on the interpolated
    shares, or, with ``units.group_from: tract``, the group of the tract contributing
    most of the cell's population;
  * cells without residents (interpolated population below one person) get group
    ``unknown`` and ``low_population``, as tracts without residents do, so the gate
    (``exempt_groups``) and monitoring treat them alike.
- :func:`cells_of_points`: the H3 cell of each point (``h3.latlng_to_cell``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crimecast.contracts import ContractError

# Share columns interpolated population-weighted (numerator = population x share).
WEIGHTED_SHARES: tuple[str, ...] = ("pct_black", "pct_white", "pct_asian", "pct_hispanic",
                                    "pct_poverty")
# Below this interpolated population a cell has no residents.
NO_RESIDENTS_BELOW = 1.0


def is_h3_cell(text: str, resolution: int | None = None) -> bool:
    """True when ``text`` is a valid H3 cell index (at ``resolution`` when given)."""
    import h3

    try:
        valid = bool(h3.is_valid_cell(text))
    except (TypeError, ValueError):
        return False
    return valid and (resolution is None or h3.get_resolution(text) == resolution)


def hexagons(cells: list[str]) -> np.ndarray:
    """Shapely hexagons (lon, lat; EPSG:4326) of H3 cells."""
    import h3
    import shapely

    return np.array([shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)])
                     for c in cells], dtype=object)


def h3_cover(city: Any, resolution: int) -> Any:
    """The cells at ``resolution`` overlapping ``city`` (a shapely geometry, EPSG:4326),
    each clipped to it: a GeoDataFrame with ``area_id`` (H3 string) and ``geometry``,
    sorted by ``area_id``. Cells whose clipped part has no area are dropped."""
    import geopandas as gpd
    import h3
    import shapely

    shape = h3.geo_to_h3shape(shapely.geometry.mapping(city))
    cells = sorted(h3.h3shape_to_cells_experimental(shape, resolution, contain="overlap"))
    if not cells:
        raise ContractError(f"areas: no H3 cell at resolution {resolution} overlaps the city",
                            file="configs/data.yaml", key="units.resolution",
                            hint="check that the source's areas are in EPSG:4326")
    shapely.prepare(city)
    clipped = shapely.intersection(hexagons(cells), city)
    frame = gpd.GeoDataFrame({"area_id": cells}, geometry=clipped, crs="EPSG:4326")
    utm = frame.estimate_utm_crs()
    keep = frame.geometry.to_crs(utm).area > 0.01  # m²: drop touching-only cells
    return frame[keep.to_numpy()].reset_index(drop=True)


def h3_areas(tracts: Any, resolution: int, group_rule: Any, group_from: str = "shares",
             income_terciles: Any = None, majority_group: Any = None) -> Any:
    """Cells at ``resolution`` covering ``tracts`` with interpolated land area and
    demographics (see the module docstring).

    ``tracts``: the built tract areas (:func:`crimecast.data.areas.build_areas` output:
    ``area_id``, geometry, ``land_area_km2`` and the demographic columns);
    ``group_rule``: :class:`~crimecast.data.settings.AreaGroupSettings`;
    ``income_terciles`` / ``majority_group``: the tract labelling functions (passed in so
    cells and tracts share one rule). Returns a GeoDataFrame with the columns of
    ``tracts`` (``area_id`` = H3 string) plus ``tract_id`` (the tract holding most of the
    cell's population, or most of its area when nobody lives there).
    """
    import geopandas as gpd
    from tobler.area_weighted import area_interpolate

    city = tracts.geometry.union_all()
    cells = h3_cover(city, resolution)
    utm = tracts.estimate_utm_crs()
    source = gpd.GeoDataFrame(
        {"population": tracts["population"].fillna(0.0).astype(float).to_numpy(),
         "land_m2": (tracts["land_area_km2"].astype(float) * 1e6).to_numpy()},
        geometry=tracts.geometry.to_crs(utm).to_numpy(), crs=utm)
    extensive = ["population", "land_m2"]
    population = source["population"].to_numpy()
    for column in (*WEIGHTED_SHARES, "median_income"):
        values = tracts[column].astype(float).to_numpy()
        known = np.isfinite(values)
        scale = 100.0 if column != "median_income" else 1.0
        source[f"{column}__num"] = np.where(known, population * values / scale, 0.0)
        source[f"{column}__den"] = np.where(known, population, 0.0)
        extensive += [f"{column}__num", f"{column}__den"]
    target = cells.to_crs(utm)
    estimate = area_interpolate(source, target, extensive_variables=extensive)
    out = pd.DataFrame({"area_id": cells["area_id"].to_numpy()})
    out["population"] = estimate["population"].to_numpy()
    out["aland_m2"] = estimate["land_m2"].to_numpy()
    for column in (*WEIGHTED_SHARES, "median_income"):
        num = estimate[f"{column}__num"].to_numpy()
        den = estimate[f"{column}__den"].to_numpy()
        scale = 100.0 if column != "median_income" else 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            out[column] = np.where(den > 0, num / den * scale, np.nan)
    residents = out["population"] >= NO_RESIDENTS_BELOW
    out.loc[~residents, "population"] = out.loc[~residents, "population"].clip(lower=0.0)
    out["land_area_km2"] = out["aland_m2"] / 1e6
    out["tract_id"] = dominant_tract(tracts, cells, utm)
    out["income_tercile"] = income_terciles(out["median_income"].where(residents))
    if group_from == "tract":
        tract_group = tracts.set_index(tracts["area_id"].astype(str))["group"]
        out["group"] = out["tract_id"].map(tract_group).fillna("unknown").astype(object)
    elif group_rule.rule == "majority":
        out["group"] = majority_group(out, group_rule.majority_threshold_pct)
    else:
        out["group"] = out["income_tercile"]
    out.loc[~residents, "group"] = "unknown"
    out["low_population"] = ~(out["population"] >= group_rule.population_floor)
    return gpd.GeoDataFrame(out, geometry=cells.geometry.to_numpy(), crs="EPSG:4326")


def dominant_tract(tracts: Any, cells: Any, utm: Any) -> np.ndarray:
    """For each cell, the ``area_id`` of the tract contributing most of its population
    (population x covered share of the tract), ties and empty cells by covered area."""
    import geopandas as gpd

    source = gpd.GeoDataFrame({"tract_id": tracts["area_id"].astype(str).to_numpy(),
                               "population": tracts["population"].fillna(0).astype(float)
                               .to_numpy()},
                              geometry=tracts.geometry.to_crs(utm).to_numpy(), crs=utm)
    source["tract_m2"] = source.area
    target = gpd.GeoDataFrame({"cell": np.arange(len(cells))},
                              geometry=cells.geometry.to_crs(utm).to_numpy(), crs=utm)
    pieces = gpd.overlay(source, target, how="intersection", keep_geom_type=True)
    pieces["area_m2"] = pieces.area
    pieces["people"] = pieces["population"] * pieces["area_m2"] / pieces["tract_m2"]
    best = pieces.sort_values(["cell", "people", "area_m2"], ascending=[True, False, False])
    first = best.drop_duplicates("cell").set_index("cell")["tract_id"]
    return first.reindex(np.arange(len(cells))).fillna("").to_numpy(dtype=object)


def cells_of_points(lat: np.ndarray, lon: np.ndarray, resolution: int) -> np.ndarray:
    """The H3 cell (string) of each point; one ``h3.latlng_to_cell`` call per distinct
    coordinate pair (incidents repeat block-level coordinates a lot)."""
    import h3

    coords = pd.DataFrame({"lat": lat, "lon": lon})
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(coords))
    cells = np.array([h3.latlng_to_cell(float(la), float(lo), resolution)
                      for la, lo in uniques], dtype=object)
    return cells[codes]


def unit_file() -> Any:
    """``state/unit.json``: the unit the data stages build, as ``crimecast pipeline``
    resolved it (configs/data.yaml ``units`` plus any ``CRIMECAST_DATA__UNITS__*``
    override). The ingest and areas stages depend on it in dvc.yaml, so an override
    that DVC cannot see still reruns them, and switching back restores them from DVC's
    run cache."""
    from crimecast.paths import project_home

    return project_home() / "state" / "unit.json"


def record_unit(units: Any) -> Any:
    """Write :func:`unit_file` for ``units`` (:class:`~crimecast.data.settings.UnitSettings`)
    when its content changes (an unchanged file keeps DVC's hash). Returns the path."""
    import json

    from crimecast.io import atomic_path

    path = unit_file()
    text = json.dumps(units.model_dump(mode="json"), sort_keys=True) + "\n"
    if path.exists() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def check_recorded_unit(units: Any) -> None:
    """Stop, naming the fix, when :func:`unit_file` exists and disagrees with ``units``
    (a plain ``dvc repro`` after changing the unit by environment variable)."""
    import json

    from crimecast.config import ConfigError

    path = unit_file()
    if not path.exists():
        return
    recorded = json.loads(path.read_text())
    if recorded != units.model_dump(mode="json"):
        raise ConfigError(f"{path} records unit {recorded} but the settings say "
                          f"{units.model_dump(mode='json')}", file="configs/data.yaml",
                          key="units", hint="run `crimecast pipeline` (it records the unit "
                          "so DVC reruns the data stages), not a bare `dvc repro`")
