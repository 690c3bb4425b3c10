"""Drift detection and per-group numbers on the synthetic city (real Evidently reports)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crimecast.contracts import Panel
from crimecast.forecast.models import get_model
from monitoring import disparity, drift
from monitoring.frames import replay_frames
from monitoring.settings import MonitoringSettings

REFERENCE_WEEKS = 10


def _replay(panel: Panel, graph, weeks: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    usable = [w for w in panel.weeks if w not in set(panel.outage_weeks())]
    monitored, reference = usable[-weeks:], usable[-(weeks + REFERENCE_WEEKS):-weeks]
    frame = replay_frames(panel, graph, reference + monitored,
                          lambda: get_model("historical_average", window=8))
    return (frame[frame["week"].isin(monitored)].reset_index(drop=True),
            frame[frame["week"].isin(reference)].reset_index(drop=True))


@pytest.fixture(scope="module")
def settings() -> MonitoringSettings:
    return MonitoringSettings()


@pytest.fixture(scope="module")
def unshifted(synthetic_city):
    return _replay(synthetic_city.panel, synthetic_city.graph)


def _last_week(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["week"] == frame["week"].max()]


def test_unshifted_copy_is_not_flagged_as_drift(unshifted, settings):
    current, reference = unshifted
    _, result = drift.drift_report(_last_week(current), reference, settings.drift)
    assert not result.dataset_drift
    assert result.drift_share < settings.drift.drift_share
    assert set(result.scores) >= {"lag_1", "mean_4", "mean_13"}


def test_count_shift_is_flagged_as_drift(synthetic_city, settings):
    # Recorded counts triple over the last 14 weeks (e.g. a recording-practice change):
    # every lag input moves, and so do the forecasts built on them.
    panel = synthetic_city.panel
    counts = panel.counts.copy()
    shifted_weeks = panel.weeks[-14:]
    inside = counts["week"].isin(shifted_weeks)
    counts.loc[inside, "count"] = counts.loc[inside, "count"] * 3 + 1
    current, reference = _replay(Panel(counts), synthetic_city.graph)
    _, result = drift.drift_report(_last_week(current), reference, settings.drift)
    assert result.dataset_drift
    assert {"lag_1", "mean_4", "mean_13"} <= set(result.drifted_columns)
    assert result.prediction_drifted


def test_covariate_shift_is_flagged_separately_from_the_drift_share(unshifted, settings):
    current, reference = unshifted
    week = _last_week(current).copy()
    # A census refresh that rescales the area covariates (wrong units, new boundaries).
    for column in ("population", "median_income", "pct_poverty"):
        week[column] = week[column] * 1.8 + week[column].std()
    _, result = drift.drift_report(week, reference, settings.drift)
    assert {"population", "median_income", "pct_poverty"} <= set(result.drifted_columns)
    assert set(result.static_drifted) == {"population", "median_income", "pct_poverty"}
    # Static census inputs stay out of the share of drifted (changing) inputs.
    assert result.drift_share < settings.drift.drift_share and not result.dataset_drift


def test_group_numbers_match_plain_pandas(unshifted, settings):
    current, _ = unshifted
    table = disparity.group_table(current, settings.disparity).set_index("group")
    errors = (current["target"] - current["prediction"]).abs()
    expected_mae = errors.groupby(current["group"]).mean()
    pd.testing.assert_series_equal(table["mae"].sort_index(), expected_mae.sort_index(),
                                   check_names=False)
    risk = current.groupby("group")["prediction"].sum()
    np.testing.assert_allclose(table["risk_share"].sort_index(), (risk / risk.sum()).sort_index())
    crime = current.groupby("group")["target"].sum()
    np.testing.assert_allclose(table["crime_share"].sort_index(),
                               (crime / crime.sum()).sort_index())
    areas = current.drop_duplicates("area_id").groupby("group").size()
    np.testing.assert_array_equal(table["areas"].sort_index(), areas.sort_index())
    assert table["flagged_share"].sum() == pytest.approx(1.0)


def test_evidently_mae_equals_crimecast_mae_for_one_week(unshifted, settings):
    current, reference = unshifted
    week = _last_week(current)
    _, result = drift.drift_report(week, reference, settings.drift)
    assert result.mae == pytest.approx(float((week["target"] - week["prediction"]).abs().mean()))
