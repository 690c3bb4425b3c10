"""Shared fixtures. Each test that writes files runs in a temporary *project home*
(a copy of ``configs/``), so nothing touches the developer's own artifacts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tmp_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project home with the repository's configs; cwd and CRIMECAST_HOME point to it."""
    home = tmp_path / "project"
    shutil.copytree(REPO / "configs", home / "configs")
    monkeypatch.setenv("CRIMECAST_HOME", str(home))
    monkeypatch.chdir(home)
    return home
