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
    treated: Annotated[Path, typer.Option(
        "--treated", help="CSV with an area_id column: the treated areas.")],
    start: Annotated[str, typer.Option(
        "--start", help="Monday of the first treated week (YYYY-MM-DD).")],
    weeks: Annotated[int, typer.Option("--weeks", min=1, help="Number of treated weeks.")],
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
    from crimecast.paths import resolve
    from monitoring.impact import run_impact, treated_from_file, write_impact
    from monitoring.settings import MonitoringSettings

    settings = MonitoringSettings.load().impact
    panel, graph = Panel.load(), AreaGraph.load()
    ids = treated_from_file(treated, graph.area_ids)
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
