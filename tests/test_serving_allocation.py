"""Allocation maths shared by the service and monitoring (crimecast.forecast.allocation)."""

from __future__ import annotations

import numpy as np
import pytest

from crimecast.forecast.allocation import (
    AllocationError,
    allocate_units,
    bounded_shares,
    largest_remainder,
    outreach_weights,
    select_hotspots,
)


def test_largest_remainder_sums_exactly_and_stays_within_one_of_quota() -> None:
    rng = np.random.default_rng(3)
    for total in (0, 1, 7, 100, 1001):
        quotas = rng.random(37)
        units = largest_remainder(quotas, total)
        exact = quotas / quotas.sum() * total
        assert units.sum() == total
        assert np.all(np.abs(units - exact) < 1.0 + 1e-9)


def test_largest_remainder_gives_leftover_units_to_largest_fractions() -> None:
    # quotas 1.6, 1.3, 0.1 of 3 units: floors 1,1,0 and the last unit goes to 0.6
    assert largest_remainder(np.array([1.6, 1.3, 0.1]), 3).tolist() == [2, 1, 0]


def test_patrol_allocation_without_cap_is_proportional_to_risk() -> None:
    risk = np.array([10.0, 30.0, 60.0])
    result = allocate_units(np.array(["a", "b", "c"]), risk, risk, np.array(["x", "y", "z"]), 10)
    assert result.by_area["units"].tolist() == [1, 3, 6]


def test_group_cap_keeps_every_group_within_ratio_of_its_risk_share() -> None:
    # Outreach weights favour group "poor" far beyond its share of risk; the cap pulls it back.
    risk = np.array([10.0, 10.0, 10.0, 10.0])
    weight = np.array([9.0, 9.0, 0.5, 0.5])
    groups = np.array(["poor", "poor", "rich", "rich"])
    free = allocate_units(np.arange(4), risk, weight, groups, 1000, cap_ratio=None)
    assert free.by_group.set_index("group").loc["poor", "unit_share"] > 0.9
    capped = allocate_units(np.arange(4), risk, weight, groups, 1000, cap_ratio=1.25)
    shares = capped.by_group.set_index("group")
    assert capped.by_area["units"].sum() == 1000
    for group in ("poor", "rich"):
        ratio = shares.loc[group, "unit_share"] / shares.loc[group, "risk_share"]
        assert 1 / 1.25 - 1e-3 <= ratio <= 1.25 + 1e-3
    assert shares.loc["poor", "capped"]


def test_bounded_shares_refuses_infeasible_bounds() -> None:
    with pytest.raises(AllocationError, match="infeasible"):
        bounded_shares(np.array([0.5, 0.5]), np.array([0.6, 0.6]), np.array([1.0, 1.0]))


def test_outreach_weights_fill_unknown_poverty_with_median() -> None:
    weights = outreach_weights(np.array([10.0, 10.0, 10.0]), np.array([20.0, np.nan, 40.0]))
    assert weights.tolist() == pytest.approx([2.0, 3.0, 4.0])


def test_hotspots_by_area_share_rank_by_density_and_respect_the_area_budget() -> None:
    risk = np.array([10.0, 5.0, 1.0, 8.0])
    land = np.array([10.0, 1.0, 1.0, 2.0])  # densities 1, 5, 1, 4
    chosen = select_hotspots(risk, land, area_share=3 / 14)
    assert chosen.tolist() == [1, 3]
    assert select_hotspots(risk, land, k=2).tolist() == [0, 3]
