"""``crimecast serve`` (the BentoML prediction API) and ``crimecast keys`` (API keys)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)
keys_app = typer.Typer(help="Create and list API keys (only SHA-256 hashes are stored).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command("serve")
def serve(
    host: str = typer.Option(None, help="Interface to bind (default: serving.yaml host, "
                                        "127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default: serving.yaml port)."),
    workers: int = typer.Option(None, help="Worker processes (default: serving.yaml)."),
) -> None:
    """Start the prediction API: forecast, hotspots, allocate, outcomes, model, reload.

    Loads the model holding @champion (configs/serving.yaml `alias`) from the MLflow
    registry and follows it; every request needs an X-API-Key header.
    """
    from serving.settings import ServingSettings

    settings = ServingSettings.load()
    host = host or settings.host
    port = port or settings.port
    from crimecast.localserver import ensure_port_free

    ensure_port_free(host, port)
    env = dict(os.environ)
    if workers:
        env["CRIMECAST_SERVING__WORKERS"] = str(workers)
    env.setdefault("CRIMECAST_HOME", str(Path.cwd() if not os.environ.get("CRIMECAST_HOME")
                                         else os.environ["CRIMECAST_HOME"]))
    import serving

    source_root = Path(serving.__file__).resolve().parent.parent
    url = f"http://{host}:{port}"
    keys_file = settings.keys_file
    typer.echo(f"crimecast API on {url}  (OpenAPI: {url}/docs.json, Swagger UI: {url}/)")
    typer.echo(f"prediction log: {settings.predlog_url()}")
    typer.echo(f"API keys: {keys_file} (+ ${settings.keys.env})")
    if not keys_file.exists() and not os.environ.get(settings.keys.env):
        typer.secho("no API keys yet: every request will get 401 until you create one.",
                    fg=typer.colors.YELLOW)
    typer.echo("create a key:  crimecast keys add NAME   (add --admin to allow /reload)")
    typer.echo("example:\n"
               f"  curl -s -X POST {url}/forecast -H 'X-API-Key: <key printed by keys add>' "
               "-H 'Content-Type: application/json' -d '{\"horizon\": 1, \"area_ids\": null}'")
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:CrimecastService",
               "--host", host, "--port", str(port), "--working-dir", str(source_root)]
    server = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: object) -> None:
        # Stopping `crimecast serve` stops BentoML (which stops its workers).
        server.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    try:
        code = server.wait()
    except KeyboardInterrupt:  # Ctrl+C reached BentoML too (same process group)
        code = server.wait()
    raise typer.Exit(code)


@keys_app.command("add")
def keys_add(
    name: str = typer.Argument(..., help="Who uses the key (logged with every request)."),
    admin: bool = typer.Option(False, "--admin", help="Allow admin endpoints (/reload)."),
) -> None:
    """Create an API key, store only its SHA-256 hash, and print the key once."""
    from serving.auth import ApiKeyError, add_key
    from serving.settings import ServingSettings

    path = ServingSettings.load().keys_file
    try:
        key = add_key(path, name, admin=admin)
    except ApiKeyError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(f"created {'admin ' if admin else ''}key '{name}' (hash stored in {path}).")
    typer.echo("The key is shown only now; keep it secret:")
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List key names and admin flags (hashes and keys are never printed)."""
    from serving.auth import read_keys_file
    from serving.settings import ServingSettings

    settings = ServingSettings.load()
    keys = read_keys_file(settings.keys_file)
    typer.echo(f"{len(keys)} key(s) in {settings.keys_file}")
    for key in keys:
        typer.echo(f"  {key.name}{'  (admin)' if key.admin else ''}")
    if os.environ.get(settings.keys.env):
        typer.echo(f"plus keys from ${settings.keys.env}")
