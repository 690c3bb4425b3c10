"""Derive the compact Philadelphia snapshot committed under ``snapshot/philadelphia/``.

Input: the curated source folder (default ``../shared/data/philadelphia`` beside the repository, see its
PROVENANCE.md). Output (deterministic, so reruns give identical bytes):

- ``incidents.parquet`` (zstd): ``objectid`` (int64, the city's record id), ``dispatch_date``
  and ``dispatch_time`` (local wall-clock text), ``ucr_general`` (int, UCR hundreds code),
  ``text_general_code`` (the city's 32 offense labels), ``point_x`` (lon), ``point_y`` (lat).
  Dropped: ``location_block`` (street address), ``dc_key`` (case number), ``psa``/``dc_dist``,
  the UTC ``dispatch_date_time``, ``hour`` and ``cartodb_id``.
- ``tracts.geojson.gz``: the 408 TIGER 2023 (2020-vintage) tract polygons, unchanged.
- ``demographics.csv.gz``: ACS 2018-2022 tract demographics, unchanged values.
- ``MANIFEST.json``: size and md5 of each file, rows, date range.

Usage: ``python scripts/derive_philadelphia.py [--source DIR] [--out DIR]``.
The project never needs the source folder at run time: ``crimecast data fetch`` copies the
committed snapshot into ``data/``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from crimecast.data.sources.philadelphia import INCIDENT_SCHEMA, write_incident_table
from crimecast.io import atomic_path, write_gzip

INCIDENTS_FILE = "phl_incidents_part1_part2_2016_2025.csv.gz"
TRACTS_FILE = "phl_census_tracts_2020_tiger2023.geojson"
DEMOGRAPHICS_FILE = "phl_tract_demographics_acs5_2022.csv.gz"

KEPT_COLUMNS: dict[str, pa.DataType] = {field.name: field.type for field in INCIDENT_SCHEMA}


def read_incidents(path: Path) -> pa.Table:
    """The kept columns of the incidents CSV, in file order."""
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(include_columns=list(KEPT_COLUMNS),
                                             column_types=KEPT_COLUMNS),
    )
    missing = [c for c in KEPT_COLUMNS if c not in table.column_names]
    if missing:
        raise SystemExit(f"{path}: missing column(s) {missing}")
    return table.select(list(KEPT_COLUMNS))


def describe(path: Path) -> dict[str, object]:
    return {"bytes": path.stat().st_size, "md5": hashlib.md5(path.read_bytes()).hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    repo = Path(__file__).resolve().parents[1]
    parser.add_argument("--source", type=Path, default=repo.parent / "shared" / "data" / "philadelphia",
                        help="the curated source folder (with PROVENANCE.md)")
    parser.add_argument("--out", type=Path, default=repo / "snapshot" / "philadelphia")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    table = read_incidents(args.source / INCIDENTS_FILE)
    write_incident_table(table, args.out / "incidents.parquet")
    write_gzip(args.out / "tracts.geojson.gz", (args.source / TRACTS_FILE).read_bytes())
    write_gzip(args.out / "demographics.csv.gz",
               gzip.decompress((args.source / DEMOGRAPHICS_FILE).read_bytes()))
    elapsed = time.perf_counter() - started

    dates = table.column("dispatch_date")
    files = {name: describe(args.out / name)
             for name in ("incidents.parquet", "tracts.geojson.gz", "demographics.csv.gz")}
    manifest = {
        "source": str(args.source),
        "rows": table.num_rows,
        "first_date": str(pc.min(dates)),
        "last_date": str(pc.max(dates)),
        "files": files,
    }
    with atomic_path(args.out / "MANIFEST.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    total_mb = sum(f["bytes"] for f in files.values()) / 1e6
    print(f"wrote {args.out}/ ({table.num_rows:,} incidents, {total_mb:.1f} MB) "
          f"in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
