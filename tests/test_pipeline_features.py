"""Features use only the past and have the documented values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crimecast.contracts import AreaGraph
from crimecast.forecast.features import (
    AREA_COVARIATE_NAMES,
    FeatureSpec,
    area_covariates,
    lag_features,
)

WEEKS = pd.date_range("2023-01-02", periods=60, freq="7D")


def line_graph(n: int) -> AreaGraph:
    src = np.concatenate([np.arange(n - 1), np.arange(1, n)])
    dst = np.concatenate([np.arange(1, n), np.arange(n - 1)])
    return AreaGraph(np.array([f"a{i}" for i in range(n)]), np.stack([src, dst]),
                     np.ones(src.size, np.float32), pd.DataFrame(index=[f"a{i}" for i in range(n)]))


def random_counts(seed: int = 0, areas: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).poisson(3.0, size=(areas, len(WEEKS), 2)).astype(np.float32)


def test_row_t_uses_only_weeks_up_to_t():
    counts = random_counts()
    graph = line_graph(5)
    before, names = lag_features(counts, WEEKS, graph=graph)
    t = 40
    future_changed = counts.copy()
    future_changed[:, t + 1:] = 99
    after, _ = lag_features(future_changed, WEEKS, graph=graph)
    np.testing.assert_array_equal(before[:, : t + 1], after[:, : t + 1])
    assert not np.array_equal(before[:, t + 1], after[:, t + 1])
    assert len(names) == before.shape[2]


def test_lags_rolling_means_and_season_have_the_documented_values():
    counts = random_counts()
    features, names = lag_features(counts, WEEKS, FeatureSpec(lags=3, rolling_windows=(4, 13)),
                                   categories=["violent", "property"])
    col = {name: i for i, name in enumerate(names)}
    t = 20
    assert features[2, t, col["lag1_violent"]] == counts[2, t, 0]
    assert features[2, t, col["lag3_property"]] == counts[2, t - 2, 1]
    assert features[2, t, col["mean13_violent"]] == pytest.approx(counts[2, t - 12:t + 1, 0].mean())
    # Before a full window exists the mean runs over the weeks available.
    assert features[1, 2, col["mean4_property"]] == pytest.approx(counts[1, :3, 1].mean())
    assert features[0, 1, col["lag3_violent"]] == 0
    angle = features[0, t, [col["woy_sin"], col["woy_cos"]]]
    assert np.hypot(*angle) == pytest.approx(1.0)
    assert "spatial_lag1_violent" not in col  # no graph given


def test_spatial_lag_is_the_weighted_mean_of_neighbours_last_week():
    counts = random_counts(areas=4)
    graph = line_graph(4)
    features, names = lag_features(counts, WEEKS, graph=graph, categories=["v", "p"])
    col = names.index("spatial_lag1_v")
    t = 10
    assert features[0, t, col] == pytest.approx(counts[1, t, 0])
    assert features[2, t, col] == pytest.approx((counts[1, t, 0] + counts[3, t, 0]) / 2)


def test_outage_weeks_are_filled_from_the_past():
    counts = random_counts()
    outage = np.zeros(len(WEEKS), bool)
    outage[30] = True
    counts_with_outage = counts.copy()
    counts_with_outage[:, 30] = 0
    features, names = lag_features(counts_with_outage, WEEKS, FeatureSpec(outage_fill_weeks=4),
                                   outage=outage)
    lag1 = names.index("lag1_cat0")
    np.testing.assert_allclose(features[:, 30, lag1], counts[:, 26:30, 0].mean(axis=1), rtol=1e-6)


def test_bad_shapes_are_reported():
    with pytest.raises(ValueError, match="weeks has 3 entries"):
        lag_features(random_counts(), WEEKS[:3])
    with pytest.raises(ValueError, match="graph has 3 nodes"):
        lag_features(random_counts(), WEEKS, graph=line_graph(3))


def test_area_covariates_turn_missing_values_into_indicators():
    areas = pd.DataFrame({"population": [1000, 0, np.nan], "land_area_km2": [1.0, 2.0, 0.0],
                          "pct_poverty": [10.0, np.nan, 30.0],
                          "median_income": [50000, 30000, np.nan]})
    covariates = area_covariates(areas)
    assert covariates.shape == (3, len(AREA_COVARIATE_NAMES))
    assert np.isfinite(covariates).all()
    col = {name: i for i, name in enumerate(AREA_COVARIATE_NAMES)}
    assert covariates[1, col["poverty_missing"]] == 1 and covariates[1, col["poverty_z"]] == 0
    assert covariates[2, col["density_missing"]] == 1  # no land area: density unknown
    assert covariates[0, col["log_population"]] == pytest.approx(np.log1p(1000))


def test_graph_stage_rebuilds_the_fixture_graph(synthetic_project):
    from crimecast.contracts import ARTIFACTS
    from training import graph as graph_stage

    assert ARTIFACTS.graph == synthetic_project / "artifacts" / "graph.npz"
    before = AreaGraph.load()
    ARTIFACTS.graph.unlink()
    summary = graph_stage.run()
    after = AreaGraph.load()
    assert summary["components"] == 1 and summary["num_nodes"] == after.num_nodes
    np.testing.assert_array_equal(after.edge_index, before.edge_index)
    np.testing.assert_array_equal(after.edge_weight, before.edge_weight)
