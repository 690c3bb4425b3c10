"""The synthetic city: known truth, the structure it promises, and its raw source files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from crimecast.contracts import CATEGORIES
from crimecast.data.synthetic import generate_city


@pytest.fixture(scope="module")
def city():
    return generate_city(100, 160, seed=3, n_outage_weeks=2)


def test_same_seed_gives_the_same_city():
    a, b = generate_city(30, 20, seed=11), generate_city(30, 20, seed=11)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.intensity, b.intensity)
    assert a.areas.geometry.equals(b.areas.geometry)


def test_areas_tile_the_city_without_overlap(city):
    geoms = city.areas.geometry.values
    union_area = shapely.area(shapely.union_all(geoms))
    assert shapely.area(geoms).sum() == pytest.approx(union_area, rel=1e-9)
    assert city.areas["area_id"].is_unique
    assert set(city.areas["group"]) <= {"black", "white", "asian", "hispanic", "mixed", "unknown"}


def test_truth_has_one_intensity_per_area_week_category(city):
    truth = city.truth_frame()
    assert len(truth) == 100 * 160 * len(CATEGORIES)
    assert not truth.duplicated(["area_id", "week", "category"]).any()
    assert (truth["intensity"] > 0).all()


def test_recorded_counts_average_their_intensity(city):
    # Over many cells the Poisson draws average to the recorded intensity.
    assert city.counts.mean() == pytest.approx(city.recorded_intensity.mean(), rel=0.03)


def test_last_week_raises_this_weeks_intensity():
    calm = generate_city(60, 100, seed=5, self_excitation=0.0, spillover=0.0)
    excited = generate_city(60, 100, seed=5, self_excitation=0.5, spillover=0.2)

    def lag_correlation(c):
        x = c.intensity[:, 1:].reshape(-1)
        y = c.counts[:, :-1].reshape(-1)
        base = c.intensity[:, :-1].reshape(-1)
        # Residual link between last week's surprise and this week's intensity.
        return np.corrcoef(y - base, x - base)[0, 1]

    assert lag_correlation(excited) > 0.5 > lag_correlation(calm)


def test_reporting_bias_scales_recorded_counts_for_one_group():
    kwargs = {"n_areas": 120, "n_weeks": 60, "seed": 9}
    fair = generate_city(**kwargs)
    group = fair.areas["group"].value_counts().index[0]
    biased = generate_city(**kwargs, bias_group=group, bias_factor=0.5)
    in_group = (biased.areas["group"] == group).to_numpy()
    ratio = biased.recorded_intensity / biased.intensity
    np.testing.assert_allclose(ratio[in_group], 0.5, rtol=1e-5)
    np.testing.assert_allclose(ratio[~in_group], 1.0, rtol=1e-5)
    recorded_share = biased.counts[in_group].sum() / biased.intensity[in_group].sum()
    assert recorded_share == pytest.approx(0.5, rel=0.05)


def test_outage_weeks_are_flagged_and_recorded_low(city):
    panel = city.panel_frame()
    assert sorted(panel.loc[panel["outage"], "week"].unique()) == list(city.outage_weeks)
    outage = city.weeks.isin(city.outage_weeks)
    assert city.counts[:, outage].mean() < 0.5 * city.counts[:, ~outage].mean()


def test_events_fall_inside_their_area_within_their_week(city):
    events = city.events()
    assert len(events) == city.counts.sum()
    inside = shapely.contains_xy(
        city.areas.set_index("area_id").geometry.loc[events["area_id"]].values,
        events["lon"].to_numpy(), events["lat"].to_numpy())
    assert inside.all()
    occurred = pd.to_datetime(events["occurred_local"])
    week = occurred.dt.normalize() - pd.to_timedelta(occurred.dt.dayofweek, unit="D")
    recount = events.assign(week=week).groupby(["area_id", "week", "category"]).size()
    panel = city.panel_frame().set_index(["area_id", "week", "category"])["count"]
    assert recount.reindex(panel.index, fill_value=0).equals(panel)


def test_synthetic_source_fetch_is_deterministic_and_readable(tmp_project):
    from crimecast.data.sources import DataSettings, get_source

    settings = DataSettings.load(source="synthetic",
                                 synthetic={"n_areas": 20, "n_weeks": 12, "seed": 1})
    source = get_source(settings)
    first = {p.name: p.read_bytes() for p in source.fetch(tmp_project / "data")}
    second = {p.name: p.read_bytes() for p in source.fetch(tmp_project / "data2")}
    assert first == second
    incidents = source.read_incidents(tmp_project / "data")
    assert {"source_key", "occurred_local", "offense_code", "lon", "lat", "category"} \
        <= set(incidents.columns)
    assert "area_id" not in incidents.columns  # ingest must find the area itself
    assert len(source.read_areas(tmp_project / "data")) == 20
    assert source.read_truth(tmp_project / "data")["week"].nunique() == 12


def test_bad_synthetic_settings_name_the_key(tmp_project):
    from crimecast.config import ConfigError
    from crimecast.data.sources import DataSettings, get_source

    source = get_source(DataSettings.load(source="synthetic", synthetic={"n_areaz": 5}))
    with pytest.raises(ConfigError, match="synthetic.n_areaz"):
        source.fetch(tmp_project / "data")
