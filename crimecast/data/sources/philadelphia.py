"""Philadelphia: City of Philadelphia crime incidents (OpenDataPhilly ``incidents_part1_part2``),
the 408 census tracts of 2020 (TIGER 2023) and ACS 2018-2022 tract demographics.

The compact snapshot committed under ``snapshot/philadelphia/`` (made by
``scripts/derive_philadelphia.py``) is the embedded default: ``fetch`` copies it byte for
byte into ``data/``. :func:`refresh` appends newer incidents from the city's open-data SQL
API (CARTO) to ``data/incidents.parquet``.

Raw files in ``data/``: ``incidents.parquet`` (:data:`INCIDENT_SCHEMA`),
``tracts.geojson.gz`` (GEOID, ALAND, polygons), ``demographics.csv.gz`` (ACS columns).
Weeks are binned on the local ``dispatch_date``/``dispatch_time``, never on the UTC
``dispatch_date_time``; ``point_x``/``point_y`` are longitude/latitude.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from crimecast.contracts import ContractError
from crimecast.data.settings import DataSettings
from crimecast.data.sources.base import Source, require_columns
from crimecast.io import atomic_path
from crimecast.paths import resolve

INCIDENTS = "incidents.parquet"
TRACTS = "tracts.geojson.gz"
DEMOGRAPHICS = "demographics.csv.gz"
SNAPSHOT_FILES: tuple[str, ...] = (INCIDENTS, TRACTS, DEMOGRAPHICS)

# The only incident columns kept: no address (location_block), case number (dc_key),
# district/PSA or UTC time ever enter the project.
INCIDENT_SCHEMA = pa.schema([
    ("objectid", pa.int64()),
    ("dispatch_date", pa.string()),
    ("dispatch_time", pa.string()),
    ("ucr_general", pa.int32()),
    ("text_general_code", pa.string()),
    ("point_x", pa.float64()),
    ("point_y", pa.float64()),
])
INCIDENT_COLUMNS: tuple[str, ...] = tuple(INCIDENT_SCHEMA.names)
# Census "not available" sentinel for median income.
CENSUS_NA = -666666666
# ucr_general stored for a code the API sent that is not a number; ingest quarantines it.
UNKNOWN_CODE = -1

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def write_incident_table(table: pa.Table, target: Path) -> Path:
    """Write incidents (:data:`INCIDENT_SCHEMA`) as zstd parquet, atomically; the same
    table always gives the same bytes."""
    table = table.select(list(INCIDENT_COLUMNS)).cast(INCIDENT_SCHEMA)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd", compression_level=9,
                       use_dictionary=["dispatch_date", "dispatch_time", "text_general_code"],
                       row_group_size=256_000)
    return target


def snapshot_dir(settings: DataSettings) -> Path:
    """The committed snapshot: from the project home, else from the installed repository."""
    configured = Path(settings.philadelphia.snapshot_dir)
    candidates = [resolve(configured)]
    if not configured.is_absolute():
        candidates.append(Path(__file__).resolve().parents[2] / configured)
    for candidate in candidates:
        if all((candidate / name).exists() for name in SNAPSHOT_FILES):
            return candidate
    raise ContractError(
        f"Philadelphia snapshot not found: looked for {list(SNAPSHOT_FILES)} in "
        f"{[str(c) for c in candidates]} (key data.philadelphia.snapshot_dir); "
        "run scripts/derive_philadelphia.py to create it")


class PhiladelphiaSource(Source):
    """The Philadelphia snapshot (see module docstring)."""

    name = "philadelphia"

    def fetch(self, raw_dir: Path) -> list[Path]:
        source = snapshot_dir(self.settings)
        raw_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in SNAPSHOT_FILES:
            with atomic_path(raw_dir / name) as tmp:
                shutil.copyfile(source / name, tmp)
            written.append(raw_dir / name)
        return written

    def incidents_file(self, raw_dir: Path) -> Path:
        return raw_dir / INCIDENTS

    def read_incidents(self, raw_dir: Path) -> pd.DataFrame:
        path = _existing(raw_dir / INCIDENTS)
        table = pq.read_table(path)
        required = [c for c in INCIDENT_COLUMNS if c != "text_general_code"]
        require_columns(pd.DataFrame(columns=table.column_names), required, path)
        frame = table.select(required).to_pandas()
        return pd.DataFrame({
            "source_key": frame["objectid"].astype(str),
            "occurred_local": frame["dispatch_date"].astype(str) + " "
            + frame["dispatch_time"].astype(str),
            "offense_code": frame["ucr_general"],
            "lon": frame["point_x"].astype(float),
            "lat": frame["point_y"].astype(float),
        })

    def read_areas(self, raw_dir: Path) -> Any:
        import geopandas as gpd

        path = _existing(raw_dir / TRACTS)
        areas = gpd.read_file(io.BytesIO(gzip.decompress(path.read_bytes())))
        require_columns(areas, ["GEOID", "ALAND"], path)
        areas = areas.set_crs("EPSG:4326", allow_override=True)
        return gpd.GeoDataFrame({
            "area_id": areas["GEOID"].astype(str),
            "aland_m2": pd.to_numeric(areas["ALAND"], errors="coerce").astype(float),
        }, geometry=areas.geometry.values, crs="EPSG:4326")

    def read_demographics(self, raw_dir: Path) -> pd.DataFrame:
        path = _existing(raw_dir / DEMOGRAPHICS)
        raw = pd.read_csv(path, dtype={"GEOID": str})
        columns = {"GEOID": "area_id", "total_population": "population",
                   "pct_black": "pct_black", "pct_white": "pct_white", "pct_asian": "pct_asian",
                   "pct_hispanic": "pct_hispanic", "median_household_income": "median_income",
                   "pct_poverty": "pct_poverty"}
        require_columns(raw, list(columns), path)
        frame = raw[list(columns)].rename(columns=columns)
        numeric = [c for c in frame.columns if c != "area_id"]
        frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
        frame = frame.replace({float(CENSUS_NA): np.nan})
        # Tracts without residents have no shares: zero population means "unknown" here.
        empty = frame["population"].fillna(0) <= 0
        frame.loc[empty, ["pct_black", "pct_white", "pct_asian", "pct_hispanic"]] = np.nan
        return frame


def _existing(path: Path) -> Path:
    if not path.exists():
        raise ContractError(f"{path}: raw file missing; run `crimecast data fetch` first")
    return path


# --- refresh from the city's open-data SQL API -------------------------------------------


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh did to ``data/incidents.parquet``."""

    received: int  # rows in the API response
    added: int  # new source keys
    updated: int  # existing source keys replaced by the API's newer version
    rejected: int  # rows without a usable objectid (cannot be deduplicated)
    total: int  # rows in the raw snapshot afterwards
    path: Path


