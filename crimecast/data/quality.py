"""Data quality: find days and weeks where the source itself went quiet (an outage).

A recording outage looks like a crime drop; training on it teaches the model a fake dip
and evaluating on it punishes honest forecasts. The detector compares each day with the
median of the same weekday in the surrounding weeks and each week with the median of its
neighbouring weeks, and flags large, statistically implausible shortfalls (see
:class:`crimecast.data.sources.base.QualitySettings`). Weeks only partly covered by the data
(the first and last weeks of the snapshot) are flagged too, since their counts are
incomplete. Philadelphia's 2025-03-10 (no records at all, and a fraction of normal volume
on the days around it) is the case this was written for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import poisson

from crimecast.data.settings import QualitySettings


@dataclass(frozen=True)
class OutageReport:
    """Flagged dates: ``days`` (local dates) and ``weeks`` (Mondays), both sorted;
    ``partial_weeks`` is the subset of ``weeks`` only partly covered by the data."""

    days: list[pd.Timestamp]
    weeks: list[pd.Timestamp]
    partial_weeks: list[pd.Timestamp]

    def as_json(self) -> dict[str, list[str]]:
        return {
            "outage_days": [d.date().isoformat() for d in self.days],
            "outage_weeks": [w.date().isoformat() for w in self.weeks],
            "partial_weeks": [w.date().isoformat() for w in self.partial_weeks],
        }


def daily_counts(local_dates: pd.Series) -> pd.Series:
    """Incidents per local calendar day, every day from first to last included (zeros too).

    ``local_dates``: tz-naive datetimes (any time of day). Returns a Series indexed by day.
    """
    days = pd.DatetimeIndex(local_dates).normalize()
    counts = pd.Series(1, index=days).groupby(level=0).sum()
    if counts.empty:
        return counts.astype("int64")
    full = pd.date_range(counts.index.min(), counts.index.max(), freq="D")
    return counts.reindex(full, fill_value=0).astype("int64")


def _neighbour_median(series: pd.Series, step: int, window: int) -> pd.Series:
    """Median of ``series`` shifted by ±step, ±2·step, ... ±window·step (itself excluded)."""
    shifted = [series.shift(k * step) for k in range(-window, window + 1) if k != 0]
    return pd.concat(shifted, axis=1).median(axis=1, skipna=True)


def _shortfall(count: pd.Series, baseline: pd.Series, ratio: float, alpha: float) -> pd.Series:
    """True where ``count`` < ratio·baseline and P(X ≤ count | Poisson(baseline)) < alpha."""
    base = baseline.fillna(0).to_numpy()
    improbable = poisson.cdf(count.to_numpy(), np.maximum(base, 1e-9)) < alpha
    return pd.Series((count.to_numpy() < ratio * base) & improbable & (base > 0),
                     index=count.index)


def detect_outages(daily: pd.Series, settings: QualitySettings) -> OutageReport:
    """Flag outage days and weeks in a daily count series (see module docstring).

    ``daily``: counts indexed by consecutive local days (as from :func:`daily_counts`).
    """
    if daily.empty:
        return OutageReport([], [], [])
    window = settings.window_weeks
    day_baseline = _neighbour_median(daily.astype(float), 7, window)
    bad_days = _shortfall(daily, day_baseline, settings.day_ratio, settings.alpha)

    monday = daily.index - pd.to_timedelta(daily.index.dayofweek, unit="D")
    weekly = daily.groupby(monday).sum()
    days_covered = daily.groupby(monday).size()
    partial = days_covered < 7
    # Baseline from complete weeks only, so a partial edge week does not drag others down.
    week_baseline = _neighbour_median(weekly.astype(float).where(~partial), 1, window)
    low_weeks = _shortfall(weekly, week_baseline, settings.week_ratio, settings.alpha)
    holds_bad_day = bad_days.groupby(monday).any()
    flagged = low_weeks | holds_bad_day | partial
    return OutageReport(
        days=list(bad_days.index[bad_days.to_numpy()]),
        weeks=list(weekly.index[flagged.to_numpy()]),
        partial_weeks=list(weekly.index[partial.to_numpy()]),
    )
