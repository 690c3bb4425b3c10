"""Turning a forecast into decisions about places: hotspots and allocations.

Pure functions over arrays and frames, shared by the prediction service (``/hotspots``,
``/allocate``) and by monitoring (feedback-loop simulation, disparity of allocations).

- :func:`select_hotspots` ranks tracts by forecast risk, either the ``k`` tracts with the
  highest expected count, or the densest tracts (expected count per km², as the PAI
  metric ranks them) until a share of the city's land area is covered.
- :func:`allocate_units` splits ``N`` integer units (patrol units, outreach slots) across
  tracts in proportion to weights, optionally keeping every demographic group's share of
  units within ``[share_of_risk / r, share_of_risk * r]`` (a *group cap* ``r >= 1``), and
  rounds with the largest-remainder method so the units add up to exactly ``N``.
- :func:`outreach_weights` weighs risk by vulnerability (the tract's poverty share).
- :func:`randomise_near_cutoff` (trial mode, as HunchLab did and Mohler et al. 2015's
  field trial needed): a share of the units goes at random to areas whose risk is within
  a tolerance of the allocation's cut-off, so a later evaluation compares areas that
  differ only by chance; the seed reproduces the assignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


class AllocationError(ValueError):
    """The inputs cannot be allocated (e.g. negative weights); the message says which."""


def largest_remainder(quotas: np.ndarray, total: int) -> np.ndarray:
    """Integers summing to ``total`` that are each within 1 of ``quotas``.

    ``quotas``: float array ``[n]`` of non-negative shares of ``total`` (rescaled to sum to
    ``total``). Every entry gets ``floor(quota)``; the units left go to the largest
    fractional remainders (ties to the lower index, so the result is deterministic).
    """
    quotas = np.asarray(quotas, dtype=np.float64)
    if total < 0:
        raise AllocationError(f"total must be >= 0, got {total}")
    if quotas.size == 0:
        if total:
            raise AllocationError("cannot allocate units to zero recipients")
        return np.zeros(0, dtype=np.int64)
    if (quotas < 0).any() or not np.isfinite(quotas).all():
        raise AllocationError("quotas must be finite and non-negative")
    mass = quotas.sum()
    scaled = quotas * (total / mass) if mass > 0 else np.full(quotas.size, total / quotas.size)
    floors = np.floor(scaled + 1e-9).astype(np.int64)
    left = int(total - floors.sum())
    if left > 0:
        remainders = scaled - floors
        order = np.lexsort((np.arange(quotas.size), -remainders))
        floors[order[:left]] += 1
    elif left < 0:  # only from float noise: take from the smallest remainders
        remainders = scaled - floors
        order = np.lexsort((np.arange(quotas.size), remainders))
        for i in order:
            if left == 0:
                break
            if floors[i] > 0:
                floors[i] -= 1
                left += 1
    return floors


def bounded_shares(weight_share: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Shares ``x_g = clip(t * weight_share_g, lower_g, upper_g)`` with ``sum(x) = 1``.

    The shares closest to proportional-to-weight that respect per-group bounds (the
    water-filling solution; ``t`` found by bisection). Needs ``sum(lower) <= 1 <= sum(upper)``.
    """
    w = np.asarray(weight_share, dtype=np.float64)
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    if lo.sum() > 1 + 1e-9 or hi.sum() < 1 - 1e-9:
        raise AllocationError(f"infeasible group bounds: sum(lower)={lo.sum():.3f}, "
                              f"sum(upper)={hi.sum():.3f}")
    t_low, t_high = 0.0, 1.0
    while np.clip(t_high * w, lo, hi).sum() < 1 and t_high < 1e12:
        t_high *= 2
    for _ in range(200):
        mid = (t_low + t_high) / 2
        if np.clip(mid * w, lo, hi).sum() < 1:
            t_low = mid
        else:
            t_high = mid
    shares = np.clip(t_high * w, lo, hi)
    return shares / shares.sum()


