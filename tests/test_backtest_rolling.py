"""Rolling-origin backtest: origins, horizons, outages, groups, refits, oracle."""

from __future__ import annotations

import pandas as pd
import pytest

from crimecast.forecast.backtest import oracle_backtest, run_backtest
from crimecast.forecast.models import get_model
from crimecast.forecast.models.historical_average import HistoricalAverage
from crimecast.forecast.settings import EvaluationSettings
from crimecast.lifecycle.gate import PromotionSettings, gate_scores

SETTINGS = EvaluationSettings(backtest_weeks=6, step=1, refit_every=0)


@pytest.fixture(scope="module")
def ha_result(synthetic_city):
    return run_backtest(get_model("historical_average"), synthetic_city.panel,
                        synthetic_city.graph, SETTINGS, progress=False)


def test_backtest_scores_every_origin_horizon_and_group(ha_result, synthetic_city) -> None:
    weeks = synthetic_city.panel.weeks
    rows = ha_result.rows
    assert sorted(rows["origin"].unique()) == list(weeks[-7:-1])
    last_origin = rows[rows["origin"] == weeks[-2]]
    assert set(last_origin["horizon"]) == {1}  # later targets are beyond the panel
    assert set(rows[rows["origin"] == weeks[-7]]["horizon"]) == {1, 2, 3, 4}
    assert (rows["week"] <= weeks[-1]).all()
    groups = set(synthetic_city.graph.areas["group"])
    assert set(ha_result.summary["by_group"]) == groups
    assert set(ha_result.summary["disparity"]) == groups
    assert ha_result.summary["origins"] == 6
    for key in ("poisson_deviance", "mae", "rmse", "coverage_80", "coverage_95",
                "pai@1%", "pai@5%", "pai@10%", "pei_star@5%", "hit_rate@5%", "hit_rate@top10"):
        assert key in ha_result.summary["overall"]


def test_backtest_skips_outage_targets(synthetic_city) -> None:
    panel = synthetic_city.panel
    outage = panel.outage_weeks()[0]
    upto = panel.until(outage + pd.Timedelta(weeks=3))
    result = run_backtest(get_model("historical_average", window=4), upto,
                          synthetic_city.graph, SETTINGS, progress=False)
    assert outage not in set(result.rows["week"])
    assert len(result.rows) > 0


class CountingAverage(HistoricalAverage):
    fits = 0

    def _fit(self, data, graph) -> None:
        type(self).fits += 1
        super()._fit(data, graph)


@pytest.mark.parametrize(("refit_every", "fits"), [(0, 1), (2, 3)])
def test_refit_every_controls_how_often_the_model_is_fitted(synthetic_city, refit_every: int,
                                                            fits: int) -> None:
    CountingAverage.fits = 0
    run_backtest(CountingAverage(window=4), synthetic_city.panel, synthetic_city.graph,
                 EvaluationSettings(backtest_weeks=6, refit_every=refit_every), progress=False)
    assert CountingAverage.fits == fits


def test_oracle_uses_the_same_rows_and_beats_the_baseline(ha_result, synthetic_city) -> None:
    oracle = oracle_backtest(synthetic_city.truth, synthetic_city.panel, synthetic_city.graph,
                             SETTINGS)
    key = ["origin", "area_id", "category", "horizon"]
    pd.testing.assert_frame_equal(oracle.rows[key], ha_result.rows[key])
    assert (oracle.rows["actual"].to_numpy() == ha_result.rows["actual"].to_numpy()).all()
    assert (oracle.summary["overall"]["poisson_deviance"]
            < ha_result.summary["overall"]["poisson_deviance"])


def test_gate_scores_expose_deviance_pai_and_disparity(ha_result) -> None:
    view = gate_scores(ha_result.summary, PromotionSettings(pai_area_share=0.05))
    assert view["pai"] == ha_result.summary["overall"]["pai@5%"]
    assert any(k.startswith("flag_rate_per_resident/") for k in view["disparity"])
    with pytest.raises(KeyError, match="pai@2%"):
        gate_scores(ha_result.summary, PromotionSettings(pai_area_share=0.02))
