"""Predictions compute features for the last week only (crimecast.forecast.features.
trailing_weeks): the forecasts equal those computed from the whole panel, outage weeks
inside the window included."""

from __future__ import annotations

import numpy as np
import pytest

from crimecast.data.panel import panel_arrays
from crimecast.forecast.features import FeatureSpec, lag_features, trailing_weeks
from crimecast.forecast.models import get_model


def test_last_feature_row_is_the_same_on_the_trailing_window(synthetic_city) -> None:
    data = panel_arrays(synthetic_city.panel, synthetic_city.graph)
    outage = data.outage.copy()
    outage[-20] = outage[-30] = True  # outages inside the window need earlier weeks filled
    data = type(data)(data.counts, outage, data.weeks, data.categories)
    spec = FeatureSpec(lags=8, rolling_windows=(4, 13, 52))
    recent = trailing_weeks(data, spec)
    assert recent.counts.shape[1] < data.counts.shape[1]
    full, names = lag_features(data.counts, data.weeks, spec, graph=synthetic_city.graph,
                               categories=data.categories, outage=data.outage)
    part, same_names = lag_features(recent.counts, recent.weeks, spec,
                                    graph=synthetic_city.graph, categories=data.categories,
                                    outage=recent.outage)
    assert names == same_names
    np.testing.assert_allclose(part[:, -1], full[:, -1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("name", "params"), [
    ("lightgbm_poisson", {"num_boost_round": 20, "rolling_windows": [4, 13, 26]}),
    ("gnn", {"epochs": 2, "base_window": 52})])
def test_forecasts_equal_the_whole_panel_path(name: str, params: dict, synthetic_city,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    panel, graph = synthetic_city.panel, synthetic_city.graph
    model = get_model(name, **params).fit(panel, graph)
    assert trailing_weeks(panel_arrays(panel, graph), model.spec).counts.shape[1] < len(
        panel.weeks)  # the window is a real cut on this panel
    trailing = model.predict(panel, graph, [1, 2])
    module = __import__(type(model).__module__, fromlist=["trailing_weeks"])
    monkeypatch.setattr(module, "trailing_weeks", lambda data, spec: data)
    whole = model.predict(panel, graph, [1, 2])
    np.testing.assert_allclose(trailing["mean"], whole["mean"], rtol=1e-5, atol=1e-6)