@dataclass(frozen=True)
class Allocation:
    """The result of :func:`allocate_units`.

    ``by_area``: one row per area with ``area_id, group, risk, weight, units``.
    ``by_group``: one row per group with ``group, risk_share, units, unit_share, ratio``
    (``unit_share / risk_share``) and ``capped`` (whether the cap moved this group).
    """

    by_area: pd.DataFrame
    by_group: pd.DataFrame
    cap_ratio: float | None

    def with_units(self, units: np.ndarray) -> Allocation:
        """The same allocation with ``units`` per area (e.g. after trial randomisation):
        the groups' units, unit shares and ratios recomputed, ``capped`` kept."""
        by_area = self.by_area.assign(units=np.asarray(units, dtype=np.int64))
        per_group = by_area.groupby("group")["units"].sum()
        group_units = per_group.reindex(self.by_group["group"]).to_numpy(dtype=np.int64)
        total = int(group_units.sum())
        unit_share = group_units / total if total else np.zeros(len(group_units))
        risk_share = self.by_group["risk_share"].to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(risk_share > 0, unit_share / risk_share, np.nan)
        by_group = self.by_group.assign(units=group_units, unit_share=unit_share, ratio=ratio)
        return Allocation(by_area=by_area, by_group=by_group, cap_ratio=self.cap_ratio)


@dataclass(frozen=True)
class TrialAssignment:
    """Trial mode's result (:func:`randomise_near_cutoff`).

    ``units``: units per area after randomisation ``[n]``; ``cutoff``: the lowest risk
    that received a unit in the deterministic plan; ``band``: indices of the areas within
    the tolerance of it (the randomisation's population); ``randomised``: indices that
    received a trial unit (repeated when an area got several); ``trial_units``: how many
    units were assigned at random; ``seed``: what reproduces it."""

    units: np.ndarray
    cutoff: float
    band: np.ndarray
    randomised: np.ndarray
    trial_units: int
    seed: int


