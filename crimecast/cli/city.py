"""``crimecast city init``: propose ``configs/data.yaml`` for a new city from its files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Bring up a new city: sniff its files and propose its data config.",
                  no_args_is_help=True)


@app.command()
def init(
    incidents: Annotated[Path, typer.Argument(help="Incidents CSV (one row per record).")],
    areas: Annotated[Path, typer.Argument(
        help="Areas: GeoJSON polygons, or a CSV of centroids (id, lon, lat).")],
    demographics: Annotated[Path, typer.Argument(help="Demographics CSV (one row per area).")],
    name: Annotated[str | None, typer.Option(help="The city's name (city.name).")] = None,
    unit_label: Annotated[str | None, typer.Option(
        help="What one area is called (city.unit_label), e.g. neighbourhood.")] = None,
    source: Annotated[str, typer.Option(help="Who published the data (city.source).")] = "",
    licence: Annotated[str, typer.Option(help="The data's terms (city.licence).")] = "",
    out: Annotated[Path | None, typer.Option(
        help="Where to write the proposal (default: configs/data.yaml of the project).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Sniff the three files (columns, value types, labels, share scale, time zone) and
    write a commented configs/data.yaml for them; print what could not be guessed. Then
    fill in the category map and run `crimecast data fetch`, `crimecast data validate`
    and `crimecast pipeline`."""
    from crimecast.config import ConfigError
    from crimecast.data.cityinit import propose_city, render_data_yaml
    from crimecast.data.settings import DataSettings
    from crimecast.io import write_text
    from crimecast.paths import project_home

    for kind, path in (("incidents", incidents), ("areas", areas), ("demographics", demographics)):
        if not path.exists():
            raise ConfigError(f"{path}: file not found", key=kind,
                              hint=f"give the path of the city's {kind} file")
    home = project_home()
    target = out or DataSettings.config_path(home)
    if target.exists() and not force:
        raise ConfigError(f"{target} exists", key="--out",
                          hint="rerun with --force to replace it, or --out FILE for a copy")
    proposal = propose_city(incidents, areas, demographics, home, name, unit_label)
    text = render_data_yaml(proposal, source, licence)
    write_text(target, text)
    DataSettings.load(target)  # the proposal is a valid config (a failure here is a bug)
    typer.echo(f"read {proposal.rows:,} incident records; "
               f"{len(proposal.labels)} distinct labels in '{proposal.label_column}'")
    for note in proposal.notes:
        typer.echo(f"  note: {note}")
    if proposal.unguessed:
        typer.secho("could not guess (marked TODO in the file):", fg=typer.colors.YELLOW)
        for key, why in proposal.unguessed:
            typer.echo(f"  {key}: {why}")
    typer.echo(f"wrote {target}")
    typer.echo("next: fill in `categories`, then `crimecast data fetch`, "
               "`crimecast data validate` and `crimecast pipeline`")
