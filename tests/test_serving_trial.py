"""Trial mode: a share of the units assigned at random near the cut-off, reproducible."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from crimecast.forecast.allocation import allocate_units, randomise_near_cutoff
from serving.schemas import AllocateRequest
from serving.settings import AllocationSettings, ServingSettings
from serving.store import ForecastStore, ModelCard

N = 80


def _plan(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    risk = np.random.default_rng(seed).gamma(2.0, size=N)
    units = allocate_units(np.arange(N), risk, risk, np.array(["g"] * N), 40)
    return units.by_area["units"].to_numpy(), risk


def test_same_seed_same_assignment_and_other_seeds_differ() -> None:
    units, risk = _plan()
    first = randomise_near_cutoff(units, risk, 0.25, 0.5, seed=1234)
    again = randomise_near_cutoff(units, risk, 0.25, 0.5, seed=1234)
    assert np.array_equal(first.units, again.units)
    assert np.array_equal(first.randomised, again.randomised)
    others = {tuple(randomise_near_cutoff(units, risk, 0.25, 0.5, seed=s).randomised)
              for s in range(20)}
    assert len(others) > 10


def test_only_band_areas_change_and_the_total_is_kept() -> None:
    units, risk = _plan()
    trial = randomise_near_cutoff(units, risk, 0.25, 0.5, seed=7)
    assert trial.units.sum() == units.sum()
    assert trial.trial_units == 10  # 25 % of 40 units
    assert trial.cutoff == pytest.approx(risk[units > 0].min())
    band = np.zeros(N, bool)
    band[trial.band] = True
    assert (np.abs(risk[band] - trial.cutoff) <= 0.5 * trial.cutoff + 1e-9).all()
    assert np.array_equal(trial.units[~band], units[~band])
    assert set(trial.randomised) <= set(trial.band)
    # Each band area is equally likely: over many seeds every band area is drawn.
    drawn = np.concatenate([randomise_near_cutoff(units, risk, 0.25, 0.5, s).randomised
                            for s in range(200)])
    assert set(drawn) == set(trial.band)


def test_zero_share_changes_nothing() -> None:
    units, risk = _plan()
    trial = randomise_near_cutoff(units, risk, 0.0, 0.5, seed=1)
    assert np.array_equal(trial.units, units) and trial.trial_units == 0


def _store(share: float) -> ForecastStore:
    rng = np.random.default_rng(0)
    areas = [f"a{i:02d}" for i in range(N)]
    rows = [{"area_id": a, "week": pd.Timestamp("2024-01-08"), "category": "violent",
             "horizon": 1, "mean": m, "lower_80": m / 2, "upper_80": m * 2, "lower_95": m / 3,
             "upper_95": m * 3} for a, m in zip(areas, rng.gamma(2.0, size=N), strict=True)]
    table = pd.DataFrame({"land_area_km2": 1.0, "pct_poverty": 20.0,
                          "group": ["x", "y"] * (N // 2)}, index=pd.Index(areas, name="area_id"))
    card = ModelCard(model_name="historical_average", version="3", alias="champion",
                     data_version=None, last_observed_week=date(2024, 1, 1), trained_at=None,
                     backtest_metrics={})
    settings = ServingSettings(allocation=AllocationSettings(trial_share=share,
                                                             trial_tolerance=0.5))
    return ForecastStore(pd.DataFrame(rows), card, table, settings)


def test_allocate_in_trial_mode_records_a_seed_that_reproduces_it() -> None:
    store = _store(0.25)
    answer = store.allocate(AllocateRequest(units=30, horizon=1))
    assert answer.trial is not None and answer.trial.trial_units == 8  # round(0.25 × 30)
    assert sum(a.units for a in answer.allocations) == 30
    assert sum(g.units for g in answer.groups) == 30
    assert set(answer.trial.randomised) <= set(answer.trial.band)
    replay = store.allocate(AllocateRequest(units=30, horizon=1,
                                            trial_seed=answer.trial.seed))
    assert replay.trial == answer.trial
    assert replay.allocations == answer.allocations


def test_allocate_without_trial_mode_has_no_trial() -> None:
    answer = _store(0.0).allocate(AllocateRequest(units=30, horizon=1, trial_seed=5))
    assert answer.trial is None
