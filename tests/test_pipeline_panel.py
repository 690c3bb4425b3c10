"""The weekly panel: zero rows, full weeks only, totals that match the incidents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crimecast.contracts import CATEGORIES, ContractError, Panel
from crimecast.data.panel import build_panel, full_weeks, panel_arrays


def incidents_frame(times: list[str], areas: list[str], categories: list[str]) -> pd.DataFrame:
    occurred = pd.to_datetime(pd.Series(times)).dt.tz_localize("America/New_York")
    local = occurred.dt.tz_localize(None)
    week = local.dt.normalize() - pd.to_timedelta(local.dt.dayofweek, unit="D")
    return pd.DataFrame({"occurred_at": occurred, "week": week, "area_id": areas,
                         "category": categories})


def test_full_weeks_drop_partial_first_and_last_weeks():
    # Wed 2024-01-03 … Sat 2024-02-03: first full week starts Mon 01-08, last ends Sun 01-28.
    weeks = full_weeks(pd.Timestamp("2024-01-03"), pd.Timestamp("2024-02-03"))
    assert weeks[0] == pd.Timestamp("2024-01-08")
    assert weeks[-1] == pd.Timestamp("2024-01-22")
    # Data from a Monday to a Sunday keeps both ends.
    weeks = full_weeks(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-28"))
    assert list(weeks) == list(pd.date_range("2024-01-01", "2024-01-22", freq="7D"))


def test_panel_has_a_zero_row_for_every_empty_cell():
    incidents = incidents_frame(
        ["2024-01-01 10:00", "2024-01-09 23:59", "2024-01-21 12:00"],
        ["a", "a", "b"], ["violent", "property", "other"])
    panel = build_panel(incidents, ["a", "b", "c"], categories=CATEGORIES)
    assert len(panel) == 3 * 3 * len(CATEGORIES)  # 3 areas × 3 weeks × 3 categories
    assert (panel["count"] == 0).sum() == len(panel) - 3
    cell = panel.set_index(["area_id", "week", "category"])["count"]
    assert cell[("c", pd.Timestamp("2024-01-08"), "violent")] == 0
    assert cell[("a", pd.Timestamp("2024-01-08"), "property")] == 1


def test_panel_totals_equal_valid_incidents_in_full_weeks():
    rng = np.random.default_rng(0)
    n = 5000
    times = pd.Timestamp("2024-01-03") + pd.to_timedelta(rng.integers(0, 60 * 24 * 3600, n), "s")
    incidents = incidents_frame(times.strftime("%Y-%m-%d %H:%M:%S").tolist(),
                                rng.choice(["a", "b", "c", "d"], n).tolist(),
                                rng.choice(list(CATEGORIES), n).tolist())
    panel = build_panel(incidents, ["a", "b", "c", "d"], categories=CATEGORIES)
    weeks = pd.DatetimeIndex(panel["week"].unique())
    in_full_weeks = incidents["week"].isin(weeks)
    assert panel["count"].sum() == in_full_weeks.sum()
    assert in_full_weeks.sum() < n  # the partial first and last weeks were left out
    by_area = incidents[in_full_weeks].groupby("area_id").size()
    assert panel.groupby("area_id")["count"].sum().equals(by_area)


def test_outage_weeks_are_flagged_on_every_row_of_the_week():
    incidents = incidents_frame(["2024-01-01 10:00", "2024-01-20 10:00"], ["a", "a"],
                                ["violent", "violent"])
    panel = build_panel(incidents, ["a", "b"], outage_weeks=["2024-01-08"],
                        categories=CATEGORIES)
    flagged = panel.loc[panel["outage"], "week"]
    assert set(flagged) == {pd.Timestamp("2024-01-08")}
    assert len(flagged) == 2 * len(CATEGORIES)
    assert Panel(panel).outage_weeks().tolist() == [pd.Timestamp("2024-01-08")]


def test_incidents_of_unknown_areas_are_not_counted():
    incidents = incidents_frame(["2024-01-02 10:00", "2024-01-03 10:00"], ["a", "zz"],
                                ["violent", "violent"])
    panel = build_panel(incidents, ["a"], weeks=pd.DatetimeIndex(["2024-01-01"]))
    assert panel["count"].sum() == 1


def test_missing_columns_are_named():
    with pytest.raises(ContractError, match="category"):
        build_panel(pd.DataFrame({"area_id": ["a"], "week": [pd.Timestamp("2024-01-01")]}), ["a"])


def test_panel_round_trips_through_the_dense_array(synthetic_city):
    data = panel_arrays(synthetic_city.panel, synthetic_city.graph)
    np.testing.assert_array_equal(data.counts, synthetic_city.city.counts)
    assert list(data.weeks) == list(synthetic_city.city.weeks)
    assert data.categories == list(CATEGORIES)


def test_a_week_without_rows_is_a_gap_on_the_weekly_grid(synthetic_city):
    counts = synthetic_city.panel.counts
    gap = synthetic_city.panel.weeks[50]
    panel = Panel(counts[counts["week"] != gap].reset_index(drop=True))
    assert gap in panel.weeks and gap in panel.outage_weeks()
    data = panel_arrays(panel, synthetic_city.graph)
    assert list(data.weeks) == list(synthetic_city.panel.weeks)
    assert data.outage[50] and (data.counts[:, 50] == 0).all()

