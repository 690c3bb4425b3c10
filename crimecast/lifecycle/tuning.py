"""Hyperparameter search with Optuna, every trial tracked as a child MLflow run.

The study (TPE sampler with a fixed seed, median pruner) lives in an Optuna RDB storage:
SQLite at ``<home>/state/optuna.db`` by default, or PostgreSQL by URL alone
(``postgresql+psycopg://...``) so several worker processes, on one machine or many,
share one study: each ``crimecast tune`` process asks the storage for the next trial.

Objective: mean Poisson deviance of rolling-origin forecasts (horizons 1-4) over a
validation window that ends where the promotion backtest begins, so tuning never sees the
weeks that later judge the model. Models with an ``on_epoch(epoch, val_loss)`` callback
(the GNN) report their per-epoch validation loss to the pruner, which stops unpromising
trials early (``optuna.TrialPruned``).
"""

from __future__ import annotations

import fcntl
import math
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from crimecast.config import ConcernSettings
from crimecast.contracts import HORIZONS, AreaGraph, Panel
from crimecast.data.panel import panel_arrays
from crimecast.data.version import data_version
from crimecast.forecast.metrics import poisson_deviance
from crimecast.forecast.models import get_model
from crimecast.forecast.settings import EvaluationSettings
from crimecast.lifecycle.provenance import git_commit
from crimecast.lifecycle.store import mlflow_client
from crimecast.paths import state_sqlite_url

#: Identifies this process among the workers sharing a study (stored on each trial).
WORKER = f"{socket.gethostname()}:{os.getpid()}"


class ParamSpec(BaseModel):
    """One hyperparameter's search range: ``int``/``float`` with ``low``/``high``
    (``log`` for a log scale) or ``categorical`` with ``choices``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> ParamSpec:
        if self.type == "categorical" and not self.choices:
            raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        if self.type != "categorical" and (self.low is None or self.high is None
                                           or self.low > self.high):
            raise ValueError(f"a {self.type} parameter needs 'low' <= 'high'")
        return self


class PrunerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    n_startup_trials: int = 3
    n_warmup_steps: int = 5


class TuningSettings(ConcernSettings):
    """configs/tuning.yaml: the study, its storage, sampler, pruner and search space."""

    concern: ClassVar[str] = "tuning"
    model: str = "gnn"
    trials: int = 8
    storage: str = ""
    study: str = ""
    seed: int = 42
    pruner: PrunerSettings = PrunerSettings()
    track_trials: bool = True
    search_space: dict[str, dict[str, ParamSpec]] = Field(default_factory=dict)

    def resolved_storage(self) -> str:
        """The configured storage URL, or SQLite at ``<home>/state/optuna.db``."""
        return self.storage or state_sqlite_url("optuna.db")

    def space_for(self, model: str) -> dict[str, ParamSpec]:
        if model not in self.search_space:
            raise ValueError(f"configs/tuning.yaml: no search_space for model '{model}'; "
                             f"have {sorted(self.search_space)}")
        return self.search_space[model]


def suggest(trial: Any, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Draw one value per parameter of ``space`` from an Optuna ``trial``."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            params[name] = trial.suggest_categorical(name, spec.choices)
        elif spec.type == "int":
            params[name] = trial.suggest_int(name, int(spec.low), int(spec.high),
                                             step=int(spec.step or 1), log=spec.log)
        else:
            params[name] = trial.suggest_float(name, spec.low, spec.high, step=spec.step,
                                               log=spec.log)
    return params


def tuning_cutoff(panel: Panel, holdout_weeks: int) -> pd.Timestamp:
    """The last week tuning may see: ``holdout_weeks`` before the panel's end (the
    promotion backtest's window)."""
    weeks = panel.weeks
    if len(weeks) <= holdout_weeks:
        raise ValueError(f"panel has {len(weeks)} weeks; tuning needs more than the "
                         f"{holdout_weeks} held out for the backtest")
    return pd.Timestamp(weeks[-holdout_weeks - 1])


