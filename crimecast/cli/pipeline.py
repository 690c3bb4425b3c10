"""``crimecast pipeline``: run the DVC pipeline (``dvc repro``) in the project home."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Annotated

import typer

from crimecast.paths import project_home

app = typer.Typer()


def repro_command(stages: list[str] | None = None, force: bool = False,
                  dry: bool = False) -> list[str]:
    """The ``dvc repro`` argument list (run with this interpreter's DVC)."""
    command = [sys.executable, "-m", "dvc", "repro"]
    if force:
        command.append("--force")
    if dry:
        command.append("--dry")
    # A named stage runs with its upstream (what it needs), as `dvc repro NAME` does.
    command += list(stages or [])
    return command


@app.command()
def pipeline(
    stage: Annotated[list[str] | None, typer.Option(
        "--stage", "-s", help="run only this stage and what it depends on (repeatable)")] = None,
    force: Annotated[bool, typer.Option(
        "--force", "-f", help="rerun stages even if nothing changed")] = False,
    dry: Annotated[bool, typer.Option(
        "--dry", help="print the commands that would run, run nothing")] = False,
) -> None:
    """Run the data → model pipeline with `dvc repro` in the project home, streaming its
    output. Only stages whose inputs, code or params changed rerun. Exits non-zero when a
    stage fails."""
    home = project_home()
    if not (home / "dvc.yaml").exists():
        typer.secho(f"error: {home / 'dvc.yaml'} not found; run from the project home "
                    "or set CRIMECAST_HOME", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    from crimecast.data.settings import DataSettings
    from crimecast.data.units import record_unit

    data_settings = DataSettings.load()
    units = data_settings.units
    record_unit(units)  # the data stages depend on it: an env override reruns them
    command = repro_command(stage, force, dry)
    unit_text = (f"H3 cells at resolution {units.resolution}" if units.kind == "h3"
                 else f"the source's own areas ({data_settings.area_label}s)")
    typer.echo(f"unit: {unit_text} (configs/data.yaml key units, or CRIMECAST_DATA__UNITS__*)")
    typer.echo(f"$ dvc {' '.join(command[3:])}   (in {home})")
    started = time.monotonic()
    # Stages run `python -m training.<stage>`: put this interpreter's bin first on PATH so
    # they run in the same environment even when the virtualenv is not activated.
    env = {**os.environ, "PATH": os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    # Inherit stdout/stderr so DVC's own progress streams straight to the terminal.
    result = subprocess.run(command, cwd=home, env=env, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        typer.secho(f"pipeline failed after {elapsed:.1f} s (dvc exit code {result.returncode})",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(result.returncode)
    typer.secho(f"pipeline up to date in {elapsed:.1f} s; outputs ({unit_text}) in "
                f"{home / 'artifacts'} (versions in dvc.lock)", fg=typer.colors.GREEN)
