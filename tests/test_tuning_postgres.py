"""Worker PROCESSES share one Optuna study on PostgreSQL (CRIMECAST_TEST_PG_URL), and any
number of them can start at the same moment on a fresh database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest

PG_URL = os.environ.get("CRIMECAST_TEST_PG_URL")

pytestmark = pytest.mark.postgres

if not PG_URL and os.environ.get("CI") == "true":
    raise RuntimeError("CI=true but CRIMECAST_TEST_PG_URL is not set: the PostgreSQL tests "
                       "must run in CI (see .ci/run and scripts/start-postgres.sh)")


@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="CRIMECAST_TEST_PG_URL not set (local run without PostgreSQL)")
def test_two_worker_processes_share_one_postgres_study(synthetic_project: Path) -> None:
    study = f"crimecast-test-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "CRIMECAST_TUNING__TRACK_TRIALS": "false"}
    command = [sys.executable, "-m", "training.tune", "--trials", "4", "--model",
               "historical_average", "--storage", PG_URL, "--study", study]
    workers = [subprocess.Popen(command, env=env, cwd=synthetic_project, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(2)]
    try:
        outputs = [w.communicate(timeout=240) for w in workers]
        for worker, (_, err) in zip(workers, outputs):
            assert worker.returncode == 0, err[-3000:]
        shared = optuna.load_study(study_name=study, storage=PG_URL)
        trials = shared.get_trials(deepcopy=False)
        numbers = [t.number for t in trials]
        assert sorted(numbers) == list(range(8)), "8 trials, no duplicate numbers"
        assert len({t.user_attrs["worker"] for t in trials}) == 2, "both workers ran trials"
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert shared.best_value == min(t.value for t in complete)
        best = json.loads((synthetic_project / "artifacts" / "best_params.json").read_text())
        assert best["study"] == study and best["value"] == shared.best_value
        assert best["params"] == shared.best_params
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        try:
            optuna.delete_study(study_name=study, storage=PG_URL)
        except KeyError:
            pass


@contextmanager
def fresh_database() -> Iterator[str]:
    """A newly created, empty PostgreSQL database on the test server; dropped after."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"crimecast_race_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="CRIMECAST_TEST_PG_URL not set (local run without PostgreSQL)")
@pytest.mark.parametrize("attempt", range(5))
def test_three_workers_started_together_on_a_fresh_database_all_succeed(
        synthetic_project: Path, attempt: int) -> None:
    env = {**os.environ, "CRIMECAST_TUNING__TRACK_TRIALS": "false"}
    with fresh_database() as url:
        command = [sys.executable, "-m", "training.tune", "--trials", "1", "--model",
                   "historical_average", "--storage", url, "--study", "race"]
        workers = [subprocess.Popen(command, env=env, cwd=synthetic_project, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                   for _ in range(3)]
        try:
            outputs = [w.communicate(timeout=240) for w in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
        for worker, (_, err) in zip(workers, outputs):
            assert worker.returncode == 0, err[-3000:]
        trials = optuna.load_study(study_name="race", storage=url).get_trials(deepcopy=False)
        assert sorted(t.number for t in trials) == [0, 1, 2]
