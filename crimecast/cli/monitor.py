"""Oversight commands: ``monitor run|check|ui``, ``simulate feedback`` and ``report``.

Heavy imports (Evidently, geopandas, matplotlib, the ``monitoring`` package) happen inside
the commands so ``crimecast --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer()


class Source(str, Enum):
    auto = "auto"
    predlog = "predlog"
    replay = "replay"


def _model_names() -> str:
    from crimecast.forecast.names import MODEL_NAMES

    return ", ".join(("champion", *MODEL_NAMES))
monitor_app = typer.Typer(help="Drift, accuracy and disparity monitoring with Evidently.",
                          no_args_is_help=True)
simulate_app = typer.Typer(help="Simulations of how forecasts shape the data they learn from.",
                           no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")
app.add_typer(simulate_app, name="simulate")


def _settings():
    from monitoring.settings import MonitoringSettings

    return MonitoringSettings.load()


@monitor_app.command("run")
def run(
    weeks: int = typer.Option(None, "--weeks", "-n", min=1,
                              help="Monitor the last N weeks (default: replay_weeks in "
                                   "configs/monitoring.yaml)."),
    source: Annotated[Source, typer.Option(help="predlog: served forecasts and outcomes from "
                                                "the prediction log; replay: the panel's last "
                                                "weeks; auto: the log when it has forecasts."
                                           )] = Source.auto,
    model: str = typer.Option(None, help="Forecaster for replay and the reference window, one "
                                         f"of: {_model_names()} (default: replay_model in "
                                         "configs/monitoring.yaml)."),
    workspace: bool = typer.Option(True, help="Store weekly runs in the Evidently workspace."),
) -> None:
    """Produce weekly Evidently reports (input drift, prediction drift, regression quality)
    and per-group accuracy, disparity and exposure; store them in the workspace and under
    state/monitoring/."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from crimecast.contracts import AreaGraph, Panel
    from crimecast.data.panel import target_panel
    from monitoring.run import monitor, write_outputs
    from monitoring.workspace import OversightWorkspace

    settings = _settings()
    source = Source(source).value
    if model is not None:
        from crimecast.forecast.models import model_class

        if model != "champion":
            model_class(model)  # an unknown name is one line, before any work
    _detect_manual_alias_changes()
    panel, graph = target_panel(Panel.load()), AreaGraph.load()
    out_dir = settings.path("output_dir")
    ws = (OversightWorkspace(settings.path("workspace_dir"), settings.project_name,
                             out_dir / "workspace_index.json") if workspace else None)
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn()) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = monitor(panel, graph, settings, num_weeks=weeks, source=source, model=model,
                         workspace=ws, progress=progress)
    paths = write_outputs(result, out_dir)
    latest = result.summary["latest"]
    typer.echo(f"monitored {len(result.weekly)} week(s) from the {result.summary['source']} "
               f"with {result.summary['model']}; latest week {latest['week']}: drift share "
               f"{latest['drift_share']:.0%}, prediction drift "
               f"{'yes' if latest['prediction_drifted'] else 'no'}; "
               f"{len(result.summary['disparity_breaches'])} disparity breach(es)")
    for name, path in paths.items():
        typer.echo(f"  {name:14s} {path}")
    if ws is not None:
        typer.echo(f"  workspace      {ws.directory} (project '{settings.project_name}', "
                   f"id {ws.project_id}); view with `crimecast monitor ui`")


def _detect_manual_alias_changes() -> list[dict]:
    """Alias moves made outside crimecast since the last look, now in the audit log."""
    from crimecast.lifecycle.store import store_exists

    if not store_exists():
        return []
    from crimecast.lifecycle.registry import detect_manual_changes

    found = detect_manual_changes()
    for record in found:
        typer.secho(f"gate bypass: {record['reason']}", fg=typer.colors.RED, err=True)
    return found


