"""``crimecast dosage import|summary``: record delivered dosage, compare it with the plan."""

from __future__ import annotations

import getpass
import uuid
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer()
dosage_app = typer.Typer(help="Interventions actually delivered: patrol minutes, outreach "
                              "contacts, programme enrolments.", no_args_is_help=True)
app.add_typer(dosage_app, name="dosage")


@dosage_app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV with week, area_id, kind, amount, source.")],
) -> None:
    """Validate a dosage CSV (every problem listed with its row and column; nothing is
    written unless all rows are valid) and append it to the dosage record. Values recorded
    again for the same week, area, kind and source become current; the earlier ones stay
    as history."""
    import pandas as pd

    from crimecast.contracts import AreaGraph
    from crimecast.dosage import validate_dosage
    from crimecast.errors import CrimecastError
    from serving.dosage import record_dosage
    from serving.predlog import PredictionLog
    from serving.settings import ServingSettings

    if not file.exists():
        raise CrimecastError(f"{file}: file not found", file=file)
    frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    rows, problems = validate_dosage(frame, AreaGraph.load().area_ids)
    if problems:
        for problem in problems[:20]:
            typer.secho(f"  {problem}", err=True)
        raise CrimecastError(f"{file}: {len(problems)} invalid value(s); nothing recorded",
                             file=file, hint="fix the rows listed above and import again")
    settings = ServingSettings.load()
    log = PredictionLog(settings.predlog_url(), schema=settings.predlog.db_schema)
    try:
        result = record_dosage(log, rows, f"cli:{getpass.getuser()}",
                               f"cli-{uuid.uuid4().hex}")
    finally:
        log.close()
    typer.echo(f"recorded {result['written']} dosage row(s) from {file}"
               + (f"; {result['superseded']} replace earlier values (kept as history)"
                  if result["superseded"] else ""))


@dosage_app.command("summary")
def summary(
    out: Annotated[Path | None, typer.Option(help="CSV to write (default: "
                                                  "state/monitoring/dosage_by_group.csv).")
                   ] = None,
) -> None:
    """Planned (logged /allocate answers) against delivered dosage, by group and week."""
    from crimecast.contracts import AreaGraph
    from crimecast.io import write_csv
    from monitoring.dosage import current_dosage, planned_allocations, planned_vs_delivered
    from monitoring.settings import MonitoringSettings

    settings = MonitoringSettings.load()
    url = settings.predlog_url
    graph = AreaGraph.load()
    table = planned_vs_delivered(planned_allocations(url), current_dosage(url),
                                 graph.areas["group"])
    path = write_csv(out or settings.path("output_dir") / "dosage_by_group.csv", table)
    if table.empty:
        typer.echo("no allocations logged and no dosage recorded yet")
    else:
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"written to {path}")
