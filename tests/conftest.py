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


# ---------------------------------------------------------------------------------------
# Synthetic city (owner: pipeline). Built once per test session: 64 areas × 120 weeks,
# one outage week, written as pipeline artifacts into its own project home.

SYNTHETIC_AREAS = 64
SYNTHETIC_WEEKS = 120
SYNTHETIC_OUTAGE_WEEK = 40  # index of the single outage week (well before the backtest)


class SyntheticProject:
    """What the ``synthetic_city`` fixture returns.

    - ``home``: a project home with ``configs/`` (copy of the repository's) and
      ``artifacts/`` holding areas.parquet, graph.npz, panel.parquet, truth.parquet,
      features.parquet and splits.json.
    - ``panel`` (:class:`crimecast.contracts.Panel`), ``graph``
      (:class:`crimecast.contracts.AreaGraph`), ``truth`` (DataFrame ``area_id, week,
      category, intensity, recorded_intensity``), ``splits`` (dict of splits.json),
      ``city`` (the :class:`crimecast.synthetic.SyntheticCity`, with dense arrays).

    Treat it as read-only: it is shared by every test of the session. Tests that write
    files should copy ``home`` (see ``synthetic_project``).
    """

    def __init__(self, home: Path) -> None:
        import json

        import pandas as pd

        from crimecast.contracts import AreaGraph, ArtifactPaths, Panel
        from crimecast.synthetic import generate_city, save_city_artifacts

        self.home = home
        shutil.copytree(REPO / "configs", home / "configs", dirs_exist_ok=True)
        self.artifacts = ArtifactPaths(root=home / "artifacts")
        self.city = generate_city(SYNTHETIC_AREAS, SYNTHETIC_WEEKS, seed=7,
                                  outage_seed_weeks=[SYNTHETIC_OUTAGE_WEEK])
        save_city_artifacts(self.city, self.artifacts)
        self.panel = Panel.load(self.artifacts.panel)
        self.graph = AreaGraph.load(self.artifacts.graph, self.artifacts.areas)
        self.truth = pd.read_parquet(self.artifacts.truth)
        self.splits = json.loads(self.artifacts.splits.read_text())


@pytest.fixture(scope="session")
def synthetic_city(tmp_path_factory: pytest.TempPathFactory) -> SyntheticProject:
    """A small synthetic city with pipeline artifacts (session-scoped, ~1 s to build)."""
    return SyntheticProject(tmp_path_factory.mktemp("synthetic_city") / "project")


@pytest.fixture
def synthetic_project(synthetic_city: SyntheticProject, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, writable copy of the synthetic city's project home; cwd and
    CRIMECAST_HOME point to it (like ``tmp_project``, but with artifacts in place)."""
    home = tmp_path / "project"
    shutil.copytree(synthetic_city.home, home)
    monkeypatch.setenv("CRIMECAST_HOME", str(home))
    monkeypatch.chdir(home)
    return home
