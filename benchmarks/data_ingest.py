"""Benchmark of the data part on the real Philadelphia snapshot (1.54 M incidents).

Measures, in a temporary project home (the developer's artifacts are not touched):
snapshot derivation time and size (when the curated source folder is present), fetch,
the full ingest (read + validate + point-in-polygon + hashing + outage detection + write),
the point-in-polygon join alone, the areas stage, and a privacy scan of the outputs.
Writes ``benchmarks/results/data_ingest.json``.

Usage: ``python benchmarks/data_ingest.py [--source ../shared/data/philadelphia]``
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "philadelphia",
                        help="curated source folder (derivation is timed only when it exists)")
    args = parser.parse_args()
    results: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "configs").mkdir()
        (home / "configs" / "data.yaml").write_text((REPO / "configs" / "data.yaml").read_text())
        os.environ["CRIMECAST_HOME"] = str(home)
        os.environ["CRIMECAST_DATA__SOURCE"] = "philadelphia"
        os.environ["CRIMECAST_DATA__PHILADELPHIA__SNAPSHOT_DIR"] = str(REPO / "snapshot" / "philadelphia")

        if args.source.exists():
            started = time.perf_counter()
            subprocess.run([sys.executable, str(REPO / "scripts" / "derive_philadelphia.py"),
                            "--source", str(args.source), "--out", str(home / "derived")],
                           check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
            results["derive_seconds"] = round(time.perf_counter() - started, 2)
            derived = {p.name: p.read_bytes() for p in (home / "derived").iterdir()}
            committed = {p.name: p.read_bytes() for p in (REPO / "snapshot" / "philadelphia").iterdir()
                         if p.name in derived and p.suffix != ".json"}
            results["derive_reproduces_committed_snapshot"] = all(
                derived[name] == content for name, content in committed.items())
        snapshot = REPO / "snapshot" / "philadelphia"
        results["snapshot_mb"] = round(sum(p.stat().st_size for p in snapshot.iterdir()) / 1e6, 2)

        from crimecast.data.areas import run_areas
        from crimecast.data.ingest import assign_areas, run_ingest
        from crimecast.data.privacy import scan_for_leaks
        from crimecast.data.sources import DataSettings, get_source

        settings = DataSettings.load()
        source = get_source(settings)
        started = time.perf_counter()
        source.fetch(settings.raw_path())
        results["fetch_seconds"] = round(time.perf_counter() - started, 2)

        started = time.perf_counter()
        report = run_ingest(settings, source).report
        results["ingest_seconds"] = round(time.perf_counter() - started, 2)
        results["rows_read"] = report["rows_read"]
        results["rows_valid"] = report["rows_valid"]
        results["quarantine_by_reason"] = report["quarantine_by_reason"]
        results["outage_weeks"] = report["outage_weeks"]

        raw = source.read_incidents(settings.raw_path())
        located = raw.dropna(subset=["lon", "lat"])
        areas = source.read_areas(settings.raw_path())
        started = time.perf_counter()
        assign_areas(located["lon"].to_numpy(), located["lat"].to_numpy(), areas)
        results["point_in_polygon_seconds"] = round(time.perf_counter() - started, 2)
        results["point_in_polygon_points"] = len(located)

        started = time.perf_counter()
        run_areas(settings, source)
        results["areas_seconds"] = round(time.perf_counter() - started, 2)

        keys = set(raw["source_key"])
        started = time.perf_counter()
        findings = scan_for_leaks([home / "artifacts"], source_keys=keys)
        results["privacy_scan_seconds"] = round(time.perf_counter() - started, 2)
        results["privacy_findings"] = len(findings)

    load = os.getloadavg()
    results["load_average_1m_at_end"] = round(load[0], 2)
    target = REPO / "benchmarks" / "results" / "data_ingest.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO))
    from crimecast.io import write_json

    write_json(target, results)
    for key, value in results.items():
        print(f"{key}: {value}")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