def refresh_query(table: str, since: date) -> str:
    """CARTO SQL for incidents dispatched on or after ``since`` (a date, so no injection)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", table):
        raise ContractError(f"data.philadelphia.api_table: {table!r} is not a table name")
    columns = ", ".join(INCIDENT_COLUMNS)
    return (f"SELECT {columns} FROM {table} WHERE dispatch_date >= '{since.isoformat()}' "
            "ORDER BY objectid")


def normalise_api_csv(text: str, origin: str = "API response") -> tuple[pd.DataFrame, int]:
    """Parse the API's CSV into the snapshot's columns; returns (frame, rejected rows).

    Anything beyond :data:`INCIDENT_COLUMNS` (addresses, case numbers) is dropped here, even
    if the server sends it. Dates/times are trimmed to ``YYYY-MM-DD`` / ``HH:MM:SS`` text
    when they parse as such and kept verbatim otherwise (ingest quarantines them).
    """
    raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    require_columns(raw, [c for c in INCIDENT_COLUMNS if c != "text_general_code"], origin)
    objectid = pd.to_numeric(raw["objectid"].str.strip(), errors="coerce")
    usable = objectid.notna() & (objectid == objectid.round())
    raw, objectid = raw[usable], objectid[usable]
    dates = raw["dispatch_date"].str.strip()
    dates = dates.where(~dates.str.match(_DATE), dates.str[:10])
    times = raw["dispatch_time"].str.strip()
    parts = times.str.extract(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?")
    times = times.where(parts[0].isna(),
                        parts[0].str.zfill(2) + ":" + parts[1] + ":" + parts[2].fillna("00"))
    code = pd.to_numeric(raw["ucr_general"].str.strip(), errors="coerce")
    frame = pd.DataFrame({
        "objectid": objectid.astype("int64").to_numpy(),
        "dispatch_date": dates.to_numpy(),
        "dispatch_time": times.to_numpy(),
        "ucr_general": code.fillna(UNKNOWN_CODE).astype("int32").to_numpy(),
        "text_general_code": (raw["text_general_code"] if "text_general_code" in raw
                              else pd.Series("", index=raw.index)).to_numpy(),
        "point_x": pd.to_numeric(raw["point_x"], errors="coerce").to_numpy(),
        "point_y": pd.to_numeric(raw["point_y"], errors="coerce").to_numpy(),
    })
    return frame, int((~usable).sum())


def merge_incidents(existing: pd.DataFrame, new: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Existing rows plus new ones, one row per ``objectid`` (the API's version wins: the
    city revises records). Returns (merged, added, updated)."""
    new = new.drop_duplicates("objectid", keep="last")
    seen = existing["objectid"].isin(new["objectid"])
    updated = int(seen.sum())
    merged = pd.concat([existing[~seen], new], ignore_index=True)
    return merged, len(new) - updated, updated


def download_csv(url: str, query: str, timeout_s: float) -> str:
    """GET ``url?q=<query>&format=csv`` with a byte progress bar; the response text."""
    import httpx
    from tqdm import tqdm

    chunks: list[bytes] = []
    with httpx.stream("GET", url, params={"q": query, "format": "csv"}, timeout=timeout_s,
                      follow_redirects=True) as response:
        if response.status_code != 200:
            body = response.read().decode("utf-8", "replace")[:300]
            raise ContractError(f"{url}: HTTP {response.status_code}: {body}")
        total = int(response.headers.get("content-length", 0)) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="download", leave=False) as bar:
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                bar.update(len(chunk))
    return b"".join(chunks).decode("utf-8")


def refresh(settings: DataSettings, since: date, raw_dir: Path | None = None) -> RefreshResult:
    """Append incidents dispatched on or after ``since`` from the city's SQL API to
    ``raw_dir/incidents.parquet`` (deduplicated on objectid, written atomically)."""
    raw_dir = raw_dir or settings.raw_path()
    target = _existing(raw_dir / INCIDENTS)
    philly = settings.philadelphia
    text = download_csv(philly.api_url, refresh_query(philly.api_table, since), philly.api_timeout_s)
    new, rejected = normalise_api_csv(text, origin=philly.api_url)
    existing = pq.read_table(target).to_pandas()
    merged, added, updated = merge_incidents(existing, new)
    write_incident_table(pa.Table.from_pandas(merged, preserve_index=False), target)
    return RefreshResult(received=len(new) + rejected, added=added, updated=updated,
                         rejected=rejected, total=len(merged), path=target)
