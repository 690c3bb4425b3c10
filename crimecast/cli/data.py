"""``crimecast data ...``: materialise, refresh, validate, summarise and privacy-scan data."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Raw data: fetch the configured city, refresh it from the open-data "
                  "API, validate it, summarise it, scan outputs for privacy leaks.",
                  no_args_is_help=True)


def _console() -> Any:
    from rich.console import Console

    return Console()


def _settings() -> Any:
    from crimecast.data.settings import DataSettings

    return DataSettings.load()


@app.command()
def fetch(
    dvc: bool = typer.Option(True, help="Run `dvc add` on the raw folder when a DVC repo exists."),
) -> None:
    """Materialise the configured source (configs/data.yaml `source`) into the raw folder
    (data/), byte-identically for the same input, and track it with DVC."""
    from crimecast.data.sources import get_source
    from crimecast.paths import project_home

    settings = _settings()
    raw_dir = settings.raw_path()
    console = _console()
    with console.status(f"fetching source '{settings.source}' into {raw_dir} ..."):
        written = get_source(settings).fetch(raw_dir)
    for path in written:
        console.print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    home = project_home()
    if dvc and (home / ".dvc").is_dir():
        if shutil.which(_dvc()) is None:
            console.print("[yellow]dvc not found; skipped `dvc add`[/]")
            return
        target = raw_dir.relative_to(home) if raw_dir.is_relative_to(home) else raw_dir
        command = [_dvc(), "add", str(target)]
        console.print(f"running {' '.join(command)}")
        subprocess.run(command, cwd=home, check=True)
        console.print(f"tracked {target} in {target}.dvc")


def _dvc() -> str:
    """The dvc next to this Python (the project's virtualenv), else the one on PATH."""
    import sys

    local = Path(sys.executable).parent / "dvc"
    return str(local) if local.exists() else "dvc"


@app.command()
def refresh(
    since: str = typer.Option(..., help="First local dispatch date to download (YYYY-MM-DD)."),
) -> None:
    """Download incidents dispatched on or after SINCE from the city's open-data SQL API
    (configs/data.yaml `philadelphia.api_url`), drop addresses and free text, and merge
    them into data/incidents.parquet (deduplicated on the record id). Rerun the pipeline
    (`dvc repro`) afterwards."""
    from crimecast.data.sources.philadelphia import refresh as refresh_incidents

    settings = _settings()
    if settings.source != "philadelphia":
        raise typer.BadParameter(f"refresh needs source 'philadelphia' (configs/data.yaml has "
                                 f"{settings.source!r})")
    try:
        first = date.fromisoformat(since)
    except ValueError:
        raise typer.BadParameter(f"--since {since!r} is not a date YYYY-MM-DD") from None
    console = _console()
    console.print(f"querying {settings.philadelphia.api_url} "
                  f"({settings.philadelphia.api_table}, dispatch_date >= {first})")
    result = refresh_incidents(settings, first)
    console.print(f"received {result.received:,} rows: {result.added:,} new, "
                  f"{result.updated:,} updated, {result.rejected:,} without a record id")
    console.print(f"wrote {result.path} ({result.total:,} incidents); now run `dvc repro`")


def _reason_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    from crimecast.data.ingest import REASONS

    table = Table(title="quarantined rows by reason")
    table.add_column("reason")
    table.add_column("rows", justify="right")
    table.add_column("most frequent values")
    counts = report["quarantine_by_reason"]
    samples = report.get("quarantine_samples", {})
    for reason in sorted(counts, key=lambda r: REASONS.index(r) if r in REASONS else len(REASONS)):
        table.add_row(reason, f"{counts[reason]:,}", ", ".join(samples.get(reason, [])[:5]))
    table.add_row("[bold]kept[/]", f"[bold]{report['rows_valid']:,}[/]", "")
    return table


@app.command()
def validate() -> None:
    """Run ingest validation on the raw folder without writing anything: prints rows kept,
    quarantined rows per reason with sample values, incidents per category, and outage
    days/weeks. Exits 2 when more than `max_quarantine_share` of the rows is quarantined."""
    from crimecast.data.ingest import quarantine_problem, run_ingest

    console = _console()
    settings = _settings()
    with console.status(f"validating {settings.raw_path()} ({settings.source}) ..."):
        report = run_ingest(settings, write=False, check=False).report
    console.print(_reason_table(report))
    console.print("incidents by category: " + ", ".join(
        f"{c} {n:,}" for c, n in report["incidents_by_category"].items()))
    for category in report.get("empty_categories", []):
        console.print(f"[yellow]warning: category '{category}' has no incidents; the panel "
                      "drops it (configs/data.yaml key 'categories')[/]")
    console.print(f"outage days: {', '.join(report['outage_days']) or 'none'}")
    console.print(f"outage weeks: {', '.join(report['outage_weeks']) or 'none'}")
    console.print("nothing written (use `python -m training.ingest` or `dvc repro`)")
    problem = quarantine_problem(report, settings)
    if problem is not None:
        raise problem


@app.command()
def summary() -> None:
    """Summarise the built data: incidents per year and category, areas, graph edges, panel
    weeks, quarantined rows by reason, outage days and weeks."""
    import numpy as np
    import pandas as pd
    from rich.table import Table

    from crimecast.contracts import ARTIFACTS

    console = _console()
    settings = _settings()
    if not ARTIFACTS.incidents.exists():
        console.print(f"{ARTIFACTS.incidents} not built yet: run `crimecast data fetch` and "
                      "`dvc repro` (or `python -m training.ingest`)")
        raise typer.Exit(1)
    incidents = pd.read_parquet(ARTIFACTS.incidents, columns=["occurred_at", "category", "area_id"])
    by_year = pd.crosstab(incidents["occurred_at"].dt.year, incidents["category"], margins=True,
                          margins_name="total")
    table = Table(title=f"incidents per year and category ({ARTIFACTS.incidents})")
    table.add_column("year")
    for column in by_year.columns:
        table.add_column(str(column), justify="right")
    for year, row in by_year.iterrows():
        table.add_row(str(year), *(f"{int(v):,}" for v in row))
    console.print(table)

    facts = Table(title="data at a glance", show_header=False)
    facts.add_row("areas with incidents", f"{incidents['area_id'].nunique():,}")
    if ARTIFACTS.areas.exists():
        import geopandas as gpd

        areas = gpd.read_parquet(ARTIFACTS.areas)
        facts.add_row(f"areas ({settings.area_label}s of {settings.city.name})",
                      f"{len(areas):,}")
        facts.add_row("groups", ", ".join(f"{k} {v}" for k, v in
                                          areas["group"].value_counts().items()))
    else:
        facts.add_row("areas", "areas.parquet not built")
    if ARTIFACTS.graph.exists():
        edge_index = np.load(ARTIFACTS.graph)["edge_index"]
        facts.add_row("graph edges", f"{edge_index.shape[1]:,} directed "
                      f"({edge_index.shape[1] // 2:,} undirected)")
    else:
        facts.add_row("graph edges", "graph.npz not built")
    if ARTIFACTS.panel.exists():
        weeks = pd.read_parquet(ARTIFACTS.panel, columns=["week"])["week"]
        facts.add_row("panel weeks", f"{weeks.nunique():,} ({weeks.min():%Y-%m-%d} to "
                      f"{weeks.max():%Y-%m-%d})")
    else:
        facts.add_row("panel weeks", "panel.parquet not built")
    console.print(facts)
    if ARTIFACTS.ingest_report.exists():
        report = json.loads(ARTIFACTS.ingest_report.read_text())
        console.print(_reason_table(report))
        console.print(f"outage days: {', '.join(report.get('outage_days', [])) or 'none'}")
        console.print(f"outage weeks: {', '.join(report.get('outage_weeks', [])) or 'none'}")


@app.command()
def scan(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Files or folders (default: artifacts/ and reports/).")] = None,
    keys: Annotated[bool, typer.Option(
        help="Also look for the raw snapshot's record ids.")] = True,
) -> None:
    """Scan files for privacy leaks: street addresses, raw record ids and API-key-like
    secrets (text, CSV, JSON, HTML and parquet). Exits 1 when anything is found."""
    from crimecast.data.privacy import scan_for_leaks
    from crimecast.data.sources import get_source
    from crimecast.paths import resolve

    console = _console()
    targets = paths or [p for p in (resolve("artifacts"), resolve("reports")) if p.exists()]
    source_keys: set[str] = set()
    settings = _settings()
    if keys and settings.raw_path().exists():
        with console.status("reading raw record ids ..."):
            source_keys = set(get_source(settings).read_incidents(settings.raw_path())["source_key"]
                              .astype(str))
    with console.status(f"scanning {', '.join(map(str, targets))} ..."):
        findings = scan_for_leaks(targets, source_keys=source_keys)
    for finding in findings:
        console.print(f"[red]{finding}[/]")
    console.print(f"{len(findings)} finding(s) in {', '.join(map(str, targets))} "
                  f"({datetime.now():%Y-%m-%d %H:%M})")
    if findings:
        raise typer.Exit(1)
