"""Exposure from logged `/allocate` calls: the shares of patrol units and outreach slots
each group actually received, against its share of risk and of residents, match a hand
computation. The log is written with serving's own tables and records."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from monitoring.exposure import allocation_exposure, read_allocations
from serving.predlog import RequestRecord, build_tables

AREAS = pd.DataFrame({"group": ["x", "x", "y", "unknown"],
                      "population": [100, 300, 600, 0]},
                     index=pd.Index(["A", "B", "C", "D"], name="area_id"))
# Version 3 was trained up to the week of 2026-01-05; its one-week-ahead forecast:
FORECAST = {("A", "violent"): 1, ("A", "property"): 1, ("B", "violent"): 2,
            ("B", "property"): 2, ("C", "violent"): 3, ("C", "property"): 1,
            ("D", "violent"): 0, ("D", "property"): 2}


def _record(number: int, endpoint: str, status: int, request: dict, units: dict) -> dict:
    summary = {"kind": request.get("kind", "patrol"), "units": units, "cap_ratio": 2.0}
    return RequestRecord(
        request_id=f"r{number}", ts=datetime(2026, 1, 8, 10, number, tzinfo=UTC),
        key_name="dispatch", endpoint=endpoint, status=status, model_version="3",
        request_json=json.dumps(request), response_summary=json.dumps(summary),
        latency_ms=3.0).as_row()


@pytest.fixture
def logged(tmp_path):
    url = f"sqlite:///{tmp_path / 'predlog.db'}"
    engine = sa.create_engine(url)
    tables = build_tables()
    predictions, served = tables.predictions, tables.served
    tables.meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(predictions.insert(), [
            _record(1, "allocate", 200, {"units": 5, "kind": "patrol"}, {"A": 2, "C": 3}),
            _record(2, "allocate", 200, {"units": 2, "kind": "patrol", "category": "violent"},
                    {"B": 1, "C": 1}),
            _record(3, "allocate", 200, {"units": 4, "kind": "outreach"}, {"B": 4}),
            # Neither a refused call nor another endpoint counts.
            _record(4, "allocate", 429, {"units": 9, "kind": "patrol"}, {"D": 9}),
            _record(5, "hotspots", 200, {"kind": "patrol"}, {"D": 9}),
        ])
        conn.execute(served.insert(), [
            {"model_version": "3", "data_week": datetime(2026, 1, 5).date(), "area_id": a,
             "week": datetime(2026, 1, 12).date(), "category": c, "horizon": 1, "mean": m,
             "lower_80": 0, "upper_80": m + 1, "lower_95": 0, "upper_95": m + 2}
            for (a, c), m in FORECAST.items()])
        served_frame = pd.read_sql(sa.select(served), conn)
    engine.dispose()
    return url, served_frame


def test_exposure_from_logged_allocations_matches_a_hand_computation(logged):
    url, served = logged
    allocations = read_allocations(url)
    assert sorted(allocations["request_id"].unique()) == ["r1", "r2", "r3"]
    table = allocation_exposure(allocations, served, AREAS).set_index(["kind", "group"])
    assert set(table["week"]) == {pd.Timestamp("2026-01-12")}
    patrol, outreach = table.loc["patrol"], table.loc["outreach"]
    # Patrol units: x got A 2 + B 1 = 3 of 7, y got C 3 + C 1 = 4 of 7.
    assert patrol["units"].to_dict() == {"unknown": 0, "x": 3, "y": 4}
    assert patrol.loc["x", "units_share"] == pytest.approx(3 / 7)
    assert patrol.loc["y", "units_share"] == pytest.approx(4 / 7)
    # Risk each request was answered from: r1 all categories (x 6, y 4, unknown 2),
    # r2 violent only (x 3, y 3, unknown 0): x 9 / 18, y 7 / 18, unknown 2 / 18.
    assert patrol.loc["x", "risk_share"] == pytest.approx(9 / 18)
    assert patrol.loc["y", "risk_share"] == pytest.approx(7 / 18)
    assert patrol.loc["unknown", "risk_share"] == pytest.approx(2 / 18)
    assert patrol.loc["y", "units_vs_risk"] == pytest.approx((4 / 7) / (7 / 18))
    # Residents: x 400 of 1000, y 600, unknown none.
    assert patrol["resident_share"].to_dict() == pytest.approx({"unknown": 0.0, "x": 0.4,
                                                                "y": 0.6})
    assert patrol["requests"].unique().tolist() == [2]
    # Outreach: all 4 slots to x, which has half of r3's risk (6 of 12).
    assert outreach.loc["x", "units_share"] == pytest.approx(1.0)
    assert outreach.loc["x", "risk_share"] == pytest.approx(0.5)
    assert outreach.loc["y", "units_share"] == 0


def test_no_allocations_yet_reads_as_empty(tmp_path):
    assert read_allocations(f"sqlite:///{tmp_path / 'missing.db'}").empty
    assert allocation_exposure(read_allocations(f"sqlite:///{tmp_path / 'missing.db'}"),
                               pd.DataFrame(), AREAS).empty
