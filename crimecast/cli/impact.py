"""``crimecast impact``: did the intervention in some areas change their recorded crime?

Difference-in-differences against matched controls and the weighted displacement
difference (``crimecast.impact``), overall, by category and by group, each with a 95 % CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer()


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def _ci(ci: Any) -> str:
    return "n/a" if ci is None or None in ci else f"[{ci[0]:+.1%}, {ci[1]:+.1%}]"


@app.command()
def impact(
    treated: Annotated[Path | None, typer.Option(
        "--treated", help="CSV with an area_id column: the treated areas (default: the "
                          "areas with recorded dosage above impact.dosage_min_amount).")] = None,
    start: Annotated[str | None, typer.Option(
        "--start", help="Monday of the first treated week (YYYY-MM-DD; default with "
                        "dosage: its first week).")] = None,
    weeks: Annotated[int | None, typer.Option(
        "--weeks", min=1, help="Number of treated weeks (default with dosage: its span).")
    ] = None,
    output: Annotated[Path | None, typer.Option(
        help="Where to write the estimates (default: impact.output in "
             "configs/monitoring.yaml).")] = None,
) -> None:
    """Estimate the effect of an intervention in the treated areas on their recorded
    crime, and displacement to their neighbours, with 95 % CIs; writes impact.json (read
    by `crimecast report`)."""
    from rich.console import Console
    from rich.table import Table

    from crimecast.contracts import AreaGraph, Panel
    from crimecast.errors import CrimecastError
    from crimecast.paths import resolve
    from monitoring.dosage import current_dosage
    from monitoring.impact import (
        run_impact,
        treated_from_dosage,
        treated_from_file,
        write_impact,
    )
    from monitoring.settings import MonitoringSettings

    monitoring = MonitoringSettings.load()
    settings = monitoring.impact
    panel, graph = Panel.load(), AreaGraph.load()
    if treated is not None:
        ids = treated_from_file(treated, graph.area_ids)
    else:
        ids, first, span = treated_from_dosage(current_dosage(monitoring.predlog_url),
                                               settings.dosage_kind, settings.dosage_min_amount)
        if not ids:
            raise CrimecastError(
                f"no area has {settings.dosage_kind} dosage of at least "
                f"{settings.dosage_min_amount:g} a week recorded: no interventions recorded yet",
                file="configs/monitoring.yaml", key="impact.dosage_min_amount",
                hint="record dosage (`crimecast dosage import FILE`) or give --treated FILE")
        start = start or str(first.date())
        weeks = weeks or span
    if start is None or weeks is None:
        raise CrimecastError("--start and --weeks are needed with --treated", key="--start")
    result = run_impact(panel, graph, ids, start, weeks, settings)
    path = write_impact(result, output or resolve(settings.output))
    design = result["design"]
    table = Table(title=f"{design['treated_areas']} treated areas, {design['start_week']} to "
                        f"{design['end_week']} ({design['buffer_areas']} neighbours)")
    for column in ("subset", "DiD (matched)", "95% CI", "WDD treated", "95% CI",
                   "neighbours", "95% CI"):
        table.add_column(column)
    subsets = [("all", result["all"])]
    subsets += [(f"category {k}", v) for k, v in result["by_category"].items()]
    subsets += [(f"group {k}", v) for k, v in result["by_group"].items()]
    for name, est in subsets:
        if "skipped" in est:
            table.add_row(name, f"skipped: {est['skipped']}", "", "", "", "", "")
            continue
        did, wdd = est["did"], est["wdd"]
        table.add_row(name, _pct(did["effect"]), _ci(did["ci"]),
                      _pct(wdd["treated"]["effect"]), _ci(wdd["treated"]["ci"]),
                      _pct(wdd["buffer"]["effect"]), _ci(wdd["buffer"]["ci"]))
    console = Console()
    console.print(table)
    wdd = result["all"]["wdd"]
    console.print(f"WDD (net crimes, treated + neighbours): {wdd['wdd']:+.0f} "
                  f"[{wdd['wdd_ci'][0]:+.0f}, {wdd['wdd_ci'][1]:+.0f}]; neighbours: "
                  f"{wdd['displacement']}")
    typer.echo(f"estimates written to {path}")
