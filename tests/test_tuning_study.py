"""Optuna tuning on the embedded SQLite storage: trials become child MLflow runs, the
best trial lands in artifacts/best_params.json, and per-epoch losses feed the pruner."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from crimecast.lifecycle.store import mlflow_client
from crimecast.lifecycle.tuning import TuningSettings, tune


@pytest.mark.slow
def test_tune_stage_writes_best_of_all_trials_and_logs_child_runs(tracked_project: Path) -> None:
    from training import tune as stage

    payload = stage.run(trials=3, model="historical_average", study="ha-study", progress=False)

    study = optuna.load_study(study_name="ha-study",
                              storage=TuningSettings.load().resolved_storage())
    values = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) == 3 and payload["value"] == min(values)
    assert json.loads((tracked_project / "artifacts/best_params.json").read_text()) == payload
    assert set(payload["params"]) == {"window"}
    runs = mlflow_client().search_runs(
        [mlflow_client().get_experiment_by_name("crimecast").experiment_id],
        filter_string="tags.`crimecast.stage` = 'tune-trial'")
    assert len(runs) == 3
    assert all("mlflow.parentRunId" in r.data.tags for r in runs)
    assert {r.data.params["window"] for r in runs} == {str(t.params["window"]) for t in study.trials}


def test_median_pruner_stops_a_trial_worse_than_earlier_ones(tmp_project: Path) -> None:
    settings = TuningSettings.load(pruner={"n_startup_trials": 2, "n_warmup_steps": 1})
    levels = iter([1.0, 1.2, 9.0])

    def objective(params: dict, report) -> float:
        level = next(levels)
        for epoch in range(5):
            report(epoch, level)
        return level

    result = tune(None, None, settings=settings, trials=3, model="cheap", study_name="prune",
                  objective_fn=objective, track=False, progress=False)
    study = optuna.load_study(study_name="prune", storage=settings.resolved_storage())
    states = [t.state for t in study.trials]
    assert states[:2] == [optuna.trial.TrialState.COMPLETE] * 2
    assert states[2] == optuna.trial.TrialState.PRUNED
    assert study.trials[2].last_step == 1  # stopped right after the warm-up epoch
    assert result.best_value == 1.0 and result.trials_pruned == 1


@pytest.mark.slow
def test_gnn_reports_each_epoch_validation_loss_to_the_study(synthetic_project: Path) -> None:
    # Overrides merge into configs/tuning.yaml's gnn space: pin the costly dimensions.
    settings = TuningSettings.load(search_space={"gnn": {
        "hidden": {"type": "categorical", "choices": [8]},
        "lags": {"type": "categorical", "choices": [4]},
        "epochs": {"type": "categorical", "choices": [3]}}})
    from crimecast.contracts import AreaGraph, Panel

    result = tune(Panel.load(), AreaGraph.load(), settings=settings, trials=1, model="gnn",
                  study_name="gnn", base_params={"patience": 3, "train_weeks": 40},
                  track=False, progress=False)
    trial = optuna.load_study(study_name="gnn", storage=settings.resolved_storage()).trials[0]
    assert sorted(trial.intermediate_values) == [0, 1, 2]
    assert result.best_params["hidden"] == 8 and result.best_params["epochs"] == 3
