"""Paired evidence, proper scores, the randomised PIT and interval calibration.

Formulas are checked against scipy and hand computations; the bootstrap against cases
whose answer is known (a forecaster against itself, a clearly better one, pure noise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from crimecast.forecast import distributions
from crimecast.forecast.calibration import apply_calibration, central_probabilities, fit_calibration
from crimecast.forecast.evidence import (
    block_bootstrap_weights,
    check_same_rows,
    diebold_mariano,
    metric_intervals,
    paired_comparison,
)
from crimecast.forecast.metrics import (
    hotspot_metrics,
    log_score,
    metric_values,
    pit_calibration_error,
    pit_histogram,
    poisson_deviance,
    randomised_pit,
    target_frame,
    unit_rps,
    weekly_components,
)
from crimecast.forecast.settings import EvaluationSettings

SETTINGS = EvaluationSettings(bootstrap_draws=400)


def _city(num_areas: int = 30, num_weeks: int = 20, seed: int = 0):
    """Scored rows of a toy city: NB counts around known means, one category and horizon."""
    rng = np.random.default_rng(seed)
    level = rng.gamma(2.0, 1.5, num_areas)
    weeks = pd.date_range("2024-01-01", periods=num_weeks, freq="7D")
    mean = np.outer(level, rng.uniform(0.8, 1.2, num_weeks))
    n = 1 / 0.2
    actual = rng.negative_binomial(n, n / (n + mean))
    frame = pd.DataFrame({
        "area_id": np.repeat([f"a{i}" for i in range(num_areas)], num_weeks),
        "week": np.tile(weeks, num_areas), "category": "violent", "horizon": 1,
        "mean": mean.ravel(), "dispersion": 0.2, "actual": actual.ravel().astype(float)})
    frame = frame.assign(group=np.where(frame["area_id"].str[1:].astype(int) % 2, "x", "y"))
    areas = pd.DataFrame({"land_area_km2": rng.uniform(0.5, 2, num_areas),
                          "population": 1000, "group": ["y", "x"] * (num_areas // 2)},
                         index=pd.Index([f"a{i}" for i in range(num_areas)], name="area_id"))
    bounds = distributions.intervals(frame["mean"], 0.2, {80: 0.8, 95: 0.95})
    return frame.assign(**bounds), areas


def test_log_score_and_rps_match_scipy_and_hand_computation() -> None:
    y, mu = np.array([0.0, 3.0, 7.0]), np.array([1.5, 2.0, 6.0])
    assert log_score(y, mu, 0.0) == pytest.approx(-stats.poisson.logpmf(y, mu).mean())
    r = 1 / 0.5
    expected = -stats.nbinom.logpmf(y, r, r / (r + mu)).mean()
    assert log_score(y, mu, 0.5) == pytest.approx(expected)
    grid = np.arange(200)
    by_hand = [((stats.poisson.cdf(grid, m) - (yy <= grid)) ** 2).sum() for yy, m in zip(y, mu)]
    assert unit_rps(y, mu, 0.0) == pytest.approx(by_hand, abs=1e-6)
    # A point forecast (tiny mean) scores the absolute error.
    assert unit_rps(np.array([3.0]), np.array([1e-9]), 0.0)[0] == pytest.approx(3.0)


def test_count_grid_agrees_with_scipy_for_quantiles_and_cdf() -> None:
    rng = np.random.default_rng(1)
    mu = np.concatenate([rng.gamma(1, 3, 500), [0.0, 400.0]])
    alpha = np.concatenate([np.where(rng.uniform(size=500) < 0.3, 0, rng.gamma(1, .5, 500)),
                            [0.3, 0.1]])
    for q in (0.025, 0.1, 0.9, 0.975):
        r = 1 / np.maximum(alpha, 1e-12)
        expected = np.where(alpha <= 1e-8, stats.poisson.ppf(q, mu),
                            stats.nbinom.ppf(q, r, r / (r + mu)))
        assert np.array_equal(distributions.quantile(mu, alpha, q), np.nan_to_num(expected))
    k = rng.integers(0, 20, mu.size).astype(float)
    r = 1 / np.maximum(alpha, 1e-12)
    expected = np.where(alpha <= 1e-8, stats.poisson.cdf(k, mu), stats.nbinom.cdf(k, r, r / (r + mu)))
    assert distributions.cdf(k, mu, alpha) == pytest.approx(expected, abs=1e-9)


def test_pit_is_flat_for_the_true_distribution_and_not_for_a_wrong_one() -> None:
    frame, _ = _city(200, 20)
    y, mu = frame["actual"].to_numpy(), frame["mean"].to_numpy()
    right = pit_histogram(randomised_pit(y, mu, 0.2))
    wrong = pit_histogram(randomised_pit(y, mu * 1.6, 0.0))
    assert pit_calibration_error(right) < 0.03
    assert pit_calibration_error(wrong) > 0.15


def test_weekly_components_sum_to_the_pooled_metrics() -> None:
    frame, areas = _city()
    components = weekly_components(frame, areas)
    assert len(components) == frame["week"].nunique()
    values = metric_values(components.sum()).iloc[0]
    assert values["poisson_deviance"] == pytest.approx(poisson_deviance(frame["actual"],
                                                                        frame["mean"]))
    assert values["hit_rate@5%"] == pytest.approx(hotspot_metrics(frame, areas["land_area_km2"])
                                                  ["hit_rate@5%"])
    inside = (frame["actual"] >= frame["lower_80"]) & (frame["actual"] <= frame["upper_80"])
    assert values["coverage_80"] == pytest.approx(inside.mean())


def test_target_all_sums_categories_with_a_moment_matched_dispersion() -> None:
    frame, _ = _city(4, 3)
    both = pd.concat([frame, frame.assign(category="property", mean=frame["mean"] * 2)])
    total = target_frame(both, "all")
    assert len(total) == len(frame) and (total["category"] == "all").all()
    first = total.iloc[0]
    mu1 = frame.iloc[0]["mean"]
    variance = (mu1 + 0.2 * mu1**2) + (2 * mu1 + 0.2 * (2 * mu1) ** 2)
    assert first["mean"] == pytest.approx(3 * mu1)
    assert first["dispersion"] == pytest.approx((variance - 3 * mu1) / (3 * mu1) ** 2)


def test_block_bootstrap_is_seeded_and_keeps_every_draw_the_length_of_the_weeks() -> None:
    weights = block_bootstrap_weights(26, 50, 4, seed=3)
    assert weights.shape == (50, 26) and (weights.sum(axis=1) == 26).all()
    assert np.array_equal(weights, block_bootstrap_weights(26, 50, 4, seed=3))
    assert not np.array_equal(weights, block_bootstrap_weights(26, 50, 4, seed=4))


def test_a_forecaster_against_itself_differs_by_exactly_nothing() -> None:
    frame, areas = _city()
    components = weekly_components(frame, areas)
    compared = paired_comparison(components, components, SETTINGS)
    assert compared["poisson_deviance"]["diff"] == 0
    assert compared["poisson_deviance"]["ci"] == [0.0, 0.0]
    assert compared["poisson_deviance"]["better"] == "lower"
    assert compared["hit_rate@5%"]["better"] == "higher"


def test_a_clearly_worse_forecaster_is_worse_beyond_doubt_and_noise_is_not() -> None:
    frame, areas = _city(60, 26)
    good = weekly_components(frame, areas)
    bad = weekly_components(frame.assign(mean=frame["mean"] * 1.5), areas)
    worse = paired_comparison(good, bad, SETTINGS)["poisson_deviance"]
    assert worse["ci"][0] > 0 and worse["relative_ci"][0] > 0.05
    assert worse["dm_p_value"] < 0.01
    rng = np.random.default_rng(5)
    noisy = weekly_components(frame.assign(mean=frame["mean"] * rng.uniform(0.97, 1.03, len(frame))),
                              areas)
    noise = paired_comparison(good, noisy, SETTINGS)["poisson_deviance"]
    assert abs(noise["relative"]) < 0.01
    assert noise["relative_ci"][1] - noise["relative_ci"][0] < 0.02


def test_bootstrap_interval_covers_the_truth_for_independent_weeks() -> None:
    # Weekly losses with a known mean difference: the 95 % interval should hold it most
    # of the time (a loose check: 40 repetitions, at least 32 hits).
    hits = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        weeks = 26
        base = rng.gamma(5, 0.2, weeks)
        table = pd.DataFrame({"n": np.ones(weeks), "deviance": base, "log_score": base,
                              "rps": base, "abs_error": base, "sq_error": base})
        other = table.assign(deviance=base + 0.1 + rng.normal(0, 0.2, weeks))
        ci = paired_comparison(table, other, EvaluationSettings(bootstrap_draws=400,
                                                                bootstrap_seed=seed),
                               metrics=["poisson_deviance"])["poisson_deviance"]["ci"]
        hits += ci[0] <= 0.1 <= ci[1]
    assert hits >= 32


def test_diebold_mariano_sees_a_shift_and_not_noise() -> None:
    rng = np.random.default_rng(2)
    assert diebold_mariano(rng.normal(0.3, 0.2, 30), lag=3) < 0.01
    assert diebold_mariano(rng.normal(0.0, 0.2, 30), lag=3) > 0.05


def test_metric_intervals_give_disparity_ratio_cis() -> None:
    frame, areas = _city(40, 26)
    intervals = metric_intervals(weekly_components(frame, areas, flag_share=0.2), SETTINGS)
    ratio = intervals["flag_rate_per_incident_ratio/x"]
    assert ratio["ci"][0] <= ratio["value"] <= ratio["ci"][1]


def test_comparisons_refuse_different_rows() -> None:
    frame, _ = _city()
    with pytest.raises(ValueError, match="different rows"):
        check_same_rows(frame, frame.iloc[1:])
    with pytest.raises(ValueError, match="actual counts"):
        check_same_rows(frame, frame.assign(actual=frame["actual"] + 1))


def test_calibration_brings_over_covering_small_counts_to_nominal() -> None:
    rng = np.random.default_rng(4)
    mean = rng.gamma(1.0, 0.8, 6000)  # small counts: integer intervals over-cover
    frame = pd.DataFrame({"mean": mean, "dispersion": 0.0,
                          "actual": rng.poisson(mean).astype(float)})
    validation, test = frame.iloc[:3000], frame.iloc[3000:]
    calibration = fit_calibration({"violent": validation}, [0.5, 1, 2], tolerance=0.03,
                                  min_rows=100)
    cell = calibration["targets"]["violent"]["80"]["*"]
    assert cell["applied"] and cell["coverage_before"] > 0.83
    assert abs(cell["coverage_after"] - 0.80) < 0.02
    calibrated = apply_calibration(test, calibration, "violent")
    inside = (test["actual"] >= calibrated["lower_80"]) & (test["actual"] <= calibrated["upper_80"])
    assert abs(inside.mean() - 0.80) < 0.03
    # A range of expected counts with its own cell gets its own central probability.
    p = central_probabilities(calibration, "violent", 80, np.array([0.2, 5.0]))
    assert p[0] != p[1]
    # Within the tolerance nothing changes.
    untouched = fit_calibration({"violent": validation}, [0.5, 1, 2], tolerance=0.5)
    assert not untouched["targets"]["violent"]["80"]["*"]["applied"]
