"""Ingest: raw incidents from a source → clean, validated, anonymised incidents.

:func:`clean_incidents` is the pure core (frames in, frames out); :func:`run_ingest` is the
edge that reads the configured source and writes, atomically and only once everything has
been computed, ``artifacts/incidents.parquet``, ``artifacts/quarantine.csv.gz`` and
``artifacts/ingest_report.json`` (see :mod:`crimecast.contracts`).

Each bad row is quarantined with the first reason that applies, in :data:`REASONS` order.
The quarantine keeps only a salted hash of the source key, the timestamp text, the offense
code, the coordinates and the reason: no addresses or free text. Text that does not look
like a timestamp or a code is replaced by a placeholder, since a malformed field may hold
anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from crimecast.contracts import ARTIFACTS, ContractError
from crimecast.data.areas import source_areas
from crimecast.data.labels import (
    category_lookup,
    map_labels,
    normalise_label,
    normalised_labels,
    safe_label,
)
from crimecast.data.quality import daily_counts, detect_outages
from crimecast.data.settings import DataSettings
from crimecast.data.sources.base import (
    RAW_INCIDENT_COLUMNS,
    Source,
    get_source,
    require_columns,
)
from crimecast.io import write_gzip, write_json, write_parquet

REASONS: tuple[str, ...] = (
    "missing_source_key",
    "duplicate_source_key",
    "unparseable_date",
    "future_timestamp",
    "unknown_category",
    "unknown_offense_code",
    "missing_coordinates",
    "outside_bbox",
    "outside_areas",
    "unknown_area",
    "outside_cells",
)
INCIDENT_COLUMNS: tuple[str, ...] = (
    "incident_id", "occurred_at", "week", "category", "offense_code", "lat", "lon", "area_id",
)
QUARANTINE_COLUMNS: tuple[str, ...] = ("key_hash", "occurred_local", "offense_code", "lon", "lat",
                                       "reason", "value")
# The raw field whose value each reason rejects (shown in the quarantine's ``value`` column).
REASON_FIELD: dict[str, str] = {
    "unparseable_date": "occurred_local", "future_timestamp": "occurred_local",
    "unknown_category": "category", "unknown_offense_code": "offense_code",
    "unknown_area": "area_id",
}
_TIMESTAMP_TEXT = r"^[0-9:\-T /.+Z]{0,40}$"
_CODE_TEXT = r"^[A-Za-z0-9._\-]{0,16}$"


@dataclass
class IngestResult:
    """Clean ``incidents`` (:data:`INCIDENT_COLUMNS`), ``quarantine``
    (:data:`QUARANTINE_COLUMNS`) and the ``report`` written to ingest_report.json."""

    incidents: pd.DataFrame
    quarantine: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def hash_keys(keys: pd.Series, salt: str) -> pd.Series:
    """Pseudonymous id of each source key: keyed SipHash-2-4 (64 bit, as 16 hex chars) with
    a key derived from ``salt``. Stable across runs with the same salt; without the salt it
    cannot be linked back to the source key. Vectorised: ~1 s for 1.5 M keys."""
    key = hashlib.sha256(salt.encode()).hexdigest()[:16]
    hashed = pd.util.hash_array(keys.astype(str).to_numpy(dtype=object), hash_key=key,
                                categorize=False)
    digits = _HEX_PAIRS[hashed.astype(">u8").view(np.uint8).reshape(-1, 8)]
    return pd.Series(digits.view("S16").ravel().astype(str).astype(object), index=keys.index)


_HEX_PAIRS = np.array([f"{i:02x}" for i in range(256)], dtype="S2")


def parse_local_times(text: pd.Series, timezone: str, naive_is_utc: bool = False) -> pd.Series:
    """Timestamp text → tz-aware timestamps in ``timezone`` (NaT when unparseable).

    Text with an offset (``Z``, ``+00:00``) is converted; text without one is local
    wall-clock time, or UTC when ``naive_is_utc``. In the autumn DST overlap an ambiguous
    local time is read as daylight time (its first occurrence); a local time in the spring
    gap is moved forward to the first valid instant.
    """
    offsets = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True, na=False)
    if naive_is_utc or (offsets.any() and offsets[text.notna() & (text != "")].all()):
        aware = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        return aware.dt.tz_convert(timezone)
    naive = pd.to_datetime(text, format="ISO8601", errors="coerce")
    if getattr(naive.dt, "tz", None) is not None:  # the source sent offsets: convert
        return naive.dt.tz_convert(timezone)
    return naive.dt.tz_localize(timezone, ambiguous=np.ones(len(naive), dtype=bool),
                                nonexistent="shift_forward")


def assign_areas(lon: np.ndarray, lat: np.ndarray, areas: Any) -> tuple[np.ndarray, np.ndarray]:
    """Area of each point: ``(area_index [n] int64, -1 when none; outside_bbox [n] bool)``.

    Polygons: each prepared polygon tests only the points in its bounding box (points are
    sorted by longitude, so that is two binary searches), with ``contains_xy``; the few
    points left, e.g. exactly on a border, go through an STRtree ``intersects`` query. A
    point in several polygons goes to the lowest-index one, so the join is deterministic.
    1.5 M points x 408 tracts take ~2 s. Points (centroids only): the nearest centroid,
    for points inside the centroids' bounding box padded by the median centroid spacing.
    """
    geoms = np.asarray(areas.geometry.values)
    n = len(lon)
    area_index = np.full(n, -1, dtype=np.int64)
    is_points = bool(len(geoms)) and all(g.geom_type == "Point" for g in geoms)
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    pad = _centroid_spacing(geoms) if is_points else 0.0
    outside = ~((lon >= minx - pad) & (lon <= maxx + pad) & (lat >= miny - pad) & (lat <= maxy + pad))
    candidates = np.flatnonzero(~outside)
    if candidates.size == 0:
        return area_index, outside
    tree = shapely.STRtree(geoms)
    if is_points:
        hits = tree.query_nearest(shapely.points(lon[candidates], lat[candidates]),
                                  all_matches=False)
        area_index[candidates[hits[0]]] = hits[1]
        return area_index, outside

    order = candidates[np.argsort(lon[candidates], kind="stable")]
    xs, ys = lon[order], lat[order]
    bounds = shapely.bounds(geoms)
    for i in range(len(geoms)):
        polygon = geoms[i]
        shapely.prepare(polygon)
        start = np.searchsorted(xs, bounds[i, 0], side="left")
        stop = np.searchsorted(xs, bounds[i, 2], side="right")
        in_box = np.flatnonzero((ys[start:stop] >= bounds[i, 1]) & (ys[start:stop] <= bounds[i, 3]))
        in_box += start
        inside = order[in_box[shapely.contains_xy(polygon, xs[in_box], ys[in_box])]]
        inside = inside[area_index[inside] < 0]
        area_index[inside] = i

    left = candidates[area_index[candidates] < 0]
    if left.size:
        point_i, area_i = tree.query(shapely.points(lon[left], lat[left]), predicate="intersects")
        first = pd.Series(area_i).groupby(point_i).min()
        area_index[left[first.index.to_numpy()]] = first.to_numpy()
    return area_index, outside


def _centroid_spacing(points: np.ndarray) -> float:
    if len(points) < 2:
        return 0.01
    tree = shapely.STRtree(points)
    _, distances = tree.query_nearest(points, exclusive=True, return_distance=True)
    return float(np.median(distances)) if len(distances) else 0.01


def _safe_text(values: pd.Series, pattern: str) -> pd.Series:
    text = values.astype(str).where(values.notna(), "")
    ok = text.str.match(pattern)
    return text.where(ok, "<redacted: " + text.str.len().astype(str) + " chars>")


def area_label_index(labels: pd.Series, area_ids: np.ndarray) -> np.ndarray:
    """Row index into ``area_ids`` of each incident's own area label (-1 when unknown);
    labels and ids are compared in :func:`~crimecast.data.labels.normalise_label` form."""
    position = {normalise_label(a): i for i, a in enumerate(area_ids)}
    codes, uniques = pd.factorize(labels, use_na_sentinel=True)
    found = np.array([position.get(normalise_label(u), -1) for u in uniques] + [-1],
                     dtype=np.int64)
    return found[codes]


def clean_incidents(raw: pd.DataFrame, areas: Any, settings: DataSettings,
                    now: pd.Timestamp | None = None, file: str | Path = "raw incidents",
                    cells: np.ndarray | None = None) -> IngestResult:
    """Validate raw incidents and split them into clean incidents and quarantined rows.

    ``raw``: a raw incident frame (:data:`RAW_INCIDENT_COLUMNS`, optional ``category`` and
    ``area_id``); ``areas``: GeoDataFrame with ``area_id`` and geometry (EPSG:4326);
    ``now``: the reference time for future timestamps (default: the current time). A
    missing column raises :class:`ContractError` naming ``file`` and the column.

    Categories come from ``settings.categories`` (any code or label, see
    :mod:`crimecast.data.labels`): a ``category`` value is used when present, else the
    offense code. A raw ``area_id`` (the incidents' own area label) replaces the spatial
    join: coordinates are then optional, and an unknown label is quarantined.
    With ``units.kind: h3`` an incident inside the city gets the H3 cell of its
    coordinates (``h3.latlng_to_cell``) as ``area_id``; ``cells`` are the covered cells
    (the areas stage's), and a cell outside them is quarantined as ``outside_cells``.
    Returns an :class:`IngestResult` whose report holds counts per reason and outages.
    """
    require_columns(raw, RAW_INCIDENT_COLUMNS, file)
    tz = settings.timezone
    now = pd.Timestamp.now(tz=tz) if now is None else pd.Timestamp(now)
    now = now.tz_localize(tz) if now.tzinfo is None else now.tz_convert(tz)
    n = len(raw)
    reason = np.full(n, "", dtype=object)

    def flag(mask: np.ndarray, name: str) -> None:
        reason[(reason == "") & mask] = name

    keys = raw["source_key"].astype(str).str.strip().where(raw["source_key"].notna(), "")
    flag(((keys == "") | (keys.str.lower() == "nan")).to_numpy(), "missing_source_key")
    flag(keys.duplicated(keep="first").to_numpy(), "duplicate_source_key")

    occurred = parse_local_times(raw["occurred_local"].astype(str).str.strip(), tz,
                                 naive_is_utc=settings.csv.timestamps == "utc"
                                 and settings.source == "csv")
    flag(occurred.isna().to_numpy(), "unparseable_date")
    tolerance = pd.Timedelta(days=settings.future_tolerance_days)
    flag((occurred > now + tolerance).fillna(False).to_numpy(), "future_timestamp")

    lookup = category_lookup(settings.categories)
    category = map_labels(raw["offense_code"], lookup)
    if "category" in raw.columns:
        given_present = raw["category"].notna() & (raw["category"].astype(str).str.strip() != "")
        given = map_labels(raw["category"], lookup)
        flag((given_present & given.isna()).to_numpy(), "unknown_category")
        category = given.where(given_present, category)
    flag(category.isna().to_numpy(), "unknown_offense_code")

    lon = pd.to_numeric(raw["lon"], errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(raw["lat"], errors="coerce").to_numpy(dtype=float)
    area_ids = areas["area_id"].astype(str).to_numpy()
    area_index = np.full(n, -1, dtype=np.int64)
    if "area_id" in raw.columns:
        # The city's own labels decide; a point-in-polygon join would second-guess them.
        area_index = area_label_index(raw["area_id"], area_ids)
        flag(area_index < 0, "unknown_area")
    else:
        no_coords = ~np.isfinite(lon) | ~np.isfinite(lat) | ((lon == 0) & (lat == 0))
        flag(no_coords, "missing_coordinates")
        located = reason == ""
        if located.any():
            found, outside = assign_areas(lon[located], lat[located], areas)
            area_index[located] = found
            sub = np.full(n, False)
            sub[located] = outside
            flag(sub, "outside_bbox")
        flag(area_index < 0, "outside_areas")

    unit_ids = area_ids[np.maximum(area_index, 0)]
    if settings.units.kind == "h3":
        from crimecast.data.units import cells_of_points

        located = reason == ""
        if located.any() and not np.isfinite(lon[located]).all():
            raise ContractError("units.kind is h3 but some incidents have no coordinates",
                                file="configs/data.yaml", key="units.kind",
                                hint="H3 cells need coordinates; use units.kind: tract")
        unit_ids = np.full(n, "", dtype=object)
        unit_ids[located] = cells_of_points(lat[located], lon[located],
                                            settings.units.resolution)
        if cells is not None:
            covered = pd.Index(np.asarray(cells, dtype=str))
            outside_cover = covered.get_indexer(unit_ids.astype(str)) < 0
            flag(located & outside_cover, "outside_cells")

    valid = reason == ""
    key_hash = hash_keys(keys, settings.salt)
    occurred_valid = occurred[valid].reset_index(drop=True)
    local_day = occurred_valid.dt.tz_localize(None).dt.normalize()
    codes = raw["offense_code"][valid]
    incidents = pd.DataFrame({
        "incident_id": key_hash[valid].to_numpy(),
        "occurred_at": occurred_valid,
        "week": (local_day - pd.to_timedelta(local_day.dt.dayofweek, unit="D"))
        .astype("datetime64[ns]"),
        "category": category[valid].astype(str).to_numpy(),
        # a mapped code or label (it is listed in the config), so never free text
        "offense_code": normalised_labels(codes).astype(str).to_numpy(),
        "lat": lat[valid],
        "lon": lon[valid],
        "area_id": unit_ids[valid].astype(str),
    })
    # Time order; ties keep the source's row order, so reruns give identical files.
    order = np.argsort(occurred_valid.dt.tz_convert("UTC").dt.tz_localize(None)
                       .to_numpy(dtype="datetime64[ns]").view("int64"), kind="stable")
    incidents = incidents.iloc[order].reset_index(drop=True)

    bad = ~valid
    quarantine = pd.DataFrame({
        "key_hash": key_hash[bad].where(keys[bad] != "", "").to_numpy(),
        "occurred_local": _safe_text(raw["occurred_local"][bad], _TIMESTAMP_TEXT).to_numpy(),
        "offense_code": safe_label(raw["offense_code"][bad]).to_numpy(),
        "lon": lon[bad],
        "lat": lat[bad],
        "reason": reason[bad],
        "value": _rejected_values(raw[bad], reason[bad]),
    })

    # Volume is a property of the source, so outages are judged on every dated record.
    dated = ~pd.Series(reason).isin(["missing_source_key", "duplicate_source_key",
                                     "unparseable_date", "future_timestamp"]).to_numpy()
    outages = detect_outages(daily_counts(occurred[dated].dt.tz_localize(None)), settings.quality)
    report = build_report(incidents, quarantine, n, areas, outages.as_json(),
                          settings.category_names)
    return IngestResult(incidents, quarantine, report)


def _rejected_values(bad_rows: pd.DataFrame, reasons: np.ndarray) -> np.ndarray:
    """The value each quarantined row was rejected for (see :data:`REASON_FIELD`), shown
    only when it looks like a label or a timestamp."""
    values = np.full(len(bad_rows), "", dtype=object)
    for reason_name, column in REASON_FIELD.items():
        rows = np.flatnonzero(reasons == reason_name)
        if rows.size and column in bad_rows.columns:
            part = bad_rows[column].iloc[rows]
            values[rows] = (_safe_text(part, _TIMESTAMP_TEXT) if column == "occurred_local"
                            else safe_label(part)).to_numpy()
    return values


def build_report(incidents: pd.DataFrame, quarantine: pd.DataFrame, rows_read: int,
                 areas: Any, outages: dict[str, list[str]],
                 categories: list[str] | None = None) -> dict[str, Any]:
    """The ingest_report.json payload: counts per reason, category (every configured
    category, zeros included: ``empty_categories`` lists those without incidents), year;
    samples of the rejected values per reason; outages."""
    by_reason = quarantine["reason"].value_counts()
    years = incidents["occurred_at"].dt.year
    present = incidents["category"].value_counts()
    categories = categories or sorted(present.index)
    return {
        "rows_read": int(rows_read),
        "rows_valid": len(incidents),
        "rows_quarantined": len(quarantine),
        "quarantine_by_reason": {r: int(by_reason.get(r, 0)) for r in REASONS},
        "quarantine_samples": quarantine_samples(quarantine),
        "categories": list(categories),
        "incidents_by_category": {c: int(present.get(c, 0)) for c in categories},
        "empty_categories": [c for c in categories if int(present.get(c, 0)) == 0],
        "incidents_by_year": {str(y): int(v) for y, v in years.value_counts().sort_index().items()},
        "first_day": _day(incidents["occurred_at"].min()),
        "last_day": _day(incidents["occurred_at"].max()),
        "areas": len(areas),
        "areas_with_incidents": int(incidents["area_id"].nunique()),
        **outages,
    }


def quarantine_samples(quarantine: pd.DataFrame, per_reason: int = 5) -> dict[str, list[str]]:
    """The most frequent rejected values of each reason (already redacted where needed)."""
    samples: dict[str, list[str]] = {}
    shown = quarantine[quarantine["value"] != ""]
    for reason_name, part in shown.groupby("reason", sort=True):
        samples[str(reason_name)] = [str(v) for v in
                                     part["value"].value_counts().index[:per_reason]]
    return samples


def _day(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).date().isoformat()


def write_quarantine(target: Path, quarantine: pd.DataFrame) -> Path:
    """Gzip CSV with mtime=0, so equal content gives equal bytes (stable DVC hashes)."""
    return write_gzip(target, quarantine.to_csv(index=False).encode())


# The configs/data.yaml key to look at first for each reason, by source (csv keys name the
# column mapping; the built-in sources fix their columns, so their keys are the rules).
REASON_KEYS: dict[str, tuple[str, str]] = {
    "missing_source_key": ("csv.columns.source_key", "source"),
    "duplicate_source_key": ("csv.columns.source_key", "source"),
    "unparseable_date": ("csv.columns.occurred_local", "source"),
    "future_timestamp": ("csv.timestamps", "future_tolerance_days"),
    "unknown_category": ("categories", "categories"),
    "unknown_offense_code": ("categories", "categories"),
    "missing_coordinates": ("csv.columns.lon", "source"),
    "outside_bbox": ("csv.columns.lon", "source"),
    "outside_areas": ("csv.areas", "source"),
    "unknown_area": ("csv.columns.area_id", "csv.columns.area_id"),
    "outside_cells": ("units.resolution", "units.resolution"),
}
_REASON_HINTS: dict[str, str] = {
    "unknown_category": "list these labels under a category in 'categories' "
                        "(`crimecast city init` lists every label found)",
    "unknown_offense_code": "list these codes or labels under a category in 'categories' "
                            "(`crimecast city init` lists every label found), or point "
                            "csv.columns.offense_code at the column that holds them",
    "unparseable_date": "point csv.columns.occurred_local at the timestamp column "
                        "(ISO 8601, e.g. 2024-01-31 22:15:00)",
    "future_timestamp": "set csv.timestamps (local or utc) and timezone to what the file uses",
    "missing_coordinates": "point csv.columns.lon / csv.columns.lat at the coordinate columns, "
                           "or set csv.columns.area_id to the incidents' own area column",
    "outside_bbox": "check that csv.columns.lon and csv.columns.lat are not swapped and that "
                    "csv.areas is the same city",
    "outside_areas": "check that csv.areas covers the incidents (same city, EPSG:4326)",
    "unknown_area": "make csv.columns.area_id hold the same labels as "
                    "csv.area_columns.area_id of the areas file",
    "outside_cells": "the H3 cover misses these points; check units.resolution and "
                     "that the areas are in EPSG:4326",
    "missing_source_key": "point csv.columns.source_key at the record-id column",
    "duplicate_source_key": "point csv.columns.source_key at a column that is unique per record",
}


class QuarantineError(ContractError):
    """More rows were quarantined than ``max_quarantine_share`` allows."""


def quarantine_problem(report: dict[str, Any], settings: DataSettings) -> QuarantineError | None:
    """The error to raise when more than ``max_quarantine_share`` of the rows were
    quarantined (None otherwise): one line with the top reasons, their sample values and
    the config key to change first."""
    read, quarantined = report["rows_read"], report["rows_quarantined"]
    share = quarantined / read if read else 0.0
    if read and share <= settings.max_quarantine_share:
        return None
    top = sorted(((n, r) for r, n in report["quarantine_by_reason"].items() if n),
                 reverse=True)[:3]
    samples = report.get("quarantine_samples", {})
    parts = []
    for count, reason_name in top:
        shown = samples.get(reason_name, [])
        example = f" (e.g. {', '.join(repr(v) for v in shown[:4])})" if shown else ""
        parts.append(f"{reason_name} {count:,}{example}")
    csv_key, other_key = REASON_KEYS.get(top[0][1], ("source", "source")) if top else ("source",) * 2
    key = csv_key if settings.source == "csv" else other_key
    hint = _REASON_HINTS.get(top[0][1], "check the source files") if top else "check the source"
    if not read:
        return QuarantineError("the incidents file has no rows", file="configs/data.yaml",
                               key="csv.incidents" if settings.source == "csv" else "source",
                               hint="point it at the city's incidents file")
    return QuarantineError(
        f"{quarantined:,} of {read:,} incidents quarantined ({share:.0%}, more than "
        f"max_quarantine_share {settings.max_quarantine_share:.0%}): {'; '.join(parts)}",
        file="configs/data.yaml", key=key,
        hint=f"{hint}; or raise max_quarantine_share if this share is expected")


def run_ingest(settings: DataSettings | None = None, source: Source | None = None,
               now: pd.Timestamp | None = None, write: bool = True,
               check: bool = True) -> IngestResult:
    """Read the configured source's raw snapshot, clean it and (if ``write``) write the
    three ingest outputs. Nothing is written unless every step succeeded; with ``check``
    a mass quarantine (:func:`quarantine_problem`) raises :class:`QuarantineError` first."""
    settings = settings or DataSettings.load()
    source = source or get_source(settings)
    raw_dir = settings.raw_path()
    if not raw_dir.exists():
        raise ContractError(f"{raw_dir}: raw snapshot folder missing; run `crimecast data fetch`")
    raw = source.read_incidents(raw_dir)
    areas = source_areas(settings, source, raw_dir)  # centroids get the areas stage's cells
    require_columns(areas, ["area_id", "geometry"], f"{raw_dir} (areas of source {settings.source!r})")
    cells = None
    if settings.units.kind == "h3":  # the same cover of the city as the areas stage's
        from crimecast.data.units import h3_cover

        city = areas.geometry.set_crs("EPSG:4326", allow_override=True).union_all()
        cells = h3_cover(city, settings.units.resolution)["area_id"].to_numpy(dtype=str)
    result = clean_incidents(raw, areas, settings, now=now, file=source.incidents_file(raw_dir),
                             cells=cells)
    result.report["unit"] = settings.units.tag
    result.report = {"source": settings.source, **result.report}
    problem = quarantine_problem(result.report, settings) if check else None
    if problem is not None:
        raise problem
    if write:
        write_outputs(result)
    return result


def write_outputs(result: IngestResult) -> list[Path]:
    """Write quarantine, report, then incidents (each atomically); return the paths."""
    return [
        write_quarantine(ARTIFACTS.quarantine, result.quarantine),
        write_json(ARTIFACTS.ingest_report, result.report),
        write_parquet(ARTIFACTS.incidents, result.incidents),
    ]
