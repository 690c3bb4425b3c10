"""The DVC pipeline end to end on a small synthetic city, in a throwaway git + DVC repo:
`crimecast pipeline` builds everything, a second run does nothing, a graph parameter
reruns only the graph stage, switching the unit reruns the data stages and switching
back restores them from the run cache, and push/pull restore the outputs from the local remote."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
DATA_STAGES = ("ingest", "areas", "graph", "panel")


def _run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRIMECAST_HOME": str(cwd),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project code with a 30-area synthetic source, fetched and `dvc add`ed,
    then built once with `crimecast pipeline`."""
    home = tmp_path_factory.mktemp("dvc") / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("crimecast", "training", "configs"):
        shutil.copytree(REPO / name, home / name, ignore=ignore)
    for name in (".dvcignore", ".dvc/config", ".dvc/.gitignore"):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, home / name)
    # Only the data stages: the model stages appended after them are tested elsewhere.
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    pipeline["stages"] = {name: stage for name, stage in pipeline["stages"].items()
                          if name in DATA_STAGES}
    (home / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    data_yaml = home / "configs" / "data.yaml"
    text = re.sub(r"(?m)^source: .*$", "source: synthetic", data_yaml.read_text())
    text = re.sub(r"(?m)^synthetic: .*$", "synthetic: {n_areas: 30, n_weeks: 105, seed: 5}", text)
    data_yaml.write_text(text)
    (home / ".gitignore").write_text("/artifacts/\n/data/\n/dvc-storage/\n")
    git = ["git", "-c", "user.email=test@example.org", "-c", "user.name=test"]
    _run(["git", "init", "-q"], home)
    _run([*git, "add", "-A"], home)
    _run([*git, "commit", "-qm", "project"], home)
    fetch = ("from crimecast.data.sources import DataSettings, get_source; "
             "s = DataSettings.load(); get_source(s).fetch(s.raw_path())")
    _run([sys.executable, "-c", fetch], home)
    _run([sys.executable, "-m", "dvc", "add", "data"], home)
    first = _run([sys.executable, "-m", "crimecast", "pipeline"], home)
    assert _stages_run(first.stdout) == list(DATA_STAGES)
    return home


def test_second_repro_runs_nothing(dvc_repo: Path):
    again = _run([sys.executable, "-m", "dvc", "repro"], dvc_repo)
    assert _stages_run(again.stdout) == []
    assert "up to date" in again.stdout


def test_graph_parameter_reruns_only_the_graph_stage(dvc_repo: Path):
    config = dvc_repo / "configs" / "data.yaml"
    original = config.read_text()
    config.write_text(re.sub(r"(?m)^  method: \w+", "  method: knn", original))
    try:
        rerun = _run([sys.executable, "-m", "dvc", "repro"], dvc_repo)
        assert _stages_run(rerun.stdout) == ["graph"]
    finally:
        config.write_text(original)
        _run([sys.executable, "-m", "dvc", "repro"], dvc_repo)


def test_failing_stage_makes_the_pipeline_command_fail(dvc_repo: Path):
    config = dvc_repo / "configs" / "data.yaml"
    original = config.read_text()
    config.write_text(re.sub(r"(?m)^  method: \w+", "  method: hexagons", original))
    try:
        failed = _run([sys.executable, "-m", "crimecast", "pipeline", "--stage", "graph"],
                      dvc_repo, check=False)
        assert failed.returncode != 0
        assert "graph.method" in failed.stderr + failed.stdout  # the config error names the key
    finally:
        config.write_text(original)


def test_switching_the_unit_reruns_the_data_stages_and_back_reuses_the_cache(dvc_repo: Path):
    tract_panel = (dvc_repo / "artifacts" / "panel.parquet").read_bytes()
    env_h3 = {**os.environ, "CRIMECAST_DATA__UNITS__KIND": "h3",
              "CRIMECAST_DATA__UNITS__RESOLUTION": "8"}
    saved = dict(os.environ)
    try:
        os.environ.update(env_h3)
        h3_run = _run([sys.executable, "-m", "crimecast", "pipeline"], dvc_repo)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert _stages_run(h3_run.stdout) == list(DATA_STAGES)
    import pandas as pd

    cells = pd.read_parquet(dvc_repo / "artifacts" / "areas.parquet")
    assert (cells["unit"] == "h3r8").all()
    back = _run([sys.executable, "-m", "crimecast", "pipeline"], dvc_repo)
    assert _stages_run(back.stdout) == []  # restored from DVC's run cache, nothing rerun
    assert back.stdout.count("is cached - skipping run") == len(DATA_STAGES)
    assert (dvc_repo / "artifacts" / "panel.parquet").read_bytes() == tract_panel
    # A bare `dvc repro` after an env-only switch stops with the fix, not stale outputs.
    os.environ.update(env_h3)
    try:
        stale = _run([sys.executable, "-m", "dvc", "repro", "--force", "areas"], dvc_repo,
                     check=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert stale.returncode != 0 and "crimecast pipeline" in stale.stdout + stale.stderr


def test_push_then_pull_restores_outputs_offline(dvc_repo: Path):
    _run([sys.executable, "-m", "dvc", "push"], dvc_repo)
    assert any((dvc_repo / "dvc-storage").rglob("*"))
    panel = (dvc_repo / "artifacts" / "panel.parquet").read_bytes()
    shutil.rmtree(dvc_repo / ".dvc" / "cache")
    shutil.rmtree(dvc_repo / "artifacts")
    shutil.rmtree(dvc_repo / "data")
    _run([sys.executable, "-m", "dvc", "pull"], dvc_repo)
    assert (dvc_repo / "artifacts" / "panel.parquet").read_bytes() == panel
    assert (dvc_repo / "data" / "truth.parquet").exists()
    status = _run([sys.executable, "-m", "dvc", "status"], dvc_repo)
    assert "up to date" in status.stdout
