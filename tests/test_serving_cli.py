"""`crimecast keys add/list` and `crimecast serve --help`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crimecast.cli import app
from serving.auth import hash_key


def test_keys_add_prints_the_key_once_and_stores_its_hash(tmp_project: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["keys", "add", "dispatch", "--admin"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    stored = json.loads((tmp_project / "state" / "api_keys.json").read_text())["keys"]
    assert stored[0]["name"] == "dispatch" and stored[0]["admin"] is True
    assert stored[0]["sha256"] == hash_key(key) and key not in json.dumps(stored)
    again = runner.invoke(app, ["keys", "add", "dispatch"])
    assert again.exit_code == 2 and "already exists" in again.output
    listing = runner.invoke(app, ["keys", "list"])
    assert "dispatch  (admin)" in listing.output and key not in listing.output


def test_serve_has_help() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "X-API-Key" in result.output
