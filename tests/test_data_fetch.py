"""`crimecast data fetch` is deterministic and tracks data/ with DVC when a repo exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crimecast.cli import app

SLICE = Path(__file__).parent / "fixtures" / "data" / "philly_slice"
DVC = str(Path(sys.executable).parent / "dvc")


@pytest.mark.slow
def test_fetch_twice_gives_the_same_dvc_hash(tmp_project: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRIMECAST_DATA__SOURCE", "philadelphia")
    monkeypatch.setenv("CRIMECAST_DATA__PHILADELPHIA__SNAPSHOT_DIR", str(SLICE))
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=tmp_project, check=True)
    runner = CliRunner()

    first = runner.invoke(app, ["data", "fetch"])
    assert first.exit_code == 0, first.output
    tracked = (tmp_project / "data.dvc").read_text()
    assert "path: data" in tracked and "nfiles: 3" in tracked
    assert {p.name: p.read_bytes() for p in (tmp_project / "data").iterdir()} == {
        p.name: p.read_bytes() for p in SLICE.iterdir()}

    (tmp_project / "data.dvc").unlink()
    again = runner.invoke(app, ["data", "fetch"])
    assert again.exit_code == 0, again.output
    assert (tmp_project / "data.dvc").read_text() == tracked
