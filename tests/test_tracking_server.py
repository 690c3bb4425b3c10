"""Training against a real ``mlflow server`` (tracking URI from the environment): runs,
artifacts and the registry all go through HTTP."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crimecast.lifecycle.registry import model_info, resolve_alias
from crimecast.lifecycle.store import TrackingSettings
from crimecast.lifecycle.tracking import train_and_register
from crimecast.localserver import free_port, stop_process_tree, wait_until_ready


@pytest.fixture
def mlflow_server(tmp_path: Path, mlflow_template: Path):
    """``mlflow server`` on a free 127.0.0.1 port with its own SQLite store and proxied
    artifact directory; yields its URL, stops it afterwards."""
    store = tmp_path / "server" / "mlflow.db"
    store.parent.mkdir()
    shutil.copy(mlflow_template, store)
    port = free_port()
    log = open(tmp_path / "server" / "server.log", "w")  # noqa: SIM115  (open while it runs)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
         f"sqlite:///{store}", "--artifacts-destination", str(tmp_path / "server" / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path / "server",
        start_new_session=True)  # its own process group: the server forks workers
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/health", server, tmp_path / "server" / "server.log",
                         "mlflow server")
        yield url
    finally:
        stop_process_tree(server)
        log.close()


@pytest.mark.slow
def test_training_logs_and_registers_through_tracking_server(
        synthetic_city, synthetic_project: Path, mlflow_server: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRIMECAST_TRACKING__TRACKING_URI", mlflow_server)
    monkeypatch.setenv("CRIMECAST_TRACKING__LOG_MAP", "false")
    monkeypatch.setenv("CRIMECAST_EVALUATION__BACKTEST_WEEKS", "4")
    assert TrackingSettings.load().resolved_tracking_uri() == mlflow_server

    result = train_and_register("historical_average", synthetic_city.panel,
                                synthetic_city.graph, {"window": 4})

    assert resolve_alias("challenger") == result.version
    info = model_info("challenger")
    assert info["run_id"] == result.run_id and info["backtest_metrics"]
    assert not (synthetic_project / "state" / "mlflow.db").exists(), "nothing went to SQLite"
    # Artifacts were proxied by the server into its --artifacts-destination.
    assert any((synthetic_project.parent / "server" / "artifacts").rglob("MLmodel"))