def randomise_near_cutoff(units: np.ndarray, risk: np.ndarray, share: float,
                          tolerance: float, seed: int) -> TrialAssignment:
    """Assign ``share`` of the units at random among the areas near the cut-off.

    ``units``: a deterministic plan ``[n]`` (e.g. :func:`allocate_units`); ``risk``: the
    forecast it followed. The cut-off is the lowest risk that received a unit; the band
    is every area with ``|risk − cutoff| <= tolerance · cutoff``. ``round(share · total)``
    units (at most what the band's areas hold) are withdrawn from the band's areas, lowest
    risk first, one per area per round, then given one per area to areas drawn uniformly
    without replacement from the band (again, round after round, when the band is smaller
    than the trial units). Areas outside the band keep their units; the total is unchanged.
    The same inputs and ``seed`` give the same assignment."""
    units = np.asarray(units, dtype=np.int64).copy()
    risk = np.asarray(risk, dtype=np.float64)
    if units.shape != risk.shape:
        raise AllocationError("units and risk must have the same length")
    if not 0 <= share <= 1:
        raise AllocationError(f"trial share must be in [0, 1], got {share}")
    if tolerance < 0:
        raise AllocationError(f"trial tolerance must be >= 0, got {tolerance}")
    empty = np.zeros(0, dtype=np.int64)
    if units.sum() == 0 or share == 0:
        return TrialAssignment(units, float("nan"), empty, empty, 0, int(seed))
    cutoff = float(risk[units > 0].min())
    band = np.flatnonzero(np.abs(risk - cutoff) <= tolerance * cutoff + 1e-12)
    wanted = min(int(np.rint(share * units.sum())), int(units[band].sum()))
    # Withdraw: lowest-risk band areas first, one unit per area per round.
    order = band[np.lexsort((band, risk[band]))]
    taken = 0
    while taken < wanted:
        for i in order:
            if taken == wanted:
                break
            if units[i] > 0:
                units[i] -= 1
                taken += 1
    rng = np.random.default_rng(seed)
    rounds = [rng.permutation(band) for _ in range(-(-wanted // max(band.size, 1)))]
    randomised = np.concatenate(rounds)[:wanted] if rounds else empty
    np.add.at(units, randomised, 1)
    return TrialAssignment(units, cutoff, band, np.sort(randomised), wanted, int(seed))


def allocate_units(area_ids: np.ndarray, risk: np.ndarray, weight: np.ndarray,
                   groups: np.ndarray, units: int, cap_ratio: float | None = None
                   ) -> Allocation:
    """Split ``units`` across areas in proportion to ``weight``.

    Inputs are aligned arrays ``[n_areas]``: ``risk`` (forecast expected count, defines
    each group's share of risk for the cap), ``weight`` (what units follow: risk for patrol,
    vulnerability-weighted risk for outreach), ``groups`` (demographic group label).
    With ``cap_ratio = r`` each group's share of units is kept within
    ``[risk_share / r, risk_share * r]`` before rounding (integer rounding can move a
    group by less than one unit). Areas with zero weight get units only when their whole
    group has zero weight and the cap requires a minimum; then risk splits it.
    """
    risk = np.asarray(risk, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    groups = np.asarray(groups).astype(str)
    n = len(area_ids)
    if not (len(risk) == len(weight) == len(groups) == n):
        raise AllocationError("area_ids, risk, weight and groups must have the same length")
    if n == 0:
        raise AllocationError("no areas to allocate to")
    for name, values in (("risk", risk), ("weight", weight)):
        if (values < 0).any() or not np.isfinite(values).all():
            raise AllocationError(f"{name} must be finite and non-negative")
    if cap_ratio is not None and cap_ratio < 1:
        raise AllocationError(f"cap_ratio must be >= 1, got {cap_ratio}")

    labels, group_index = np.unique(groups, return_inverse=True)
    group_risk = np.bincount(group_index, weights=risk, minlength=len(labels))
    group_weight = np.bincount(group_index, weights=weight, minlength=len(labels))
    risk_share = _share(group_risk)
    weight_share = _share(group_weight) if group_weight.sum() > 0 else risk_share

    if cap_ratio is not None and risk.sum() > 0:
        group_share = bounded_shares(weight_share, risk_share / cap_ratio, risk_share * cap_ratio)
    else:
        group_share = weight_share
    group_units = largest_remainder(group_share, units)

    area_units = np.zeros(n, dtype=np.int64)
    for g in range(len(labels)):
        members = np.flatnonzero(group_index == g)
        inner = weight[members]
        if inner.sum() <= 0:
            inner = risk[members] if risk[members].sum() > 0 else np.ones(len(members))
        area_units[members] = largest_remainder(inner, int(group_units[g]))

    unit_share = group_units / units if units else np.zeros(len(labels))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(risk_share > 0, unit_share / risk_share, np.nan)
    by_group = pd.DataFrame({
        "group": labels, "risk_share": risk_share, "units": group_units,
        "unit_share": unit_share, "ratio": ratio,
        "capped": ~np.isclose(group_share, weight_share, atol=1e-9),
    })
    by_area = pd.DataFrame({"area_id": np.asarray(area_ids).astype(str), "group": groups,
                            "risk": risk, "weight": weight, "units": area_units})
    return Allocation(by_area=by_area, by_group=by_group, cap_ratio=cap_ratio)


def outreach_weights(risk: np.ndarray, poverty_pct: np.ndarray) -> np.ndarray:
    """Vulnerability-weighted risk: ``risk * poverty_share`` (poverty in percent, 0–100).

    Unknown poverty (NaN) takes the median of the known tracts, so a missing census value
    neither excludes a tract nor favours it.
    """
    poverty = np.asarray(poverty_pct, dtype=np.float64)
    known = poverty[np.isfinite(poverty)]
    fill = float(np.median(known)) if known.size else 0.0
    poverty = np.clip(np.where(np.isfinite(poverty), poverty, fill), 0.0, 100.0)
    return np.asarray(risk, dtype=np.float64) * poverty / 100.0


def select_hotspots(risk: np.ndarray, land_area_km2: np.ndarray, *,
                    k: int | None = None, area_share: float | None = None) -> np.ndarray:
    """Indices of hotspot areas, highest first.

    ``k``: the ``k`` areas with the highest expected count. ``area_share``: areas ranked
    by density (expected count per km²) taken while their cumulative land area stays within
    ``area_share`` of the total (at least one area). Exactly one of the two must be given.
    """
    risk = np.asarray(risk, dtype=np.float64)
    land = np.asarray(land_area_km2, dtype=np.float64)
    if (k is None) == (area_share is None):
        raise AllocationError("give exactly one of k or area_share")
    if k is not None:
        order = np.lexsort((np.arange(risk.size), -risk))
        return order[: max(0, min(k, risk.size))]
    assert area_share is not None
    if not 0 < area_share <= 1:
        raise AllocationError(f"area_share must be in (0, 1], got {area_share}")
    safe_land = np.where(np.isfinite(land) & (land > 0), land, np.nan)
    density = np.where(np.isfinite(safe_land), risk / safe_land, 0.0)
    order = np.lexsort((np.arange(risk.size), -density))
    order = order[np.isfinite(safe_land[order])]
    if order.size == 0:
        return order
    cumulative = np.cumsum(safe_land[order]) / np.nansum(safe_land)
    count = max(1, int(np.searchsorted(cumulative, area_share + 1e-12, side="right")))
    return order[:count]


def _share(values: np.ndarray) -> np.ndarray:
    total = values.sum()
    return values / total if total > 0 else np.full(values.size, 1.0 / max(values.size, 1))
