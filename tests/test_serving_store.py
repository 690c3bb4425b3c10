"""The served forecast table: lookups match the model's table; model-dependent validation."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from serving.schemas import (
    AllocateRequest,
    ForecastRequest,
    HotspotsRequest,
    OutcomeRow,
    OutcomesRequest,
)
from serving.settings import ServingSettings
from serving.store import ForecastStore, ModelCard

AREAS = [f"a{i}" for i in range(6)]
CATS = ["other", "property", "violent"]


@pytest.fixture
def store() -> ForecastStore:
    rng = np.random.default_rng(0)
    rows = []
    for h in (1, 2, 3, 4):
        for c in CATS:
            for a in AREAS:
                mean = float(rng.gamma(2.0))
                rows.append({"area_id": a, "week": pd.Timestamp("2024-01-01") + pd.Timedelta(weeks=h),
                             "category": c, "horizon": h, "mean": mean,
                             "lower_80": mean * 0.5, "upper_80": mean * 1.5,
                             "lower_95": mean * 0.2, "upper_95": mean * 2.0})
    areas = pd.DataFrame({"land_area_km2": [1.0, 2.0, 1.0, 3.0, 1.0, 0.5],
                          "pct_poverty": [30.0, 5.0, 20.0, np.nan, 40.0, 10.0],
                          "group": ["x", "x", "y", "y", "z", "z"]}, index=pd.Index(AREAS, name="area_id"))
    card = ModelCard(model_name="historical_average", version="7", alias="champion",
                     data_version="abc", last_observed_week=date(2024, 1, 1), trained_at=None,
                     backtest_metrics={})
    return ForecastStore(pd.DataFrame(rows), card, areas, ServingSettings())


def test_forecast_rows_are_the_model_table_rows(store: ForecastStore) -> None:
    answer = store.forecast(ForecastRequest(area_ids=["a3", "a1"], horizon=2, category="violent"))
    table = store.table.set_index(["horizon", "category", "area_id"])
    assert [r.area_id for r in answer.forecasts] == ["a3", "a1"]
    for row in answer.forecasts:
        assert row.mean == pytest.approx(table.loc[(2, "violent", row.area_id), "mean"])
    assert answer.target_week == date(2024, 1, 15) and answer.model_version == "7"
    everything = store.forecast(ForecastRequest())
    assert len(everything.forecasts) == len(AREAS) * len(CATS)


def test_unknown_ids_categories_and_bad_outcomes_are_all_listed(store: ForecastStore) -> None:
    problems = store.problems("forecast", ForecastRequest(area_ids=["a1", "nope", "nah"],
                                                          category="arson"))
    fields = {p["field"] for p in problems}
    assert fields == {"area_ids", "category"}
    assert "2 unknown" in next(p["problem"] for p in problems if p["field"] == "area_ids")
    bad = OutcomesRequest(outcomes=[
        OutcomeRow(week=date(2024, 1, 2), area_id="a1", category="violent", count=1),
        OutcomeRow(week=date(2999, 1, 5), area_id="zz", category="violent", count=1)])
    fields = {p["field"] for p in store.problems("outcomes", bad)}
    assert fields == {"outcomes[0].week", "outcomes[1].week", "outcomes[1].area_id"}
    assert store.problems("hotspots", HotspotsRequest(k=2, area_share=0.1))


def test_hotspots_capture_the_highest_forecast_and_geojson_has_features(store: ForecastStore) -> None:
    answer = store.hotspots(HotspotsRequest(k=2, horizon=1))
    risk = store.risk(1, None)
    assert [h.area_id for h in answer.hotspots] == [AREAS[i] for i in np.argsort(-risk)[:2]]
    assert answer.expected_share_captured == pytest.approx(np.sort(risk)[-2:].sum() / risk.sum())
    geo = store.hotspots(HotspotsRequest(k=2, format="geojson"))
    assert geo.type == "FeatureCollection" and len(geo.features) == 2


def test_allocation_answers_sum_to_the_requested_units(store: ForecastStore) -> None:
    answer = store.allocate(AllocateRequest(units=17, kind="outreach"))
    assert sum(a.units for a in answer.allocations) == 17
    assert answer.cap_ratio == ServingSettings().allocation.group_cap_ratio
    assert "Youth share is not in the Philadelphia data" in answer.weighting
