"""Every model through the Forecaster contract on the shared synthetic city."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crimecast.contracts import FORECAST_COLUMNS, HORIZONS, validate_forecast
from crimecast.forecast.models import MODEL_NAMES, ModelError, get_model, load_model

# Small, fast hyperparameters: the contract, not the accuracy, is under test here.
FAST: dict[str, dict] = {
    "historical_average": {},
    "seasonal_naive": {},
    "lightgbm_poisson": {"num_boost_round": 20, "train_weeks": 30},
    "hotspot": {"tau_grid": [1.0, 4.0], "eta_grid": [0.0, 0.5]},
    "gnn": {"epochs": 3, "hidden": 8, "train_weeks": 30, "lags": 4},
    "ensemble": {"members": ["historical_average", "lightgbm_poisson"],
                 "member_params": {"lightgbm_poisson": {"num_boost_round": 20,
                                                        "train_weeks": 30}}},
}


@pytest.fixture(scope="module")
def fitted(synthetic_city) -> dict:
    train = synthetic_city.panel.until(synthetic_city.panel.weeks[-9])
    return {name: get_model(name, **FAST[name]).fit(train, synthetic_city.graph)
            for name in MODEL_NAMES}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forecast_covers_every_area_category_horizon_with_ordered_intervals(
        name: str, fitted: dict, synthetic_city) -> None:
    panel, graph = synthetic_city.panel, synthetic_city.graph
    forecast = fitted[name].predict(panel, graph)
    assert list(forecast.columns) == list(FORECAST_COLUMNS)
    assert len(forecast) == graph.num_nodes * len(panel.categories) * len(HORIZONS)
    validate_forecast(forecast)
    assert (forecast["mean"] >= 0).all()
    assert set(forecast["area_id"]) == set(graph.area_ids)
    expected_weeks = {panel.last_week + pd.Timedelta(weeks=h) for h in HORIZONS}
    assert set(forecast["week"]) == expected_weeks
    assert ((forecast["week"] - panel.last_week).dt.days // 7 == forecast["horizon"]).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_predict_conditions_on_the_panel_it_is_given(name: str, fitted: dict,
                                                     synthetic_city) -> None:
    panel, graph = synthetic_city.panel, synthetic_city.graph
    earlier = panel.until(panel.weeks[-5])
    forecast = fitted[name].predict(earlier, graph, horizons=[1])
    assert set(forecast["week"]) == {panel.weeks[-4]}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_save_load_round_trip_gives_identical_predictions(name: str, fitted: dict,
                                                          synthetic_city, tmp_path: Path) -> None:
    panel, graph = synthetic_city.panel, synthetic_city.graph
    fitted[name].save(tmp_path / name)
    assert not list((tmp_path / name).glob("*.pkl"))
    restored = load_model(tmp_path / name)
    assert type(restored) is type(fitted[name])
    assert restored.get_params() == fitted[name].get_params()
    pd.testing.assert_frame_equal(restored.predict(panel, graph), fitted[name].predict(panel, graph))


def test_gnn_same_seed_gives_same_forecast(fitted: dict, synthetic_city) -> None:
    panel, graph = synthetic_city.panel, synthetic_city.graph
    train = panel.until(panel.weeks[-9])
    again = get_model("gnn", **FAST["gnn"]).fit(train, graph)
    np.testing.assert_array_equal(again.predict(panel, graph)["mean"].to_numpy(),
                                  fitted["gnn"].predict(panel, graph)["mean"].to_numpy())


def test_gnn_reports_every_epoch_and_a_callback_can_stop_training(synthetic_city) -> None:
    seen: list[tuple[int, float]] = []

    class Pruned(Exception):
        pass

    def on_epoch(epoch: int, val_loss: float) -> None:
        seen.append((epoch, val_loss))
        if epoch == 1:
            raise Pruned

    model = get_model("gnn", **{**FAST["gnn"], "epochs": 10, "patience": 100})
    model.on_epoch = on_epoch
    with pytest.raises(Pruned):
        model.fit(synthetic_city.panel, synthetic_city.graph)
    assert [e for e, _ in seen] == [0, 1]
    assert all(np.isfinite(loss) for _, loss in seen)


def test_gnn_trains_on_neighbour_sampled_minibatches(synthetic_city) -> None:
    model = get_model("gnn", **{**FAST["gnn"], "epochs": 2, "full_batch_max_nodes": 10,
                                "batch_size": 16, "num_neighbors": [3, 2]})
    model.fit(synthetic_city.panel, synthetic_city.graph)
    validate_forecast(model.predict(synthetic_city.panel, synthetic_city.graph))
    assert len(model.history_) == 2


def test_neighbour_sampler_returns_real_edges_with_seeds_first() -> None:
    import torch
    from torch_geometric.sampler import NodeSamplerInput

    from crimecast.forecast.models.gnn import UniformNeighbourSampler

    # A star: node 0 linked both ways to nodes 1..6, plus the chain 1-7.
    pairs = [(0, i) for i in range(1, 7)] + [(1, 7)]
    edge_index = torch.tensor([[a for a, b in pairs] + [b for a, b in pairs],
                               [b for a, b in pairs] + [a for a, b in pairs]])
    sampler = UniformNeighbourSampler(edge_index, 8, [2, 2], torch.Generator().manual_seed(0))
    out = sampler.sample_from_nodes(NodeSamplerInput(input_id=None, node=torch.tensor([0])))
    assert out.node[0] == 0
    assert out.num_sampled_edges[0] == 2  # fan-out of 2 out of 6 neighbours
    real = set(map(tuple, edge_index.t().tolist()))
    for r, c, e in zip(out.row.tolist(), out.col.tolist(), out.edge.tolist(), strict=True):
        assert (int(out.node[r]), int(out.node[c])) in real
        assert tuple(edge_index[:, e].tolist()) == (int(out.node[r]), int(out.node[c]))


def test_outage_weeks_are_ignored_when_masked(synthetic_city) -> None:
    panel, graph = synthetic_city.panel, synthetic_city.graph
    outage = panel.outage_weeks()[0]
    upto = panel.until(outage)  # the outage week is the last observed week
    masked = get_model("historical_average", window=1).fit(upto, graph)
    unmasked = get_model("historical_average", window=1, mask_outages=False).fit(upto, graph)
    counts = upto.counts
    before = counts[counts["week"] == upto.weeks[-2]].groupby("area_id")["count"].sum()
    at = counts[counts["week"] == outage].groupby("area_id")["count"].sum()
    got_masked = masked.predict(upto, graph, [1]).groupby("area_id")["mean"].sum()
    got_unmasked = unmasked.predict(upto, graph, [1]).groupby("area_id")["mean"].sum()
    # the panel's area_id is categorical, the forecast's plain text: compare the values
    pd.testing.assert_series_equal(got_masked, before.astype(float), check_names=False,
                                   check_index_type=False, check_categorical=False)
    pd.testing.assert_series_equal(got_unmasked, at.astype(float), check_names=False,
                                   check_index_type=False, check_categorical=False)


def test_misuse_gives_clear_errors(synthetic_city, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not fitted"):
        get_model("historical_average").predict(synthetic_city.panel, synthetic_city.graph)
    with pytest.raises(ModelError, match="model.json"):
        load_model(tmp_path)
    with pytest.raises(ModelError, match="unknown model 'prophet'"):
        get_model("prophet")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_models_forecast_the_city_own_categories(name: str, synthetic_city) -> None:
    """A city whose categories are not violent/property/other (two, renamed) gets a
    forecast for exactly those categories."""
    from crimecast.contracts import Panel

    counts = synthetic_city.panel.counts
    counts = counts[counts["category"] != "other"].replace(
        {"category": {"violent": "traffic", "property": "suspicious"}})
    panel = Panel(counts.reset_index(drop=True))
    assert panel.categories == ["suspicious", "traffic"]
    model = get_model(name, **FAST[name]).fit(panel.until(panel.weeks[-5]), synthetic_city.graph)
    forecast = validate_forecast(model.predict(panel, synthetic_city.graph))
    assert set(forecast["category"]) == {"suspicious", "traffic"}
    assert len(forecast) == synthetic_city.graph.num_nodes * 2 * len(HORIZONS)
