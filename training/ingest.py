"""Pipeline stage ``ingest``: raw snapshot in data/ → artifacts/incidents.parquet,
quarantine.csv.gz and ingest_report.json. Usage: ``python -m training.ingest``.

Stops (exit 2, nothing written) when more than ``max_quarantine_share`` of the rows are
quarantined, naming the top reasons, sample values and the key to fix."""

from __future__ import annotations

import argparse
import time

from crimecast.contracts import ARTIFACTS
from crimecast.data.ingest import run_ingest
from crimecast.data.settings import DataSettings
from crimecast.data.units import check_recorded_unit
from crimecast.errors import run_main

READS: tuple[str, ...] = ()  # the raw snapshot in data/ (DVC-tracked), not an artifact
WRITES: tuple[str, ...] = ("incidents", "quarantine", "ingest_report")


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    settings = DataSettings.load()
    check_recorded_unit(settings.units)
    started = time.perf_counter()
    result = run_ingest(settings)
    report = result.report
    print(f"ingest ({settings.source}): {report['rows_valid']:,} incidents kept, "
          f"{report['rows_quarantined']:,} quarantined, "
          f"{len(report['outage_weeks'])} outage week(s) in {time.perf_counter() - started:.1f} s")
    for category in report.get("empty_categories", []):
        print(f"warning: category '{category}' has no incidents (configs/data.yaml key "
              "'categories'); the panel drops it")
    for path in (ARTIFACTS.incidents, ARTIFACTS.quarantine, ARTIFACTS.ingest_report):
        print(f"  wrote {path}")


if __name__ == "__main__":
    run_main(main)