def validation_deviance(forecaster: Any, panel: Panel, graph: AreaGraph,
                        validation_weeks: int, horizons: tuple[int, ...] = HORIZONS) -> float:
    """Fit ``forecaster`` on ``panel`` minus its last ``validation_weeks`` weeks, then
    forecast ``horizons`` from every origin in that window (no refit) and return the mean
    Poisson deviance over all (area, week, category) targets inside the panel, outage
    weeks excluded."""
    weeks = panel.weeks
    if len(weeks) <= validation_weeks + 1:
        raise ValueError(f"panel has {len(weeks)} weeks, too few for a "
                         f"{validation_weeks}-week validation window")
    data = panel_arrays(panel, graph)
    first_origin = len(data.weeks) - validation_weeks - 1
    forecaster.fit(panel.until(data.weeks[first_origin]), graph)
    actual, expected = [], []
    for origin in range(first_origin, len(data.weeks) - 1):
        usable = [h for h in horizons if origin + h < len(data.weeks)
                  and not data.outage[origin + h]]
        if not usable:
            continue
        mean = forecaster.predict_mean(panel.until(data.weeks[origin]), graph, tuple(usable))
        for j, h in enumerate(usable):
            expected.append(mean[:, j, :])
            actual.append(data.counts[:, origin + h, :])
    if not actual:
        raise ValueError("validation window has no non-outage target weeks")
    return poisson_deviance(np.stack(actual), np.stack(expected))


@dataclass
class TuneResult:
    """The outcome of a tuning session: the study's best trial over ALL workers."""

    model: str
    study: str
    storage: str
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    trials_total: int
    trials_complete: int
    trials_pruned: int

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "study": self.study, "params": self.best_params,
                "value": self.best_value, "trial": self.best_trial,
                "trials_total": self.trials_total, "trials_complete": self.trials_complete,
                "trials_pruned": self.trials_pruned}


def default_study_name(settings: TuningSettings, model: str) -> str:
    """``settings.study``, else ``crimecast-<model>-<data version>``: a new dataset starts a
    new study (old trial values were scored on other data), while every worker on the
    same data joins the same one."""
    if settings.study:
        return settings.study
    return f"crimecast-{model}-{data_version()['version']}"


def create_study(settings: TuningSettings, storage: str | None = None,
                 study_name: str | None = None) -> Any:
    """Open (or create) the study in its RDB storage with the seeded TPE sampler and the
    median pruner. Safe to call from any number of processes at once, on a fresh database
    too: creating the schema and the study happens under :func:`storage_lock`."""
    import optuna

    url = storage or settings.resolved_storage()
    sampler = optuna.samplers.TPESampler(seed=settings.seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=settings.pruner.n_startup_trials,
                                         n_warmup_steps=settings.pruner.n_warmup_steps)
    with storage_lock(url):
        # RDBStorage creates Optuna's tables when they are missing; two processes doing it
        # at once on PostgreSQL collide in the catalogue (UniqueViolation on
        # pg_type_typname_nsp_index), hence the lock around it and the study creation.
        rdb = optuna.storages.RDBStorage(url)
        return optuna.create_study(study_name=study_name or settings.study, storage=rdb,
                                   sampler=sampler, pruner=pruner, direction="minimize",
                                   load_if_exists=True)


#: Key of the PostgreSQL advisory lock that serialises Optuna schema/study creation.
_PG_LOCK_KEY = 0x43524D43  # "CRMC"


@contextmanager
def storage_lock(url: str) -> Iterator[None]:
    """Hold a lock that every worker of ``url`` takes before it creates Optuna's schema or
    the study: a PostgreSQL session advisory lock, or an ``flock`` on ``<db>.lock`` next
    to a SQLite file. Other databases get no lock (create workers one at a time there)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                       {"key": _PG_LOCK_KEY})
        finally:
            engine.dispose()
    elif parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        lock_path = Path(f"{parsed.database}.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield


def summarize(study: Any, model: str, storage: str) -> TuneResult:
    """The best trial of ``study`` over every worker's trials."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ValueError(f"study '{study.study_name}' has no completed trial yet")
    best = study.best_trial
    return TuneResult(model=model, study=study.study_name, storage=_redact(storage),
                      best_params=dict(best.params), best_value=float(best.value),
                      best_trial=best.number, trials_total=len(trials),
                      trials_complete=len(complete),
                      trials_pruned=sum(t.state == optuna.trial.TrialState.PRUNED for t in trials))


