"""Stage ``panel``: artifacts/incidents.parquet → artifacts/panel.parquet.

Counts per (area, week, category) over the full weeks of the data, zero rows included,
in areas.parquet order; weeks listed in ingest_report.json ``outage_weeks`` are flagged.
Categories are the city's configured ones (``categories`` in configs/data.yaml, as the
ingest report lists them); a category without a single incident is dropped with a
warning, since all-zero series would dilute every overall metric.

Before anything expensive runs, the history is checked against the evaluation windows
(configs/evaluation.yaml, :meth:`EvaluationSettings.for_history`): too short stops here
with one message naming every key to change (or, with ``short_history: adapt``, one
line saying how the windows shrink). Nothing is written when it stops.

    python -m training.panel
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from crimecast.contracts import ARTIFACTS, ContractError, Panel
from crimecast.data.panel import build_panel
from crimecast.errors import run_main
from crimecast.forecast.settings import EvaluationSettings
from crimecast.io import write_parquet

READS: tuple[str, ...] = ("incidents", "areas", "ingest_report")
WRITES: tuple[str, ...] = ("panel",)


def panel_categories(report: dict, notes: list[str]) -> tuple[str, ...] | None:
    """The categories of the panel: the report's configured ones minus those without
    incidents (each noted); None for reports written before categories were listed."""
    categories = report.get("categories")
    if not categories:
        return None
    counts = report.get("incidents_by_category", {})
    empty = [c for c in categories if not counts.get(c)]
    for category in empty:
        notes.append(f"warning: category '{category}' has no incidents; dropped from the panel "
                     "(configs/data.yaml key 'categories')")
    kept = tuple(c for c in categories if c not in empty)
    if not kept:
        raise ContractError("no category has any incident", file="configs/data.yaml",
                            key="categories", hint="map the city's codes or labels to categories")
    return kept


def run(notes: list[str] | None = None) -> pd.DataFrame:
    """Build, check against the evaluation windows and write panel.parquet; return it.
    Warnings and the window note go to ``notes``."""
    notes = [] if notes is None else notes
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
    categories = panel_categories(report, notes)
    panel = build_panel(incidents, area_ids, outage_weeks=outage_weeks, categories=categories)
    _, window_note = EvaluationSettings.load().for_history(len(Panel(panel).weeks))
    if window_note:
        notes.append(window_note)
    write_parquet(ARTIFACTS.panel, panel)
    return panel


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    notes: list[str] = []
    panel = run(notes)
    for note in notes:
        print(note)
    weeks = panel["week"]
    print(f"panel: {panel['area_id'].nunique()} areas × {weeks.nunique()} weeks "
          f"({weeks.min():%Y-%m-%d} … {weeks.max():%Y-%m-%d}) × {panel['category'].nunique()} "
          f"categories = {len(panel)} rows, {int(panel['count'].sum())} incidents, "
          f"{panel.loc[panel['outage'], 'week'].nunique()} outage week(s)")
    print(f"wrote {ARTIFACTS.panel}")


if __name__ == "__main__":
    run_main(main)
