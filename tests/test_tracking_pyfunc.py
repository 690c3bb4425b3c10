"""A training run records what it must, and the registered pyfunc serves in a fresh
process that never imports ``training`` (the serving contract)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from crimecast.contracts import CATEGORIES, FORECAST_COLUMNS
from crimecast.data.version import data_version, file_md5
from crimecast.lifecycle.audit import read_audit
from crimecast.lifecycle.gate import PromotionSettings
from crimecast.lifecycle.promotion import promote
from crimecast.lifecycle.registry import model_info, resolve_alias
from crimecast.lifecycle.store import TrackingSettings, mlflow_client
from crimecast.lifecycle.tracking import train_and_register

LOAD_CHAMPION = """
import json, sys
import mlflow, pandas as pd
from crimecast.lifecycle.store import mlflow_client
mlflow_client()
model = mlflow.pyfunc.load_model("models:/crimecast@champion")
table = model.predict(pd.DataFrame({"horizon": [1, 2, 3, 4]}))
two = model.predict(pd.DataFrame({"horizon": [2]}))
print(json.dumps({
    "rows": len(table), "columns": list(table.columns),
    "areas": int(table["area_id"].nunique()), "categories": sorted(table["category"].unique()),
    "weeks": sorted(str(w.date()) for w in table["week"].unique()),
    "horizon_2_rows": len(two), "metadata": model.unwrap_python_model().metadata,
    "training_imported": sorted(m for m in sys.modules if m == "training" or m.startswith("training.")),
}, default=str))
"""


@pytest.mark.slow
def test_registered_champion_serves_full_table_without_importing_training(
        synthetic_city, tracked_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synthetic_project = tracked_project
    monkeypatch.setenv("CRIMECAST_EVALUATION__BACKTEST_WEEKS", "6")
    result = train_and_register("historical_average", synthetic_city.panel, synthetic_city.graph,
                                {"window": 8})
    assert resolve_alias("challenger") == result.version
    # An impossible accuracy bar: refused against the best baseline, which then becomes
    # the first champion (seed_champion_with_baseline) so there is always a model to serve.
    decision = promote(synthetic_city.panel, synthetic_city.graph,
                       settings=PromotionSettings(margins={"poisson_deviance": -0.9,
                                                           "pai": 0.05}))
    assert decision["decision"] == "refused" and decision["reference"].startswith("baseline ")
    baseline = decision["reference"].removeprefix("baseline ")
    champion = model_info("champion")
    assert champion["model_name"] == baseline and champion["version"] != result.version
    assert read_audit()[-1]["alias_changes"] == [
        {"alias": "champion", "from": None, "to": champion["version"]}]
    assert resolve_alias("challenger") == result.version

    client = mlflow_client()
    run = client.get_run(result.run_id)
    assert run.data.tags["data.version"] == result.data_version
    assert run.data.tags["data.panel_md5"] == file_md5(synthetic_project / "artifacts/panel.parquet")
    assert "git.commit" in run.data.tags
    assert run.data.params["model.window"] == "8"
    assert run.data.metrics["overall.poisson_deviance"] > 0
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "evaluation")}
    assert {"evaluation/backtest.csv", "evaluation/forecast_vs_actual.png",
            "evaluation/summary.json"} <= artifacts
    db = synthetic_project / "state" / "mlflow.db"
    assert TrackingSettings.load().resolved_tracking_uri() == f"sqlite:///{db}" and db.exists()

    done = subprocess.run([sys.executable, "-c", LOAD_CHAMPION], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["training_imported"] == []
    assert out["columns"] == list(FORECAST_COLUMNS)
    num_areas = synthetic_city.graph.num_nodes
    assert out["areas"] == num_areas and out["categories"] == sorted(CATEGORIES)
    assert out["rows"] == num_areas * len(CATEGORIES) * 4
    assert out["horizon_2_rows"] == num_areas * len(CATEGORIES)
    last = synthetic_city.panel.last_week
    assert out["weeks"] == [str((last + pd.Timedelta(weeks=h)).date()) for h in (1, 2, 3, 4)]
    meta = out["metadata"]
    assert meta["model_name"] == baseline and meta["run_id"] == champion["run_id"]
    assert meta["data_version"] == result.data_version == champion["data_version"]
    assert meta["last_observed_week"] == str(last.date()) == champion["last_observed_week"]
    assert meta["backtest_metrics"]["overall.poisson_deviance"] == pytest.approx(
        champion["backtest_metrics"]["overall.poisson_deviance"])
    assert "trained_at" in meta


def test_data_version_prefers_dvc_lock_then_file_hash(tmp_project: Path) -> None:
    artifacts = tmp_project / "artifacts"
    artifacts.mkdir()
    (artifacts / "panel.parquet").write_bytes(b"panel bytes")
    (artifacts / "graph.npz").write_bytes(b"graph bytes")
    hashed = data_version()
    assert hashed["panel_md5"] == file_md5(artifacts / "panel.parquet")
    lock = {"schema": "2.0", "stages": {"panel": {"cmd": "python -m training.panel", "outs": [
        {"path": "artifacts/panel.parquet", "md5": "0" * 32, "size": 11}]}}}
    (tmp_project / "dvc.lock").write_text(yaml.safe_dump(lock))
    locked = data_version()
    assert locked["panel_md5"] == "0" * 32
    assert locked["graph_md5"] == hashed["graph_md5"]
    assert locked["version"] != hashed["version"] and len(locked["version"]) == 12