def _redact(url: str) -> str:
    """A storage URL without its password (for logs and artifacts)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a SQLAlchemy URL: keep as is
        return url


def tune(
    panel: Panel | None,
    graph: AreaGraph | None,
    *,
    settings: TuningSettings | None = None,
    trials: int | None = None,
    model: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    evaluation: EvaluationSettings | None = None,
    base_params: dict[str, Any] | None = None,
    objective_fn: Callable[[dict[str, Any], Callable[[int, float], None]], float] | None = None,
    track: bool | None = None,
    progress: bool = True,
) -> TuneResult:
    """Run ``trials`` trials of the study (joining it if other workers already run it).

    Each trial draws parameters from the model's search space over ``base_params``
    (configs/models.yaml) and scores :func:`validation_deviance` over the
    ``evaluation.validation_weeks`` weeks right before the backtest window
    (``evaluation.backtest_weeks``, held out; default ``configs/evaluation.yaml``). It is logged as a child MLflow run of one
    parent run per call (when ``track``, default ``settings.track_trials``).
    ``objective_fn(params, report)`` replaces the model-based objective
    (``report(step, value)`` feeds the pruner). Returns the best trial over all workers' trials.
    """
    import optuna

    settings = settings or TuningSettings.load()
    track = settings.track_trials if track is None else track
    model = model or settings.model
    storage_url = storage or settings.resolved_storage()
    study = create_study(settings, storage_url, study_name or default_study_name(settings, model))
    space = (settings.space_for(model)
             if objective_fn is None or model in settings.search_space else {})
    if objective_fn is None and (panel is None or graph is None):
        raise ValueError("tune() needs a panel and a graph unless objective_fn is given")
    evaluation = evaluation or EvaluationSettings.load()
    if panel is not None:  # the windows the backtest uses too (adapted to a short history)
        evaluation, _ = evaluation.for_history(len(panel.weeks))
    cutoff_panel = (panel.until(tuning_cutoff(panel, evaluation.backtest_weeks))
                    if panel is not None else panel)
    n_trials = trials if trials is not None else settings.trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    if track:
        _start_parent_run(study.study_name, model, storage_url, settings, evaluation)
    status = "FAILED"
    try:
        def objective(trial: optuna.Trial) -> float:
            params = {**(base_params or {}), **suggest(trial, space)}
            trial.set_user_attr("worker", WORKER)
            reported: list[tuple[int, float]] = []

            def report(step: int, value: float) -> None:
                reported.append((int(step), float(value)))
                trial.report(float(value), step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {step} (val loss {value:.4f})")

            state, value = "COMPLETE", math.nan
            try:
                if objective_fn is not None:
                    value = float(objective_fn(params, report))
                else:
                    value = _model_objective(model, params, cutoff_panel, graph,
                                             evaluation, report)
                return value
            except optuna.TrialPruned:
                state = "PRUNED"
                raise
            except Exception:
                state = "FAIL"
                raise
            finally:
                if track:
                    _log_trial(trial.number, params, value, state, reported)

        study.optimize(objective, n_trials=n_trials, show_progress_bar=progress,
                       catch=(ValueError, RuntimeError), gc_after_trial=True)
        result = summarize(study, model, storage_url)
        if track:
            import mlflow

            mlflow.log_metric("best_value", result.best_value)
            mlflow.log_dict(result.as_dict(), "best_params.json")
        status = "FINISHED"
        return result
    finally:
        if track:
            import mlflow

            mlflow.end_run(status=status)


def _model_objective(model: str, params: dict[str, Any], panel: Panel, graph: AreaGraph,
                     evaluation: EvaluationSettings,
                     report: Callable[[int, float], None]) -> float:
    forecaster = get_model(model, **(params or {}))
    if "on_epoch" in forecaster.get_params() or hasattr(forecaster, "on_epoch"):
        forecaster.on_epoch = report
    return validation_deviance(forecaster, panel, graph, evaluation.validation_weeks,
                               tuple(evaluation.horizons))


def _start_parent_run(study: str, model: str, storage: str, settings: TuningSettings,
                      evaluation: EvaluationSettings) -> None:
    import mlflow


    mlflow_client()
    mlflow.start_run(run_name=f"tune-{study}", tags={
        "crimecast.stage": "tune", "model.name": model, "optuna.study": study,
        "optuna.storage": _redact(storage), "git.commit": git_commit()})
    mlflow.log_params({"tuning.seed": settings.seed,
                       "evaluation.validation_weeks": evaluation.validation_weeks,
                       "evaluation.backtest_weeks": evaluation.backtest_weeks,
                       "tuning.pruner.n_startup_trials": settings.pruner.n_startup_trials,
                       "tuning.pruner.n_warmup_steps": settings.pruner.n_warmup_steps})


def _log_trial(number: int, params: dict[str, Any], value: float, state: str,
               reported: list[tuple[int, float]]) -> None:
    """One child MLflow run per trial: its params, value (when complete), per-epoch
    validation losses and final state."""
    import mlflow

    with mlflow.start_run(run_name=f"trial-{number}", nested=True,
                          tags={"crimecast.stage": "tune-trial", "optuna.trial": str(number),
                                "optuna.state": state}):
        mlflow.log_params(dict(params))
        if math.isfinite(value):
            mlflow.log_metric("validation_poisson_deviance", value)
        for step, loss in reported:
            mlflow.log_metric("epoch_val_loss", loss, step=step)
