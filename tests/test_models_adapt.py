"""Models adapt to the history they have; the ensemble is a model like the others."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crimecast.contracts import AreaGraph, Panel
from crimecast.errors import CrimecastError
from crimecast.forecast.backtest import run_backtest
from crimecast.forecast.models import (
    BASELINE_NAMES,
    MODEL_NAMES,
    ModelsSettings,
    configured_model,
    get_model,
    load_model,
)
from crimecast.forecast.models.base import ModelError
from crimecast.forecast.models.ensemble import fit_weights
from crimecast.forecast.settings import EvaluationSettings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def short_city() -> tuple[Panel, AreaGraph]:
    """A synthetic city with 60 weeks of history (about a year and two months)."""
    from crimecast.data.graph import build_graph
    from crimecast.data.synthetic import generate_city

    city = generate_city(n_areas=64, n_weeks=60, seed=7)
    edge_index, edge_weight = build_graph(city.areas)
    areas = pd.DataFrame(city.areas.drop(columns="geometry")).set_index("area_id")
    graph = AreaGraph(city.area_ids, edge_index, edge_weight, areas.loc[city.area_ids])
    return Panel(city.panel_frame()), graph


@pytest.mark.slow
def test_a_60_week_city_trains_every_model_with_defaults_and_the_gnn_is_not_the_worst(
        short_city, capsys: pytest.CaptureFixture[str]) -> None:
    panel, graph = short_city
    config = ModelsSettings.load(REPO / "configs" / "models.yaml")
    settings = EvaluationSettings.load(REPO / "configs" / "evaluation.yaml")
    deviance = {}
    for name in MODEL_NAMES:
        result = run_backtest(configured_model(name, config), panel, graph, settings,
                              progress=False)
        deviance[name] = result.summary["targets"]["all"]["1"]["poisson_deviance"]
    assert max(deviance, key=deviance.get) != "gnn", deviance
    assert deviance["gnn"] < min(deviance["historical_average"], deviance["seasonal_naive"])
    assert "gnn: 34 weeks of history, adapted" in capsys.readouterr().err


def test_adapted_windows_are_recorded_announced_and_saved(
        short_city, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    panel, graph = short_city
    model = get_model("gnn", epochs=3).fit(panel, graph)
    effective = model.effective_params()
    assert model.adapted_["base_window"] == {"configured": 156, "effective": 48}
    assert effective["base_window"] == 48 and effective["train_weeks"] < 156
    assert model.adapted_["seasonal_features"]["effective"] is False
    assert model.spec.rolling_windows[-1] == 48 and not model.spec.seasonal
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("gnn: 60 weeks of history, adapted") and "base_window 156 → 48" in line
    model.save(tmp_path / "gnn")
    again = load_model(tmp_path / "gnn")
    assert again.adapted_ == model.adapted_
    pd.testing.assert_frame_equal(again.predict(panel, graph), model.predict(panel, graph))
    history_model = get_model("historical_average").fit(panel, graph)
    assert max(history_model.adapted_["candidate_windows"]["effective"]) == 60
    assert get_model("hotspot").fit(panel, graph).effective_params()["background_weeks"] <= 60


def test_long_histories_adapt_nothing(synthetic_city) -> None:
    model = get_model("hotspot", background_weeks=52, validation_weeks=26)
    assert model.fit(synthetic_city.panel, synthetic_city.graph).adapted_ == {}


@pytest.mark.parametrize("name", ["gnn", "lightgbm_poisson", "historical_average", "hotspot"])
def test_too_short_a_history_names_the_key_and_the_minimum(short_city, name: str) -> None:
    panel, graph = short_city
    tiny = Panel(panel.counts[panel.counts["week"].isin(panel.weeks[:3])])
    if name == "historical_average":
        tiny = Panel(panel.counts[panel.counts["week"] == panel.weeks[0]])
    with pytest.raises(ModelError) as caught:
        get_model(name).fit(tiny, graph)
    error = caught.value
    assert isinstance(error, CrimecastError)
    assert error.key.startswith(f"{name}.") and error.file == "configs/models.yaml"
    assert "needs at least" in str(error) and "weeks of history" in str(error)
    assert "backtest_weeks" in error.hint


def test_ensemble_weights_favour_the_member_that_matches_the_truth() -> None:
    rng = np.random.default_rng(0)
    truth = rng.gamma(2, 1.5, 5000)
    actual = rng.poisson(truth)
    weights = fit_weights(actual, np.stack([truth, truth * 1.8, np.full(5000, truth.mean())]))
    assert weights.sum() == pytest.approx(1.0) and (weights >= 0).all()
    assert weights[0] > 0.8


def test_ensemble_is_registered_fits_saves_its_members_and_loads_without_pickle(
        synthetic_city, tmp_path: Path) -> None:
    assert "ensemble" in MODEL_NAMES and "ensemble" not in BASELINE_NAMES
    params = ModelsSettings.load(REPO / "configs" / "models.yaml").params_for("ensemble")
    assert set(params["member_params"]) == set(params["members"])
    assert params["member_params"]["gnn"]["horizons"] == params["horizons"]
    panel, graph = synthetic_city.panel, synthetic_city.graph
    model = get_model("ensemble", members=["historical_average", "seasonal_naive"],
                      member_params={"historical_average": {"window": 4}})
    model.fit(panel, graph)
    assert sum(model.member_weights().values()) == pytest.approx(1.0)
    forecast = model.predict(panel, graph)
    model.save(tmp_path / "ensemble")
    saved = sorted(p.relative_to(tmp_path / "ensemble").as_posix()
                   for p in (tmp_path / "ensemble").rglob("*") if p.is_file())
    assert "members/0_historical_average/model.json" in saved
    assert not any(p.endswith((".pkl", ".pickle")) for p in saved)
    meta = json.loads((tmp_path / "ensemble" / "model.json").read_text())
    assert meta["name"] == "ensemble" and len(meta["state"]["weights"]) == 2
    pd.testing.assert_frame_equal(load_model(tmp_path / "ensemble").predict(panel, graph),
                                  forecast)


def test_a_served_model_carries_the_calibrated_intervals(synthetic_city) -> None:
    panel, graph = synthetic_city.panel, synthetic_city.graph
    model = get_model("historical_average", window=8).fit(panel, graph)
    plain = model.predict(panel, graph)
    model.calibration_ = {"edges": [1.0], "targets": {c: {"80": {"*": {"central": 0.5}}}
                                                      for c in model.categories_}}
    narrow = model.predict(panel, graph)
    assert (narrow["upper_80"] <= plain["upper_80"]).all()
    assert (narrow["upper_80"] < plain["upper_80"]).any()
    assert narrow["upper_95"].equals(plain["upper_95"])
