"""Outage detector: a planted recording gap is flagged, ordinary noise is not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crimecast.data.quality import daily_counts, detect_outages
from crimecast.data.settings import QualitySettings

START = pd.Timestamp("2024-01-01")  # a Monday


def _series(mean: float, weeks: int, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    days = pd.date_range(START, periods=7 * weeks, freq="D")
    weekday_effect = np.where(days.dayofweek >= 5, 0.85, 1.0)  # quieter weekends
    return pd.Series(rng.poisson(mean * weekday_effect), index=days)


def test_planted_gap_flags_its_days_and_week() -> None:
    daily = _series(400, 20)
    gap = pd.Timestamp("2024-03-13")  # a Wednesday in week 2024-03-11
    daily[gap] = 0
    daily[gap + pd.Timedelta(days=1)] = 60  # the feed only partly back the next day
    report = detect_outages(daily, QualitySettings())
    assert report.days == [gap, gap + pd.Timedelta(days=1)]
    assert report.weeks == [pd.Timestamp("2024-03-11")]
    assert report.as_json()["outage_weeks"] == ["2024-03-11"]


def test_week_with_low_volume_throughout_is_flagged_without_an_empty_day() -> None:
    daily = _series(300, 16, seed=1)
    week = pd.date_range("2024-02-12", periods=7, freq="D")
    daily[week] = (daily[week] * 0.5).astype(int)  # half of the records missing all week
    report = detect_outages(daily, QualitySettings())
    assert pd.Timestamp("2024-02-12") in report.weeks


def test_noise_and_sparse_counts_raise_no_flags() -> None:
    assert detect_outages(_series(400, 30, seed=2), QualitySettings()).weeks == []
    sparse = _series(3, 30, seed=3)
    sparse[pd.Timestamp("2024-04-10")] = 0  # a zero day is ordinary at 3 a day
    report = detect_outages(sparse, QualitySettings())
    assert report.days == [] and report.weeks == []


def test_partial_edge_weeks_are_flagged() -> None:
    stamps = pd.Series(pd.date_range("2024-01-03 08:00", "2024-03-27 20:00", freq="15min"))
    daily = daily_counts(stamps)  # Wednesday to Wednesday: both edge weeks incomplete
    report = detect_outages(daily, QualitySettings())
    assert report.partial_weeks == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-03-25")]
    assert report.weeks == report.partial_weeks and report.days == []
