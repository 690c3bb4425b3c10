"""`crimecast cycle` end to end on a small synthetic city, in a throwaway git + DVC repo:
the first cycle trains and reports, a second with no new data trains nothing and says
so, a failed step is named and a rerun resumes at it, and a second concurrent cycle
refuses to start."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
# Small and fast: a cheap model, few tuning trials, a short backtest and monitoring window.
FAST = {"CRIMECAST_TUNING__MODEL": "historical_average", "CRIMECAST_TUNING__TRIALS": "2",
        "CRIMECAST_TUNING__TRACK_TRIALS": "false",
        "CRIMECAST_MODELS__DEFAULT_MODEL": "historical_average",
        "CRIMECAST_EVALUATION__BACKTEST_WEEKS": "8",
        "CRIMECAST_EVALUATION__BOOTSTRAP_DRAWS": "200",
        "CRIMECAST_PROMOTION__BASELINES": '["historical_average"]',
        "CRIMECAST_MONITORING__REPLAY_WEEKS": "2", "CRIMECAST_MONITORING__REFERENCE_WEEKS": "4",
        "CRIMECAST_MONITORING__HTML_REPORT": "false", "CRIMECAST_MONITORING__WORKERS": "1"}


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, **FAST, **extra, "CRIMECAST_HOME": str(home), "PYTHONPATH": str(home),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    env.pop("CRIMECAST_DEBUG", None)
    return env


def _run(args: list[str], home: Path, check: bool = True, **extra: str
         ) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=home, env=_env(home, **extra), capture_output=True,
                            text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n"
                             f"{(result.stdout + result.stderr)[-4000:]}")
    return result


def _cycle(home: Path, *args: str, check: bool = True, **extra: str
           ) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "crimecast", "cycle", *args], home, check, **extra)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project code with a 30-area synthetic source, fetched and `dvc add`ed; no
    pipeline run yet."""
    home = tmp_path_factory.mktemp("cycle") / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("crimecast", "training", "serving", "monitoring", "configs"):
        shutil.copytree(REPO / name, home / name, ignore=ignore)
    for name in ("dvc.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore"):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, home / name)
    data_yaml = home / "configs" / "data.yaml"
    text = re.sub(r"(?m)^source: .*$", "source: synthetic", data_yaml.read_text())
    text = re.sub(r"(?m)^synthetic: .*$", "synthetic: {n_areas: 30, n_weeks: 105, seed: 5}", text)
    data_yaml.write_text(text)
    (home / ".gitignore").write_text("/artifacts/\n/data/\n/dvc-storage/\n/state/\n/reports/\n"
                                     "/workspace/\n")
    git = ["git", "-c", "user.email=test@example.org", "-c", "user.name=test"]
    _run(["git", "init", "-q"], home)
    _run([*git, "add", "-A"], home)
    _run([*git, "commit", "-qm", "project"], home)
    fetch = ("from crimecast.data.sources import DataSettings, get_source; "
             "s = DataSettings.load(); get_source(s).fetch(s.raw_path())")
    _run([sys.executable, "-c", fetch], home)
    _run([sys.executable, "-m", "dvc", "add", "data"], home)
    return home


def _state(home: Path) -> dict:
    return json.loads((home / "state" / "cycle.json").read_text())


def test_cycle_end_to_end_then_a_rerun_trains_nothing_and_says_so(project: Path) -> None:
    dry = _cycle(project, "--dry-run")
    assert "repro    would run" in dry.stdout and not (project / "state" / "cycle.json").exists()

    first = _cycle(project)
    out = first.stdout
    for step in ("[refresh]", "[repro]", "[reload]", "[monitor]", "[report]"):
        assert step in out
    assert "retrained: stages run" in out and "nothing to fetch" in out
    assert "cycle complete" in out and "a new model was trained" in out
    assert (project / "reports" / "index.html").exists()
    assert (project / "artifacts" / "promotion.json").exists()
    state = _state(project)
    assert set(state["done"]) == {"refresh", "repro", "reload", "monitor", "report"}
    assert state["last_trained"] is True

    second = _cycle(project)
    assert "no new data or settings: nothing retrained (every stage up to date)" in second.stdout
    assert "Running stage" not in second.stdout
    for step in ("reload", "monitor", "report"):
        assert f"[{step}] already done for this pipeline state" in second.stdout
    assert "no training (nothing new)" in second.stdout
    assert _state(project)["last_trained"] is False


def test_failed_step_is_named_and_the_rerun_resumes_there(project: Path) -> None:
    state = _state(project)
    state["done"].pop("monitor")
    state["done"].pop("report")
    (project / "state" / "cycle.json").write_text(json.dumps(state))
    failed = _cycle(project, check=False, CRIMECAST_MONITORING__REPLAY_MODEL="no_such_model")
    assert failed.returncode != 0
    assert "cycle failed at step 'monitor'" in failed.stderr
    assert "resumes at 'monitor'" in failed.stderr
    assert _state(project)["failed"]["step"] == "monitor"

    resumed = _cycle(project)
    assert "[reload] already done" in resumed.stdout
    assert "[monitor]\n" in resumed.stdout and "[report]\n" in resumed.stdout
    assert "failed" not in _state(project)


def test_a_second_concurrent_cycle_refuses_to_start(project: Path) -> None:
    hold = ("import time; from pathlib import Path; "
            "from crimecast.lifecycle.cycle import cycle_lock; "
            "ctx = cycle_lock(Path('state/cycle.lock')); ctx.__enter__(); "
            "print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold], cwd=project, env=_env(project),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        refused = _cycle(project, check=False)
        assert refused.returncode == 75
        assert "another cycle is running (pid" in refused.stderr
        assert "[repro]" not in refused.stdout
        assert time.monotonic() - started < 30  # refuses at once, does not wait
    finally:
        holder.kill()
        holder.wait()
    assert _cycle(project).returncode == 0  # the lock went with its holder
