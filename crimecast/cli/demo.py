"""``crimecast demo``: the main job on the embedded default, end to end.

Materialise the configured source into ``data/``, run the DVC pipeline (ingest → areas →
graph → panel → tune → train → evaluate → promote), then a monitoring run and
the public transparency report. Each step is the same command a user would type, run in a
subprocess so a failure names the step that broke.
"""

from __future__ import annotations

import subprocess
import sys
import time

import typer

app = typer.Typer()

_STEPS: list[tuple[str, list[str]]] = [
    ("fetch the raw snapshot into data/", ["-m", "crimecast", "data", "fetch"]),
    ("run the DVC pipeline (data → tune → train → evaluate → promote)", ["-m", "crimecast", "pipeline"]),
    ("monitor drift, accuracy and disparity", ["-m", "crimecast", "monitor", "run"]),
    ("write the public transparency report", ["-m", "crimecast", "report"]),
]


@app.command()
def demo() -> None:
    """Run the whole lifecycle on the embedded default (Philadelphia unless configs/data.yaml
    says otherwise) and print where every output went."""
    started = time.monotonic()
    for number, (title, args) in enumerate(_STEPS, start=1):
        typer.secho(f"\n[{number}/{len(_STEPS)}] {title}", bold=True)
        typer.echo(f"$ crimecast {' '.join(args[2:])}")
        step_start = time.monotonic()
        result = subprocess.run([sys.executable, *args], check=False)
        if result.returncode != 0:
            typer.secho(f"step {number} failed ({title}); exit code {result.returncode}",
                        fg=typer.colors.RED, err=True)
            raise typer.Exit(result.returncode)
        typer.echo(f"    done in {time.monotonic() - step_start:.0f} s")
    typer.secho(f"\ndemo finished in {time.monotonic() - started:.0f} s", fg=typer.colors.GREEN)
    typer.echo(
        "  pipeline outputs:      artifacts/\n"
        "  MLflow runs/registry:  state/mlflow.db  (mlflow ui --backend-store-uri sqlite:///state/mlflow.db)\n"
        "  promotion audit log:   state/audit.jsonl   (crimecast models history)\n"
        "  Evidently workspace:   workspace/           (crimecast monitor ui)\n"
        "  public report:         reports/index.html\n"
        "  serve the champion:    crimecast serve"
    )
