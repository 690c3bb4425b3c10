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
# Synthetic city. Built once per test session: 64 areas × 120 weeks,
# one outage week, written as pipeline artifacts into its own project home.

SYNTHETIC_AREAS = 64
SYNTHETIC_WEEKS = 120
SYNTHETIC_OUTAGE_WEEK = 40  # index of the single outage week (well before the backtest)


class SyntheticProject:
    """What the ``synthetic_city`` fixture returns.

    - ``home``: a project home with ``configs/`` (copy of the repository's) and
      ``artifacts/`` holding areas.parquet, graph.npz and panel.parquet.
    - ``panel`` (:class:`crimecast.contracts.Panel`), ``graph``
      (:class:`crimecast.contracts.AreaGraph`), ``truth`` (DataFrame ``area_id, week,
      category, intensity, recorded_intensity``), ``city`` (the
      :class:`crimecast.data.synthetic.SyntheticCity`, with dense arrays).

    Treat it as read-only: it is shared by every test of the session. Tests that write
    files should copy ``home`` (see ``synthetic_project``).
    """

    def __init__(self, home: Path) -> None:
        from crimecast.contracts import AreaGraph, ArtifactPaths, Panel
        from crimecast.data.synthetic import generate_city, save_city_artifacts

        self.home = home
        shutil.copytree(REPO / "configs", home / "configs", dirs_exist_ok=True)
        self.artifacts = ArtifactPaths(root=home / "artifacts")
        self.city = generate_city(SYNTHETIC_AREAS, SYNTHETIC_WEEKS, seed=7,
                                  outage_seed_weeks=[SYNTHETIC_OUTAGE_WEEK])
        save_city_artifacts(self.city, self.artifacts)
        self.panel = Panel.load(self.artifacts.panel)
        self.graph = AreaGraph.load(self.artifacts.graph, self.artifacts.areas)
        self.truth = self.city.truth_frame()


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


# ---------------------------------------------------------------------------------------
# MLflow stores for the lifecycle tests.

@pytest.fixture(scope="session", name="mlflow_template")
def mlflow_template_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store with its schema migrated (~5-8 s of alembic work),
    made once per session and copied into each test project's state/mlflow.db."""
    from mlflow import MlflowClient

    template = tmp_path_factory.getbasetemp() / "mlflow-template" / "mlflow.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()
    return template


@pytest.fixture
def small_backtest(tracked_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tracked project whose backtests stay cheap: 8 origins, 300 bootstrap draws, no
    map; flagging a quarter of the land area gives every group of the 64-area city enough
    flags for stable disparity ratios."""
    monkeypatch.setenv("CRIMECAST_EVALUATION__BACKTEST_WEEKS", "8")
    monkeypatch.setenv("CRIMECAST_EVALUATION__BOOTSTRAP_DRAWS", "300")
    monkeypatch.setenv("CRIMECAST_EVALUATION__FLAG_SHARE", "0.25")
    monkeypatch.setenv("CRIMECAST_TRACKING__LOG_MAP", "false")
    monkeypatch.setenv("USER", "test-operator")
    return tracked_project


@pytest.fixture(name="tracked_project")
def tracked_project_fixture(synthetic_project: Path, mlflow_template: Path) -> Path:
    """The synthetic project home with a fresh (copied) MLflow store in state/."""
    (synthetic_project / "state").mkdir(exist_ok=True)
    shutil.copy(mlflow_template, synthetic_project / "state" / "mlflow.db")
    return synthetic_project
