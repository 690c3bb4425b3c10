"""``crimecast cycle``: one operating week, refresh → repro → reload → monitor → report.

The steps run the project's own commands (``crimecast data refresh``, ``crimecast
pipeline`` (``dvc repro``), ``crimecast monitor run|check``, ``crimecast report``) as
subprocesses under one lock;
``crimecast.lifecycle.cycle`` keeps the state that makes a rerun resume or skip.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Annotated

import pandas as pd
import typer

app = typer.Typer()

#: Exit code when another cycle holds the lock (EX_TEMPFAIL: try again later).
LOCKED_EXIT = 75


def _crimecast(*args: str) -> list[str]:
    return [sys.executable, "-m", "crimecast", *args]


def _refresh_since(overlap_weeks: int) -> str:
    from crimecast.contracts import ARTIFACTS, ContractError

    if not ARTIFACTS.panel.exists():
        raise ContractError(f"{ARTIFACTS.panel}: missing, so no last week to refresh from",
                            hint="run `crimecast data fetch` and `crimecast pipeline` once")
    last = pd.read_parquet(ARTIFACTS.panel, columns=["week"])["week"].max()
    return (pd.Timestamp(last) - pd.Timedelta(weeks=overlap_weeks)).date().isoformat()


def _reload(url: str | None, key_env: str, timeout: float) -> str:
    from crimecast.errors import CrimecastError

    if not url:
        return ("no service_url in configs/cycle.yaml: a running service switches to the new "
                "@champion on its own (serving.yaml alias_poll_seconds)")
    key = os.environ.get(key_env)
    if not key:
        raise CrimecastError(f"reload needs an admin API key in ${key_env}",
                             file="configs/cycle.yaml", key="admin_key_env",
                             hint="create one with `crimecast keys add NAME --admin`")
    request = urllib.request.Request(url.rstrip("/") + "/reload", data=b"{}", method="POST",
                                     headers={"X-API-Key": key,
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except (urllib.error.URLError, TimeoutError) as exc:
        raise CrimecastError(f"POST {url}/reload failed: {exc}", file="configs/cycle.yaml",
                             key="service_url", hint="is the service running there?") from None
    if body.get("changed"):
        return f"service now serves version {body['version']} (was {body['previous_version']})"
    return f"service already serves version {body.get('version')} (@champion unchanged)"


def cycle_steps(settings) -> list:
    """The five steps of a cycle with this project's commands."""
    from crimecast.lifecycle.cycle import Command, Step

    if settings.refresh == "api":
        refresh = Step("refresh", commands=[Command(_crimecast(
            "data", "refresh", "--since", _refresh_since(settings.refresh_overlap_weeks)))])
    else:
        refresh = Step("refresh", function=lambda: "the source is an embedded snapshot "
                       "(configs/cycle.yaml refresh: none): nothing to fetch",
                       describe="nothing to fetch (refresh: none)")
    return [
        refresh,
        # `crimecast pipeline` records the resolved unit before `dvc repro` (dvc.yaml).
        Step("repro", commands=[Command(_crimecast("pipeline", "--stage",
                                                   settings.repro_target))]),
        Step("reload", function=lambda: _reload(settings.service_url, settings.admin_key_env,
                                                settings.reload_timeout_s),
             describe=(f"POST {settings.service_url}/reload" if settings.service_url else
                       "no service_url: the service polls @champion")),
        Step("monitor", commands=[
            Command(_crimecast("monitor", "run")),
            Command(_crimecast("monitor", "check"),
                    {1: "alerts raised: see state/alerts.jsonl"})]),
        Step("report", commands=[Command(_crimecast("report"))]),
    ]


@app.command()
def cycle(
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the steps and which would run or be skipped; run nothing.")
    ] = False,
) -> None:
    """Run one operating week: refresh the data, `dvc repro` through promote, signal the
    service to reload, monitor, write the report. Idempotent (a rerun with no new data
    retrains nothing and skips what is done), resumable (a rerun after a failure starts
    at the failed step) and locked (a second cycle refuses to start). Exits non-zero
    naming the failed step."""
    from crimecast.errors import report
    from crimecast.lifecycle.cycle import CycleFailed, CycleLocked, CycleSettings, run_cycle
    from crimecast.paths import project_home

    settings = CycleSettings.load()
    home = project_home()
    if not (home / "dvc.yaml").exists():
        typer.secho(f"error: {home / 'dvc.yaml'} not found; run from the project home "
                    "or set CRIMECAST_HOME", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    # Stages and steps run with this interpreter's tools (dvc, python -m training.*).
    env = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable),
                                                  os.environ.get("PATH", "")])}
    try:
        result = run_cycle(cycle_steps(settings), settings, typer.echo, dry_run=dry_run,
                           env=env)
    except CycleLocked as exc:
        report(exc)
        raise typer.Exit(LOCKED_EXIT) from None
    except CycleFailed as exc:
        report(exc)
        raise typer.Exit(exc.returncode or 1) from None
    if dry_run:
        return
    ran = [name for name, what in result.steps.items() if what == "ran"]
    skipped = [name for name, what in result.steps.items() if what == "skipped"]
    typer.secho(f"cycle complete: ran {ran}" + (f", skipped {skipped} (already done)"
                                                if skipped else "")
                + ("; a new model was trained" if result.trained
                   else "; no training (nothing new)"), fg=typer.colors.GREEN)
