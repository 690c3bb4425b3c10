"""`crimecast keys add/list/revoke/rotate` and `crimecast serve`'s startup checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from crimecast.cli import app
from crimecast.errors import CrimecastError
from serving.auth import hash_key

REPO = Path(__file__).resolve().parents[1]


def test_keys_add_prints_the_key_once_and_stores_its_hash(tmp_project: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["keys", "add", "dispatch", "--admin"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    stored = json.loads((tmp_project / "state" / "api_keys.json").read_text())["keys"]
    assert stored[0]["name"] == "dispatch"
    assert stored[0]["scopes"] == ["read", "outcomes", "dosage", "admin"]
    assert stored[0]["sha256"] == hash_key(key) and key not in json.dumps(stored)
    again = runner.invoke(app, ["keys", "add", "dispatch"])
    assert isinstance(again.exception, CrimecastError)
    assert "already exists" in str(again.exception)
    feeder = runner.invoke(app, ["keys", "add", "feeder", "--scope", "outcomes"])
    assert feeder.exit_code == 0, feeder.output
    listing = runner.invoke(app, ["keys", "list"])
    assert "dispatch  (read+outcomes+dosage+admin)" in listing.output and key not in listing.output
    assert "feeder  (outcomes)" in listing.output


def test_keys_revoke_and_rotate(tmp_project: Path) -> None:
    runner = CliRunner()
    old = runner.invoke(app, ["keys", "add", "app"]).output.strip().splitlines()[-1]
    rotated = runner.invoke(app, ["keys", "rotate", "app"])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.output.strip().splitlines()[-1]
    stored = json.loads((tmp_project / "state" / "api_keys.json").read_text())["keys"]
    assert stored[0]["sha256"] == hash_key(new) != hash_key(old)
    revoked = runner.invoke(app, ["keys", "revoke", "app"])
    assert revoked.exit_code == 0 and "within 1 s" in revoked.output
    listing = runner.invoke(app, ["keys", "list"])
    assert "0 active key(s)" in listing.output and "REVOKED" in listing.output


def _crimecast(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRIMECAST_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", "from crimecast.cli import main; main()", *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_serve_with_a_malformed_keys_file_is_one_line_and_exit_2(tmp_project: Path) -> None:
    (tmp_project / "state").mkdir()
    (tmp_project / "state" / "api_keys.json").write_text('{"keys": [{"name": "a", "sha2')
    result = _crimecast(tmp_project, "serve", "--port", "1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[0].startswith("error:")
    assert "api_keys.json" in result.stderr and "fix:" in result.stderr


def test_bentoml_serve_with_a_malformed_keys_file_exits_instead_of_crash_looping(
        tmp_project: Path) -> None:
    (tmp_project / "state").mkdir()
    (tmp_project / "state" / "api_keys.json").write_text('{"keys": 3}')
    env = {**os.environ, "CRIMECAST_HOME": str(tmp_project), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:CrimecastService",
         "--port", "1", "--working-dir", str(REPO)], cwd=tmp_project, env=env,
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_serve_on_a_busy_port_is_one_line_with_the_fix(tmp_project: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _crimecast(tmp_project, "serve", "--port", str(port))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and f"port {port}" in lines[0] and "already in use" in lines[0]
    assert lines[1].strip().startswith("fix:") and "--port" in lines[1]


def test_serve_has_help() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "X-API-Key" in result.output
