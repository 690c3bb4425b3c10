"""``crimecast demo``: the main job on the embedded default, end to end, at two units.

Materialise the configured source into ``data/``; run the DVC pipeline (ingest → areas →
graph → panel → tune → train → evaluate → promote) at H3 resolution 9 (micro-places),
then at the configured unit (census tracts for Philadelphia, as before), then a monitoring
run and the public transparency report on the tracts. Each step is the same command a
user would type, run in a subprocess so a failure names the step that broke; the H3 run
is the tract run with ``CRIMECAST_DATA__UNITS__KIND=h3``, cut to fit the time budget
(see :data:`H3_ENV`) and stopped after ``evaluate``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import typer

app = typer.Typer()

# The H3 run's environment: the unit, and what is cut to keep the demo near its time
# budget (3,747 cells are 9x the tracts): one tuning trial (tracts: 8), a GNN of 10
# epochs (60) on the last 52 weeks of origins (156) with both cores, a 13-week backtest
# (26), and the pipeline stops after `evaluate` (no promotion at H3 in the demo).
H3_ENV: dict[str, str] = {"CRIMECAST_DATA__UNITS__KIND": "h3",
                          "CRIMECAST_DATA__UNITS__RESOLUTION": "9",
                          "CRIMECAST_TUNING__TRIALS": "1",
                          "CRIMECAST_MODELS__GNN__EPOCHS": "10",
                          "CRIMECAST_MODELS__GNN__TRAIN_WEEKS": "52",
                          "CRIMECAST_MODELS__GNN__NUM_THREADS": "2",
                          "CRIMECAST_EVALUATION__BACKTEST_WEEKS": "13"}

_STEPS: list[tuple[str, list[str], dict[str, str]]] = [
    ("fetch the raw snapshot into data/", ["-m", "crimecast", "data", "fetch"], {}),
    ("run the DVC pipeline at H3 resolution 9 (data → tune → train → evaluate)",
     ["-m", "crimecast", "pipeline", "--stage", "evaluate"], H3_ENV),
    ("run the DVC pipeline at the configured unit (tracts)", ["-m", "crimecast", "pipeline"],
     {}),
    ("monitor drift, accuracy and disparity", ["-m", "crimecast", "monitor", "run"], {}),
    ("write the public transparency report", ["-m", "crimecast", "report"], {}),
]


@app.command()
def demo() -> None:
    """Run the whole lifecycle on the embedded default (Philadelphia unless configs/data.yaml
    says otherwise) at H3 r9 and at tracts, and print where every output went."""
    started = time.monotonic()
    for number, (title, args, env) in enumerate(_STEPS, start=1):
        typer.secho(f"\n[{number}/{len(_STEPS)}] {title}", bold=True)
        prefix = " ".join(f"{k}={v}" for k, v in env.items())
        typer.echo(f"$ {prefix + ' ' if prefix else ''}crimecast {' '.join(args[2:])}")
        step_start = time.monotonic()
        result = subprocess.run([sys.executable, *args], check=False,
                                env={**os.environ, **env})
        if result.returncode != 0:
            typer.secho(f"step {number} failed ({title}); exit code {result.returncode}",
                        fg=typer.colors.RED, err=True)
            raise typer.Exit(result.returncode)
        typer.echo(f"    done in {time.monotonic() - step_start:.0f} s")
    typer.secho(f"\ndemo finished in {time.monotonic() - started:.0f} s", fg=typer.colors.GREEN)
    typer.echo(
        "  tracts (current unit):\n"
        "    pipeline outputs:    artifacts/\n"
        "    registered model:    crimecast (@champion; crimecast models history)\n"
        "  H3 cells, resolution 9:\n"
        "    registered model:    crimecast-h3r9 (@challenger; promote it with\n"
        "                         CRIMECAST_DATA__UNITS__KIND=h3 crimecast pipeline)\n"
        "    its evaluation:      MLflow experiment crimecast, run evaluate-* (unit h3r9)\n"
        "    pipeline outputs:    in the DVC cache: CRIMECAST_DATA__UNITS__KIND=h3 crimecast\n"
        "                         pipeline restores the data stages from DVC's run cache\n"
        "                         (no rerun) and reruns tune → promote (they write MLflow)\n"
        "  MLflow runs/registry:  state/mlflow.db  (mlflow ui --backend-store-uri sqlite:///state/mlflow.db)\n"
        "  promotion audit log:   state/audit.jsonl   (crimecast models history)\n"
        "  Evidently workspace:   workspace/           (crimecast monitor ui)\n"
        "  public report:         reports/index.html\n"
        "  serve the champion:    crimecast serve   (H3 cells: restore them as above, then\n"
        "                         CRIMECAST_DATA__UNITS__KIND=h3 crimecast serve)"
    )
