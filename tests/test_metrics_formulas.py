"""Metric formulas against numbers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crimecast.forecast.metrics import (
    disparity_ratios,
    flag_by_area_share,
    group_metrics,
    hotspot_scores,
    interval_coverage,
    mae,
    max_pai,
    poisson_deviance,
    rmse,
    top_k_hit_rate,
)


def test_point_metrics_match_hand_computation() -> None:
    y, mu = np.array([0, 2, 4]), np.array([1, 2, 2])
    assert mae(y, mu) == pytest.approx(1.0)
    assert rmse(y, mu) == pytest.approx(math.sqrt(5 / 3))
    # 2*(0 - (0-1)) = 2;  0;  2*(4 ln 2 - 2) = 8 ln 2 - 4
    assert poisson_deviance(y, mu) == pytest.approx((8 * math.log(2) - 2) / 3)


def test_poisson_deviance_is_zero_for_perfect_forecast_and_finite_for_zero_mean() -> None:
    y = np.array([0.0, 3.0, 7.0])
    assert poisson_deviance(y, y) == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(poisson_deviance(np.array([2.0]), np.array([0.0])))


def test_interval_coverage_counts_inclusive_bounds() -> None:
    y = np.array([0, 1, 2, 3])
    assert interval_coverage(y, np.array([0, 2, 0, 4]), np.array([0, 3, 2, 5])) == 0.5


def test_flagging_takes_top_areas_until_land_share_is_reached() -> None:
    predicted = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    land = np.array([1.0, 1.0, 2.0, 1.0, 5.0])  # total 10
    assert flag_by_area_share(predicted, land, 0.2).tolist() == [True, True, False, False, False]
    assert flag_by_area_share(predicted, land, 0.4).tolist() == [True, True, True, False, False]
    # Never empty: the top area is flagged even when it alone exceeds the share.
    assert flag_by_area_share(predicted, land, 0.05).tolist() == [True, False, False, False,
                                                                   False]


def test_pai_and_pei_star_match_hand_computation() -> None:
    predicted = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    land = np.array([1.0, 1.0, 2.0, 1.0, 5.0])
    actual = np.array([3.0, 0.0, 1.0, 1.0, 5.0])  # 10 incidents
    scores = hotspot_scores(predicted, actual, land, 0.2)
    # Flag areas 0 and 1 (20 % of land): 3 of 10 incidents → hit rate .3, PAI 1.5.
    assert scores["hit_rate"] == pytest.approx(0.3)
    assert scores["area_share"] == pytest.approx(0.2)
    assert scores["pai"] == pytest.approx(1.5)
    # Best 2 areas with perfect knowledge: {0, 3}: 4 incidents on 2 km² → PAI* = .4/.2 = 2.
    assert scores["pei_star"] == pytest.approx(0.75)


def test_max_pai_finds_optimum_that_ranking_by_density_misses() -> None:
    # Densities 10, 9, 0: the top-2 by density {0, 1} give 1000/110 = 9.09 per km², but
    # {0, 2} give 100/10.01 = 9.99 per km²: a tiny empty area beats a big dense one.
    actual = np.array([100.0, 900.0, 0.0])
    land = np.array([10.0, 100.0, 0.01])
    expected = (100 / 1000) / (10.01 / 110.01)
    assert max_pai(actual, land, 2) == pytest.approx(expected)


def test_top_k_hit_rate() -> None:
    assert top_k_hit_rate(np.array([0.1, 3.0, 2.0]), np.array([5.0, 1.0, 4.0]), 2) == 0.5


def test_snapshot_without_incidents_gives_nan_not_error() -> None:
    scores = hotspot_scores(np.array([1.0, 2.0]), np.zeros(2), np.ones(2), 0.5)
    assert math.isnan(scores["pai"]) and math.isnan(scores["hit_rate"])


def _scored(actual: list[float], mean: list[float], areas: list[str]) -> pd.DataFrame:
    n = len(actual)
    return pd.DataFrame({
        "area_id": areas, "week": pd.Timestamp("2024-01-08"), "category": "violent",
        "horizon": 1, "mean": mean, "actual": actual,
        "lower_80": np.zeros(n), "upper_80": np.full(n, 2.0),
        "lower_95": np.zeros(n), "upper_95": np.full(n, 3.0),
    })


def test_disparity_ratios_match_hand_computation() -> None:
    areas = pd.DataFrame({"land_area_km2": [1.0, 1.0, 1.0, 1.0],
                          "population": [100, 100, 300, 500],
                          "group": ["a", "a", "b", "b"]},
                         index=pd.Index(["1", "2", "3", "4"], name="area_id"))
    # Flag 25 % of land = the single top-predicted area "1" (group a).
    frame = _scored([4, 2, 2, 2], [9, 1, 1, 1], ["1", "2", "3", "4"])
    table = disparity_ratios(frame, areas, share=0.25)
    # City: 1 flag / 10 incidents; a: 1 flag / 6 incidents → (1/6)/(1/10) = 10/6.
    assert table.loc["a", "flag_rate_per_incident_ratio"] == pytest.approx(10 / 6)
    assert table.loc["b", "flag_rate_per_incident_ratio"] == pytest.approx(0.0)
    # City: 1 flag / 1000 residents; a: 1 flag / 200 residents → ratio 5.
    assert table.loc["a", "flag_rate_per_resident_ratio"] == pytest.approx(5.0)
    assert table.loc["a", "flags"] == 1 and table.loc["b", "incidents"] == 4


def test_group_metrics_agree_with_pandas_groupby() -> None:
    frame = _scored([0, 1, 5, 2], [1, 1, 2, 2], ["1", "2", "3", "4"])
    groups = pd.Series(["a", "a", "b", "b"], index=["1", "2", "3", "4"])
    by_group = group_metrics(frame, groups)
    expected_mae = (frame["actual"] - frame["mean"]).abs().groupby(groups.to_numpy()).mean()
    assert by_group["mae"].to_dict() == pytest.approx(expected_mae.to_dict())
    assert by_group.loc["b", "coverage_80"] == pytest.approx(0.5)  # 5 is outside [0, 2]
    assert by_group.loc["a", "n"] == 2


def test_group_metrics_equal_fairlearn_metricframe() -> None:
    from fairlearn.metrics import MetricFrame

    from crimecast.forecast.metrics import interval_coverage, mae, poisson_deviance, rmse

    rng = np.random.default_rng(3)
    n = 2000
    ids = [f"a{i}" for i in range(40)]
    frame = pd.DataFrame({"area_id": rng.choice(ids, n), "actual": rng.poisson(2, n) * 1.0,
                          "mean": rng.gamma(2.0, 1.0, n)})
    for level, low, high in (("80", 0.5, 1.5), ("95", 0.2, 2.0)):
        frame[f"lower_{level}"], frame[f"upper_{level}"] = frame["mean"] * low, frame["mean"] * high
    groups = pd.Series(rng.choice(["x", "y", "z"], len(ids)), index=ids)

    def coverage(y_true, y_pred, lower, upper):
        return interval_coverage(y_true, lower, upper)

    expected = MetricFrame(
        metrics={"mae": mae, "rmse": rmse, "poisson_deviance": poisson_deviance,
                 "coverage_80": coverage, "coverage_95": coverage,
                 "n": lambda y_true, y_pred: float(len(y_true))},
        y_true=frame["actual"].to_numpy(), y_pred=frame["mean"].to_numpy(),
        sensitive_features=pd.Series(groups.reindex(frame["area_id"]).to_numpy(), name="group"),
        sample_params={f"coverage_{lv}": {"lower": frame[f"lower_{lv}"].to_numpy(),
                                          "upper": frame[f"upper_{lv}"].to_numpy()}
                       for lv in ("80", "95")}).by_group.astype(float)
    pd.testing.assert_frame_equal(group_metrics(frame, groups), expected)
