"""Did it work? The effect of a place-based intervention on weekly counts, two ways.

Inputs are dense weekly counts ``counts [areas, weeks]`` (one category, or their sum), an
:class:`ImpactDesign` (treated areas, their buffer, the treatment window, usable weeks)
and, for matching, each area's forecast risk.

**Difference-in-differences against matched controls.** Each treated area gets the
``k`` control areas (neither treated nor in the buffer) closest on the standardised
pre-period level (``log1p`` of the mean weekly count), pre-period trend (relative change
per year) and forecast risk. The effect is the ratio of ratios::

    effect = (T_post / T_pre) / (C_post / C_pre) − 1

with ``T`` the treated areas' mean weekly counts and ``C`` their matched controls' (each
treated area's ``k`` controls averaged), so a −20 % intervention reads −0.20; common
seasonality and trends cancel. The 95 % CI resamples treated areas with their matched
controls (a cluster bootstrap: each area keeps its whole series, so overdispersion and
autocorrelation stay in), using :func:`crimecast.forecast.evidence.block_bootstrap_weights`
with blocks of one.

**Weighted displacement difference** (Ratcliffe 2008; Wheeler & Ratcliffe 2018, as in
ArcGIS crime-analysis tools and Wheeler's ``crimepy``). Treated area ``T``, buffer ``D``
(graph neighbours of the treated areas), control ``C`` (every other area), in equal
windows before (0) and after (1) the start. With the control's change ``r = C1 / C0``
the expected counts are ``T0·r`` and ``D0·r``; the treated change ``T1 − T0·r``, the
displacement ``D1 − D0·r`` (positive: crime moved next door; negative: diffusion of
benefits) and the WDD ``= treated change + displacement`` (net crimes; negative: a net
reduction). Wheeler & Ratcliffe's variance is Poisson (each count's variance is the
count); weekly crime counts are overdispersed and autocorrelated (near repeats), so the
Poisson variance is scaled by a dispersion factor from the weeks before the design
(Newey–West long-run variance of the weekly control-adjusted residual over its Poisson
variance, at least 1), i.e. a quasi-Poisson WDD test. The CI is normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from crimecast.forecast.evidence import (
    block_bootstrap_weights,
    long_run_variance,
    percentile_interval,
)


@dataclass(frozen=True)
class ImpactDesign:
    """Which areas were treated, when, and what to compare them with.

    ``treated`` and ``buffer``: bool ``[A]`` (disjoint); ``start``: index of the first
    treated week; ``weeks``: treated weeks; ``pre_weeks``: weeks before ``start`` that the
    matching and the DiD baseline use; ``valid``: bool ``[W]``, weeks that can be counted
    (outage weeks are not)."""

    treated: np.ndarray
    buffer: np.ndarray
    start: int
    weeks: int
    pre_weeks: int
    valid: np.ndarray

    def __post_init__(self) -> None:
        if (self.treated & self.buffer).any():
            raise ValueError("an area cannot be both treated and in the buffer")
        if not self.treated.any():
            raise ValueError("no treated areas")
        if self.start < 1 or self.weeks < 1 or self.start + self.weeks > self.valid.size:
            raise ValueError(f"treatment weeks {self.start}..{self.start + self.weeks - 1} "
                             f"do not fit the {self.valid.size} weeks of data after week 0")

    def window(self, first: int, stop: int) -> np.ndarray:
        """Indices of the valid weeks in ``[first, stop)`` (clipped to the data)."""
        idx = np.arange(max(first, 0), min(stop, self.valid.size))
        return idx[self.valid[idx]]

    @property
    def post(self) -> np.ndarray:
        return self.window(self.start, self.start + self.weeks)

    @property
    def pre(self) -> np.ndarray:
        return self.window(self.start - self.pre_weeks, self.start)

    @property
    def controls_pool(self) -> np.ndarray:
        return ~self.treated & ~self.buffer


def buffer_mask(treated: np.ndarray, edge_index: np.ndarray) -> np.ndarray:
    """bool ``[A]``: graph neighbours of a treated area that are not treated themselves."""
    treated = np.asarray(treated, bool)
    src, dst = np.asarray(edge_index)
    buffer = np.zeros_like(treated)
    buffer[dst[treated[src]]] = True
    return buffer & ~treated


def matching_features(counts: np.ndarray, design: ImpactDesign,
                      risk: np.ndarray | None = None) -> np.ndarray:
    """``[A, F]`` pre-period level (``log1p`` mean weekly count), trend (relative change
    per year from a least-squares line) and, when given, ``log1p`` forecast risk."""
    pre = design.pre
    if pre.size < 2:
        raise ValueError(f"only {pre.size} usable pre-period week(s); matching needs ≥ 2")
    values = counts[:, pre].astype(float)
    level = values.mean(axis=1)
    time = (pre - pre.mean()).astype(float)
    slope = values @ time / (time @ time)
    trend = 52.0 * slope / (level + 0.5)
    columns = [np.log1p(level), trend]
    if risk is not None:
        columns.append(np.log1p(np.asarray(risk, float)))
    return np.column_stack(columns)


def match_controls(features: np.ndarray, design: ImpactDesign, k: int) -> np.ndarray:
    """``[treated, k]`` indices of each treated area's ``k`` nearest controls (Euclidean on
    features standardised by the control pool's spread; with replacement across treated
    areas). Treated areas are in ascending index order."""
    pool = np.flatnonzero(design.controls_pool)
    if pool.size < k:
        raise ValueError(f"only {pool.size} candidate control areas for {k} per treated area")
    scale = features[pool].std(axis=0)
    scale[~(scale > 0)] = 1.0
    z = features / scale
    treated = np.flatnonzero(design.treated)
    distance = ((z[treated, None, :] - z[None, pool, :]) ** 2).sum(axis=2)
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
    return pool[nearest]


def _number(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def difference_in_differences(counts: np.ndarray, design: ImpactDesign, controls: np.ndarray,
                              draws: int = 2000, seed: int = 0, level: float = 0.95
                              ) -> dict[str, Any]:
    """The matched DiD (module docstring) with its cluster-bootstrap CI.

    ``controls``: :func:`match_controls`. Returns ``{"effect", "ci", "observed",
    "expected", "change", "change_ci", "treated_areas", "controls_per_area",
    "pre_weeks", "post_weeks"}``: ``effect`` relative (−0.2 = 20 % fewer), ``observed``
    and ``expected`` the treated areas' counts over the post weeks (expected = had they
    moved like their controls), ``change`` their difference in crimes."""
    pre, post = design.pre, design.post
    if pre.size == 0 or post.size == 0:
        raise ValueError("no usable weeks before or during the treatment")
    treated = np.flatnonzero(design.treated)
    t_pre = counts[treated][:, pre].mean(axis=1)
    t_post = counts[treated][:, post].mean(axis=1)
    c_pre = counts[controls][:, :, pre].mean(axis=(1, 2))
    c_post = counts[controls][:, :, post].mean(axis=(1, 2))

    def ratio(w_pre_t, w_post_t, w_pre_c, w_post_c):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (w_post_t / w_pre_t) / (w_post_c / w_pre_c) - 1

    effect = float(ratio(t_pre.sum(), t_post.sum(), c_pre.sum(), c_post.sum()))
    weights = block_bootstrap_weights(treated.size, draws, 1, seed)
    effect_draws = ratio(weights @ t_pre, weights @ t_post, weights @ c_pre, weights @ c_post)
    observed = float(t_post.sum() * post.size)
    expected = observed / (1 + effect) if np.isfinite(effect) and effect > -1 else float("nan")
    ci = percentile_interval(np.asarray(effect_draws, float), level)
    change_ci = [None if b is None or not np.isfinite(expected) else b * expected for b in ci]
    return {"effect": _number(effect), "ci": ci, "observed": observed,
            "expected": _number(expected), "change": _number(observed - expected),
            "change_ci": change_ci, "treated_areas": int(treated.size),
            "controls_per_area": int(controls.shape[1]), "pre_weeks": int(pre.size),
            "post_weeks": int(post.size)}


def _dispersion(first: np.ndarray, second: np.ndarray, history: np.ndarray, lag: int) -> float:
    """Overdispersion of ``first − s·second`` on ``history`` weeks (``s`` matching their
    levels): Newey–West long-run variance over the Poisson variance, at least 1; 1 when
    the history is too short (< 8 weeks) to tell."""
    if history.size < 8 or second[history].sum() <= 0:
        return 1.0
    scale = first[history].sum() / second[history].sum()
    residual = first[history] - scale * second[history]
    poisson = float(np.mean(first[history] + scale ** 2 * second[history]))
    if poisson <= 0:
        return 1.0
    return max(1.0, long_run_variance(residual, lag) / poisson)


def weighted_displacement_difference(counts: np.ndarray, design: ImpactDesign,
                                     level: float = 0.95, lag: int = 3) -> dict[str, Any]:
    """The WDD (module docstring) over equal windows of ``design.weeks`` before and after
    ``design.start``, controls = every area neither treated nor in the buffer.

    Returns ``{"treated": part, "buffer": part, "wdd", "wdd_ci", "wdd_z", "wdd_p_value",
    "wdq", "displacement", "dispersion", "before_weeks", "after_weeks"}`` where each
    ``part`` is ``{"effect", "ci", "observed", "expected", "change", "change_ci",
    "areas"}`` (``effect`` relative, ``change`` in crimes); ``displacement`` is
    ``"displacement"``, ``"diffusion of benefits"`` or ``"none detected"`` from the
    buffer's CI; ``wdq`` is Ratcliffe's weighted displacement quotient (NaN → None)."""
    before = design.window(design.start - design.weeks, design.start)
    after = design.post
    if before.size == 0 or after.size == 0:
        raise ValueError("no usable weeks before or during the treatment")
    history = design.window(design.start - design.weeks - design.pre_weeks,
                            design.start - design.weeks)
    control = design.controls_pool
    series = {name: counts[mask].sum(axis=0).astype(float)
              for name, mask in (("T", design.treated), ("D", design.buffer), ("C", control))}
    c0, c1 = series["C"][before].sum(), series["C"][after].sum()
    if c0 <= 0:
        raise ValueError("the control areas have no incidents before the treatment")
    r = c1 / c0
    z = stats.norm.ppf(0.5 + level / 2)
    parts: dict[str, dict[str, Any]] = {}
    variances: dict[str, float] = {}
    dispersion: dict[str, float] = {}
    for name, key, mask in (("treated", "T", design.treated), ("buffer", "D", design.buffer)):
        x0, x1 = series[key][before].sum(), series[key][after].sum()
        expected = x0 * r
        s = x0 / c0
        poisson = x1 + r ** 2 * x0 + s ** 2 * (c1 + r ** 2 * c0)  # delta method
        phi = _dispersion(series[key], series["C"], history, lag)
        dispersion[name] = phi
        variances[name] = phi * poisson
        half = z * math.sqrt(variances[name])
        change = x1 - expected
        denominator = expected if expected > 0 else float("nan")
        parts[name] = {"effect": _number(change / denominator),
                       "ci": [_number((change - half) / denominator),
                              _number((change + half) / denominator)],
                       "observed": float(x1), "expected": float(expected),
                       "change": float(change), "change_ci": [change - half, change + half],
                       "areas": int(mask.sum())}
    wdd = parts["treated"]["change"] + parts["buffer"]["change"]
    # The net series' own dispersion keeps the treated–buffer correlation (shared spill-over).
    phi_net = _dispersion(series["T"] + series["D"], series["C"], history, lag)
    dispersion["net"] = phi_net
    net_poisson = sum(variances[p] / dispersion[p] for p in ("treated", "buffer"))
    sd = math.sqrt(phi_net * net_poisson)
    t_change = parts["treated"]["change"] / max(c1, 1e-12)
    d_change = parts["buffer"]["change"] / max(c1, 1e-12)
    wdq = d_change / t_change if t_change else float("nan")
    buffer_ci = parts["buffer"]["change_ci"]
    displacement = ("displacement" if buffer_ci[0] > 0 else
                    "diffusion of benefits" if buffer_ci[1] < 0 else "none detected")
    return {"treated": parts["treated"], "buffer": parts["buffer"], "wdd": float(wdd),
            "wdd_ci": [wdd - z * sd, wdd + z * sd], "wdd_z": _number(wdd / sd if sd else np.nan),
            "wdd_p_value": _number(2 * stats.norm.sf(abs(wdd / sd)) if sd else np.nan),
            "wdq": _number(wdq), "displacement": displacement,
            "dispersion": dispersion, "before_weeks": int(before.size),
            "after_weeks": int(after.size), "history_weeks": int(history.size)}


def estimate_impact(counts: np.ndarray, design: ImpactDesign, risk: np.ndarray | None = None,
                    controls_per_area: int = 5, draws: int = 2000, seed: int = 0,
                    level: float = 0.95, lag: int = 3) -> dict[str, Any]:
    """Both estimators on one ``[A, W]`` count array: ``{"did": ..., "wdd": ...}``."""
    controls = match_controls(matching_features(counts, design, risk), design,
                              controls_per_area)
    return {"did": difference_in_differences(counts, design, controls, draws, seed, level),
            "wdd": weighted_displacement_difference(counts, design, level, lag)}


def impact_by_subset(counts: np.ndarray, categories: list[str], groups: np.ndarray,
                     design: ImpactDesign, edge_index: np.ndarray,
                     risk: np.ndarray | None = None, min_treated: int = 5,
                     **options: Any) -> dict[str, Any]:
    """Both estimators overall, by category and by group of the treated areas.

    ``counts``: ``[A, W, C]``; ``groups``: ``[A]`` labels. A group's subset keeps the
    treated areas of that group (buffer = their neighbours that are not treated; other
    treated areas and the full buffer stay out of the controls). Subsets with fewer than
    ``min_treated`` treated areas are listed with ``"skipped"`` and the reason.
    ``options`` go to :func:`estimate_impact`. Returns ``{"all": ..., "by_category":
    {name: ...}, "by_group": {label: ...}}``."""
    total = counts.sum(axis=2)
    out: dict[str, Any] = {"all": estimate_impact(total, design, risk, **options),
                           "by_category": {}, "by_group": {}}
    for c, name in enumerate(categories):
        out["by_category"][name] = estimate_impact(counts[:, :, c], design, risk, **options)
    excluded = design.treated | design.buffer
    for label in sorted(set(np.asarray(groups, str)[design.treated])):
        treated = design.treated & (np.asarray(groups, str) == label)
        if treated.sum() < min_treated:
            out["by_group"][label] = {"skipped": f"{int(treated.sum())} treated area(s), "
                                                 f"fewer than {min_treated}"}
            continue
        buffer = buffer_mask(treated, edge_index)
        sub = ImpactDesign(treated=treated, buffer=buffer, start=design.start,
                           weeks=design.weeks, pre_weeks=design.pre_weeks, valid=design.valid)
        # Areas treated or buffered elsewhere are no controls for this group either.
        keep_out = excluded & ~treated & ~buffer
        out["by_group"][label] = _estimate_excluding(total, sub, keep_out, risk, options)
    return out


def _estimate_excluding(counts: np.ndarray, design: ImpactDesign, keep_out: np.ndarray,
                        risk: np.ndarray | None, options: dict[str, Any]) -> dict[str, Any]:
    """:func:`estimate_impact` with the ``keep_out`` areas dropped from the arrays."""
    keep = ~keep_out
    sub = ImpactDesign(treated=design.treated[keep], buffer=design.buffer[keep],
                       start=design.start, weeks=design.weeks, pre_weeks=design.pre_weeks,
                       valid=design.valid)
    return estimate_impact(counts[keep], sub, None if risk is None else np.asarray(risk)[keep],
                           **options)


@dataclass(frozen=True)
class SyntheticTrial:
    """A synthetic city with a known injected intervention (:func:`synthetic_trial`)."""

    counts: np.ndarray       # recorded counts [A, W, C]
    categories: list[str]
    groups: np.ndarray       # [A] group labels
    edge_index: np.ndarray
    design: ImpactDesign
    effect: float            # injected relative effect on the treated areas
    displacement: float      # injected relative effect on their neighbours


def synthetic_trial(seed: int, effect: float = -0.20, displacement: float = 0.05,
                    n_areas: int = 408, n_weeks: int = 130, treated_areas: int = 30,
                    weeks: int = 12, pre_weeks: int = 52) -> SyntheticTrial:
    """The synthetic city (:func:`crimecast.data.synthetic.generate_city`, ``seed``) with
    ``treated_areas`` areas drawn at random among the populated ones, their intensity
    multiplied by ``1 + effect`` and their graph neighbours' by ``1 + displacement`` for
    ``weeks`` weeks that end 8 weeks before the data do. ``effect=0, displacement=0`` is
    the placebo (the same city and draws up to the start)."""
    from crimecast.contracts import CATEGORIES
    from crimecast.data.graph import build_graph
    from crimecast.data.synthetic import generate_city

    layout = generate_city(n_areas=n_areas, n_weeks=8, seed=seed)  # same areas, cheaply
    edge_index, _ = build_graph(layout.areas, method="queen")
    rng = np.random.default_rng([seed, 15])
    populated = np.flatnonzero(layout.areas["population"].to_numpy() > 0)
    treated = np.zeros(n_areas, bool)
    treated[rng.choice(populated, treated_areas, replace=False)] = True
    buffer = buffer_mask(treated, edge_index)
    start = n_weeks - weeks - 8
    multiplier = np.ones((n_areas, n_weeks))
    multiplier[treated, start:start + weeks] = 1 + effect
    multiplier[buffer, start:start + weeks] = 1 + displacement
    city = generate_city(n_areas=n_areas, n_weeks=n_weeks, seed=seed, effect=multiplier)
    design = ImpactDesign(treated=treated, buffer=buffer, start=start, weeks=weeks,
                          pre_weeks=pre_weeks, valid=np.ones(n_weeks, bool))
    return SyntheticTrial(counts=city.counts.astype(float), categories=list(CATEGORIES),
                          groups=city.areas["group"].to_numpy(str), edge_index=edge_index,
                          design=design, effect=effect, displacement=displacement)
