"""Areas: group labels (majority / mixed / unknown / income tercile), land area, floor."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from crimecast.contracts import ContractError
from crimecast.data.areas import build_areas
from crimecast.data.settings import AreaGroupSettings

NAN = np.nan


@pytest.fixture
def raw_areas() -> gpd.GeoDataFrame:
    squares = [box(-75.2 + 0.01 * i, 39.95, -75.19 + 0.01 * i, 39.96) for i in range(6)]
    return gpd.GeoDataFrame({"area_id": [f"A{i}" for i in range(6)],
                             "aland_m2": [2e6, 1e6, 3e6, 1e6, 1e6, NAN]},
                            geometry=squares, crs="EPSG:4326")


@pytest.fixture
def demographics() -> pd.DataFrame:
    # A5 is absent: a tract the census table does not cover.
    return pd.DataFrame({
        "area_id": ["A0", "A1", "A2", "A3", "A4"],
        "population": [3000, 2500, 4000, 0, 80],
        "pct_black": [62.0, 20.0, 30.0, NAN, 10.0],
        "pct_white": [30.0, 55.0, 35.0, NAN, 20.0],
        "pct_asian": [3.0, 5.0, 5.0, NAN, 5.0],
        "pct_hispanic": [4.0, 18.0, 28.0, NAN, 70.0],
        "median_income": [30000.0, 90000.0, 55000.0, NAN, 41000.0],
        "pct_poverty": [30.0, 8.0, 15.0, NAN, 25.0],
    })


def test_majority_labels_mixed_and_unknown(raw_areas, demographics) -> None:
    areas = build_areas(raw_areas, demographics, AreaGroupSettings()).set_index("area_id")
    assert areas["group"].to_dict() == {"A0": "black", "A1": "white", "A2": "mixed",
                                        "A3": "unknown", "A4": "hispanic", "A5": "unknown"}
    assert areas["low_population"].to_dict() == {"A0": False, "A1": False, "A2": False,
                                                 "A3": True, "A4": True, "A5": True}


def test_income_terciles_and_income_rule(raw_areas, demographics) -> None:
    settings = AreaGroupSettings(rule="income_tercile")
    areas = build_areas(raw_areas, demographics, settings).set_index("area_id")
    assert areas["income_tercile"].to_dict() == {"A0": "low", "A1": "high", "A2": "high",
                                                 "A3": "unknown", "A4": "middle", "A5": "unknown"}
    assert (areas["group"] == areas["income_tercile"]).all()


def test_land_area_from_aland_or_projected_polygon(raw_areas, demographics) -> None:
    areas = build_areas(raw_areas, demographics, AreaGroupSettings()).set_index("area_id")
    assert areas.loc["A0", "land_area_km2"] == pytest.approx(2.0)
    # 0.01° x 0.01° at 40° N is about 0.853 km x 1.11 km
    assert areas.loc["A5", "land_area_km2"] == pytest.approx(0.948, rel=0.02)
    assert areas.crs.to_epsg() == 4326 and list(areas.index) == sorted(areas.index)


def test_duplicate_area_ids_are_refused(raw_areas, demographics) -> None:
    raw_areas.loc[1, "area_id"] = "A0"
    with pytest.raises(ContractError, match="duplicate area_id"):
        build_areas(raw_areas, demographics, AreaGroupSettings())