@monitor_app.command("check")
def check(
    no_webhook: bool = typer.Option(False, "--no-webhook", help="Do not POST to webhook_url."),
) -> None:
    """Compare the latest monitoring summary with the thresholds and look for alias changes
    made outside crimecast; say in plain words what is wrong and what happens next.

    Raised alerts are appended to state/alerts.jsonl (and POSTed to webhook_url when
    configured); each alert's status (open, acknowledged, resolved) is kept in
    state/alert_status.jsonl. Exits 1 only while an alert is open (not yet acknowledged).
    """
    from crimecast.lifecycle.audit import read_audit
    from monitoring.alerts import (
        alert_record,
        append_alerts,
        evaluate,
        post_webhook,
        reconcile,
    )
    from monitoring.disparity import exempt_groups
    from monitoring.run import SUMMARY_FILE

    settings = _settings()
    _detect_manual_alias_changes()
    manual = [r for r in read_audit(settings.path("audit_path")) if r.get("event") == "manual"]
    summary_path = settings.path("output_dir") / SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    if summary is None and not manual:
        typer.secho(f"error: {summary_path} not found; run `crimecast monitor run` first",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    from crimecast.data.settings import DataSettings

    alerts = evaluate(summary, settings, exempt_groups(), manual,
                      DataSettings.load().groups.rule)
    statuses = reconcile(settings.path("alert_status_path"), alerts)
    weeks = f"weeks {summary['weeks'][0]} to {summary['weeks'][-1]}" if summary else "the registry"
    if not alerts:
        typer.secho(f"ok: nothing needs attention for {weeks}: inputs, forecasts, accuracy and "
                    "every group are inside their limits, and every model change went through "
                    "the gate.", fg=typer.colors.GREEN)
        return
    record = alert_record(alerts, summary)
    log = append_alerts(settings.path("alerts_path"), record)
    open_alerts = 0
    for alert in alerts:
        status = statuses[alert["id"]]
        if status["status"] == "open":
            open_alerts += 1
            typer.secho(f"OPEN: {alert['message']}", fg=typer.colors.RED)
        else:
            typer.secho(f"{status['status'].upper()} by {status['actor']} on "
                        f"{status['at'][:16].replace('T', ' ')} UTC"
                        f"{': ' + status['note'] if status.get('note') else ''}: "
                        f"{alert['message']}", fg=typer.colors.YELLOW)
        typer.echo(f"  what happens next: {alert['next_step']}")
        typer.echo(f"  alert id: {alert['id']}")
    typer.echo(f"{len(alerts)} alert(s), {open_alerts} open; appended to {log}. Acknowledge "
               "with `crimecast monitor ack ID --note ...`, close with `crimecast monitor "
               "resolve ID --note ...`.")
    if settings.webhook_url and not no_webhook:
        import httpx

        try:
            status_code = post_webhook(settings.webhook_url, record, settings.webhook_timeout_s)
            typer.echo(f"posted to the webhook (HTTP {status_code})")
        except httpx.HTTPError as exc:
            typer.secho(f"webhook failed: {type(exc).__name__}", fg=typer.colors.RED, err=True)
    if open_alerts:
        raise typer.Exit(1)


@monitor_app.command("alerts")
def alerts_list(
    everything: bool = typer.Option(False, "--all", help="Include resolved alerts."),
) -> None:
    """List alerts with their status (open, acknowledged, resolved), who and when."""
    from monitoring.alerts import read_statuses

    statuses = read_statuses(_settings().path("alert_status_path"))
    shown = [s for s in statuses.values() if everything or s["status"] != "resolved"]
    if not shown:
        typer.echo("no alerts" if everything else "no open or acknowledged alerts")
    for status in shown:
        typer.echo(f"{status['status']:12s} {status['id']}  ({status['actor']}, "
                   f"{status['at'][:16].replace('T', ' ')} UTC)"
                   f"{': ' + status['note'] if status.get('note') else ''}")
        typer.echo(f"             {status.get('message', '')}")


def _set_status(alert_id: str, status: str, actor: str | None, note: str) -> None:
    from crimecast.lifecycle.audit import default_actor
    from monitoring.alerts import set_status

    record = set_status(_settings().path("alert_status_path"), alert_id, status,
                        actor or default_actor(), note)
    typer.echo(f"{alert_id}: {status} by {record['actor']} at {record['at']}")


@monitor_app.command("ack")
def ack(
    alert_id: str = typer.Argument(..., help="Alert id (see `crimecast monitor alerts`)."),
    actor: str = typer.Option(None, help="Who acknowledges (default: $USER)."),
    note: str = typer.Option("", help="What is being done about it."),
) -> None:
    """Acknowledge an alert: someone is on it (`monitor check` then exits 0 for it)."""
    _set_status(alert_id, "acknowledged", actor, note)


@monitor_app.command("resolve")
def resolve_alert(
    alert_id: str = typer.Argument(..., help="Alert id (see `crimecast monitor alerts`)."),
    actor: str = typer.Option(None, help="Who resolves (default: $USER)."),
    note: str = typer.Option("", help="What was done."),
) -> None:
    """Resolve an alert (it reopens if the next `monitor check` raises it again, except a
    gate bypass, which stays resolved)."""
    _set_status(alert_id, "resolved", actor, note)


@monitor_app.command("ui")
def ui(
    port: int = typer.Option(8000, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
) -> None:
    """Serve the Evidently workspace UI (dashboards of every monitoring run)."""
    settings = _settings()
    directory = settings.path("workspace_dir")
    if not directory.exists():
        from crimecast.errors import CrimecastError

        raise CrimecastError(f"workspace {directory} not found",
                             hint="run `crimecast monitor run` first")
    from crimecast.localserver import ensure_port_free

    ensure_port_free(host, port)
    typer.echo(f"Evidently UI for {directory} on http://{host}:{port} (Ctrl-C to stop)",
               err=True)
    executable = str(Path(sys.executable).with_name("evidently"))
    # Replace this process, so signals (Ctrl-C, kill PID) reach the server directly.
    os.execv(executable, [executable, "ui", "--workspace", str(directory), "--host", host,
                          "--port", str(port)])


@simulate_app.command("feedback")
def feedback(
    weeks: int = typer.Option(30, min=2, help="Simulated weeks of patrolling."),
    areas: int = typer.Option(100, min=10, help="Areas of the synthetic city."),
    seed: int = typer.Option(7, help="Random seed (city and simulation)."),
    units: int = typer.Option(None, min=1, help="Patrol units split each week "
                                                 "(default: one per area)."),
    model: str = typer.Option("historical_average",
                              help="Cheap crimecast model retrained weekly."),
    out: str = typer.Option("reports/simulation", help="Output directory."),
) -> None:
    """Feedback-loop simulation (Ensign et al. 2018): patrol units follow the model's
    forecast, discovery follows patrols, the model retrains on what was recorded. Runs the
    naive loop, two training mitigations and trial-mode (randomised) allocation, and
    writes plots and tables."""
    from crimecast.paths import resolve
    from monitoring.simulate import SimulationConfig, run_all, write_simulation

    config = SimulationConfig(weeks=weeks, n_areas=areas, seed=seed, patrol_units=units,
                              model=model)
    results = run_all(config, progress=True)
    paths = write_simulation(results, resolve(out), config)
    for name, frame in results.items():
        final = frame.iloc[-1]
        typer.echo(f"{name:22s} final-week gap between patrol share and true crime share "
                   f"(total variation): {final['patrol_gap']:.3f}")
    for name, path in paths.items():
        typer.echo(f"  {name:10s} {path}")


@app.command("report")
def report(
    out: str | None = typer.Option(None, help="Output directory (default: report_dir in config)."),
) -> None:
    """Write the public transparency report (static HTML with embedded maps) to
    reports/index.html, plus the map layers as GeoJSON (count and risk classes only)."""
    from crimecast.paths import resolve
    from monitoring.report import build_report

    settings = _settings()
    target = resolve(out) if out else settings.path("report_dir")
    paths = build_report(settings, target)
    for name, path in paths.items():
        typer.echo(f"  {name:10s} {path}")
