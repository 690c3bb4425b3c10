"""User mistakes at the command line give one line (plus a `fix:` line), exit 2, and no
traceback: an unknown model name, a missing directory or input, a busy port, a wrong
CRIMECAST_HOME. Run through the real `crimecast` entry point in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CRIMECAST = str(Path(sys.executable).with_name("crimecast"))


def _run(args: list[str], home: Path | str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRIMECAST_HOME": str(home), "PYTHONPATH": str(REPO), "COLUMNS": "250"}
    env.pop("CRIMECAST_DEBUG", None)
    return subprocess.run([CRIMECAST, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120, check=False)


def _one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), result.stderr
    assert len(lines) <= 2 and all(line.startswith(("error: ", "  fix: ")) for line in lines), lines
    for word in words:
        assert word in result.stderr, (word, result.stderr)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    import shutil

    project = tmp_path / "project"
    shutil.copytree(REPO / "configs", project / "configs")
    return project


def test_unknown_model_name_is_one_line(home):
    _one_line_error(_run(["train", "--model", "nosuch"], home, home), "unknown model 'nosuch'",
                    "historical_average")
    _one_line_error(_run(["monitor", "run", "--model", "nosuch"], home, home),
                    "unknown model 'nosuch'")


def test_model_help_lists_the_valid_names(home):
    result = _run(["train", "--help"], home, home)
    assert result.returncode == 0
    help_text = " ".join(result.stdout.replace("│", " ").split())
    assert "historical_average, seasonal_naive, lightgbm_poisson" in help_text
    source = " ".join(_run(["monitor", "run", "--help"], home, home).stdout.replace("│", " ").split())
    assert "<auto|predlog|replay>" in source


def test_missing_directory_or_input_is_one_line(home):
    _one_line_error(_run(["monitor", "ui"], home, home), "workspace", "crimecast monitor run")
    _one_line_error(_run(["monitor", "run"], home, home), "panel.parquet", "dvc repro")
    _one_line_error(_run(["report"], home, home), "not found")


def test_busy_port_is_one_line(home):
    (home / "workspace").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        _one_line_error(_run(["monitor", "ui", "--port", port], home, home),
                        f"port {port}", "in use", "--port")
        _one_line_error(_run(["serve", "--port", port], home, home), f"port {port}", "in use")


def test_wrong_crimecast_home_is_one_line(home, tmp_path):
    _one_line_error(_run(["monitor", "check"], tmp_path / "no-such-home", tmp_path),
                    "CRIMECAST_HOME", "is not a directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(_run(["models", "history"], empty, tmp_path), "holds no configs/")
