"""Stage ``panel``: artifacts/incidents.parquet → artifacts/panel.parquet.

Counts per (area, week, category) over the full weeks of the data, zero rows included,
in areas.parquet order; weeks listed in ingest_report.json ``outage_weeks`` are flagged.

    python -m training.panel
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from crimecast.contracts import ARTIFACTS, ContractError
from crimecast.data.panel import build_panel

READS: tuple[str, ...] = ("incidents", "areas", "ingest_report")
WRITES: tuple[str, ...] = ("panel",)
from crimecast.errors import run_main
from crimecast.io import write_parquet


def run() -> pd.DataFrame:
    """Build and write panel.parquet; return it."""
    for path in (ARTIFACTS.incidents, ARTIFACTS.areas, ARTIFACTS.ingest_report):
        if not path.exists():
            raise ContractError(f"{path}: missing; run the ingest and areas stages first")
    incidents = pd.read_parquet(ARTIFACTS.incidents,
                                columns=["area_id", "week", "category", "occurred_at"])
    area_ids = pd.read_parquet(ARTIFACTS.areas, columns=["area_id"])["area_id"].astype(str)
    report = json.loads(ARTIFACTS.ingest_report.read_text())
    outage_weeks = report.get("outage_weeks", [])
    if not isinstance(outage_weeks, list):
        raise ContractError(f"{ARTIFACTS.ingest_report}: key 'outage_weeks' must be a list "
                            f"of ISO dates; got {type(outage_weeks).__name__}")
    panel = build_panel(incidents, area_ids, outage_weeks=outage_weeks)
    write_parquet(ARTIFACTS.panel, panel)
    return panel


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    panel = run()
    weeks = panel["week"]
    print(f"panel: {panel['area_id'].nunique()} areas × {weeks.nunique()} weeks "
          f"({weeks.min():%Y-%m-%d} … {weeks.max():%Y-%m-%d}) × {panel['category'].nunique()} "
          f"categories = {len(panel)} rows, {int(panel['count'].sum())} incidents, "
          f"{panel.loc[panel['outage'], 'week'].nunique()} outage week(s)")
    print(f"wrote {ARTIFACTS.panel}")


if __name__ == "__main__":
    run_main(main)
