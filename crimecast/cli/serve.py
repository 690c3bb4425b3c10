"""``crimecast serve`` (the BentoML prediction API) and ``crimecast keys`` (API keys)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)
keys_app = typer.Typer(help="Create, list, revoke and rotate API keys (only SHA-256 hashes "
                       "are stored; the service picks changes up within a second).",
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
    from serving.auth import check_keys
    from serving.settings import ServingSettings

    settings = ServingSettings.load()
    host = host or settings.host
    port = port or settings.port
    check_keys(settings)  # a malformed keys file: one line and exit 2, before any worker
    from crimecast.localserver import ensure_port_free

    ensure_port_free(host, port, file="configs/serving.yaml", key="port")
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
    typer.echo("create a key:  crimecast keys add NAME   (--scope outcomes to post ground "
               "truth, --admin to allow /reload)")
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


def _keys_path() -> Path:
    from serving.settings import ServingSettings

    return ServingSettings.load().keys_file


@keys_app.command("add")
def keys_add(
    name: str = typer.Argument(..., help="Who uses the key (logged with every request)."),
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", help="read (forecast, hotspots, allocate, model), outcomes (post "
        "ground truth), dosage (post delivered dosage), admin (/reload); repeat for "
        "several. Default: read.")] = None,
    admin: bool = typer.Option(False, "--admin", help="Shorthand for every scope (read, "
                                                      "outcomes, dosage, admin)."),
) -> None:
    """Create an API key, store only its SHA-256 hash, and print the key once."""
    from serving.auth import SCOPES, add_key

    scopes = list(SCOPES) if admin else (scope or ["read"])
    path = _keys_path()
    key = add_key(path, name, scopes=scopes)
    typer.echo(f"created key '{name}' with scopes {'+'.join(s for s in SCOPES if s in scopes)} "
               f"(hash stored in {path}).")
    typer.echo("The key is shown only now; keep it secret:")
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List key names, scopes and dates (hashes and keys are never printed)."""
    from serving.auth import list_keys
    from serving.settings import ServingSettings

    settings = ServingSettings.load()
    keys = list_keys(settings.keys_file)
    active = [k for k in keys if "revoked_at" not in k]
    typer.echo(f"{len(active)} active key(s) in {settings.keys_file}"
               + (f", {len(keys) - len(active)} revoked" if len(keys) > len(active) else ""))
    for key in keys:
        dates = ", ".join(f"{k.split('_')[0]} {key[k]}"
                          for k in ("created_at", "rotated_at", "revoked_at") if k in key)
        state = "  REVOKED" if "revoked_at" in key else ""
        typer.echo(f"  {key['name']}  ({'+'.join(key['scopes'])}){state}  {dates}")
    if os.environ.get(settings.keys.env):
        typer.echo(f"plus keys from ${settings.keys.env}")


@keys_app.command("revoke")
def keys_revoke(name: str = typer.Argument(..., help="Name of the key to revoke.")) -> None:
    """Stop accepting a key (kept in the file, marked revoked); every worker of a running
    service refuses it within about a second."""
    from serving.auth import REFRESH_SECONDS, revoke_key

    path = _keys_path()
    revoke_key(path, name)
    typer.echo(f"revoked key '{name}' in {path}; running services refuse it within "
               f"{REFRESH_SECONDS:.0f} s.")


@keys_app.command("rotate")
def keys_rotate(name: str = typer.Argument(..., help="Name of the key to rotate.")) -> None:
    """Give a key a new secret (same name and scopes) and print it once; the old secret
    stops working within about a second."""
    from serving.auth import REFRESH_SECONDS, rotate_key

    path = _keys_path()
    key = rotate_key(path, name)
    typer.echo(f"rotated key '{name}' in {path}; the old secret is refused within "
               f"{REFRESH_SECONDS:.0f} s. The new key is shown only now; keep it secret:")
    typer.echo(key)
