"""Oversight commands: ``monitor run|check|ui``, ``simulate feedback`` and ``report``.

Heavy imports (Evidently, geopandas, matplotlib, the ``monitoring`` package) happen inside
the commands so ``crimecast --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

app = typer.Typer()
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
    source: str = typer.Option("auto", help="auto | predlog | replay: served forecasts and "
                                            "outcomes from the prediction log, or a replay "
                                            "of the panel's last weeks (auto: the log when "
                                            "it has forecasts)."),
    model: str = typer.Option(None, help="Forecaster for replay and the reference window: a "
                                         "crimecast.forecast.models name or 'champion' (default: "
                                         "replay_model in the config)."),
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

    if source not in ("auto", "predlog", "replay"):
        raise typer.BadParameter(f"--source must be auto, predlog or replay, got {source!r}")
    settings = _settings()
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


@monitor_app.command("check")
def check(
    no_webhook: bool = typer.Option(False, "--no-webhook", help="Do not POST to webhook_url."),
) -> None:
    """Compare the latest monitoring summary with the thresholds; on any alert append it to
    state/alerts.jsonl, POST it to webhook_url when configured, and exit 1."""
    from monitoring.alerts import alert_record, append_alerts, evaluate, post_webhook
    from monitoring.run import SUMMARY_FILE

    settings = _settings()
    summary_path = settings.path("output_dir") / SUMMARY_FILE
    if not summary_path.exists():
        typer.secho(f"error: {summary_path} not found; run `crimecast monitor run` first",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    summary = json.loads(summary_path.read_text())
    alerts = evaluate(summary, settings)
    if not alerts:
        typer.secho(f"ok: no alerts for weeks {summary['weeks'][0]}..{summary['weeks'][-1]}",
                    fg=typer.colors.GREEN)
        return
    record = alert_record(alerts, summary)
    log = append_alerts(settings.path("alerts_path"), record)
    for alert in alerts:
        typer.secho(f"ALERT [{alert['kind']}] {alert['message']}", fg=typer.colors.RED)
    typer.echo(f"appended {len(alerts)} alert(s) to {log}")
    if settings.webhook_url and not no_webhook:
        import httpx

        try:
            status = post_webhook(settings.webhook_url, record, settings.webhook_timeout_s)
            typer.echo(f"posted to webhook {settings.webhook_url} (HTTP {status})")
        except httpx.HTTPError as exc:
            typer.secho(f"webhook {settings.webhook_url} failed: {exc}", fg=typer.colors.RED,
                        err=True)
    raise typer.Exit(1)


@monitor_app.command("ui")
def ui(
    port: int = typer.Option(8000, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
) -> None:
    """Serve the Evidently workspace UI (dashboards of every monitoring run)."""
    settings = _settings()
    directory = settings.path("workspace_dir")
    if not directory.exists():
        typer.secho(f"error: workspace {directory} not found; run `crimecast monitor run` first",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
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
