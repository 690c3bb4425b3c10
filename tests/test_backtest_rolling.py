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


@pytest.mark.parametrize(("refit_every", "fits"), [(0, 2), (2, 4)])
def test_refit_every_controls_how_often_the_model_is_fitted(synthetic_city, refit_every: int,
                                                            fits: int) -> None:
    # One fit for the validation weeks, one at the first test origin, then every k-th.
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
    assert view["pai"] == ha_result.summary["targets"]["all"]["1"]["pai@5%"]
    assert view["poisson_deviance"] == ha_result.summary["targets"]["all"]["1"]["poisson_deviance"]
    assert any(k.startswith("flag_rate_per_resident/") for k in view["disparity"])
    with pytest.raises(KeyError, match="pai@2%"):
        gate_scores(ha_result.summary, PromotionSettings(pai_area_share=0.02))


def test_validation_weeks_calibrate_without_touching_a_test_week(ha_result, synthetic_city) -> None:
    validation = ha_result.validation_rows
    first_test_origin = ha_result.rows["origin"].min()
    assert validation["week"].max() <= first_test_origin
    assert validation["origin"].nunique() == SETTINGS.validation_weeks
    calibration = ha_result.summary["calibration"]
    cells = calibration["targets"]["all"]["80"]["*"]
    assert cells["rows"] == len(validation[validation["category"] == "violent"])
    # The test rows carry the calibrated bounds; their uncalibrated coverage is reported too.
    headline = ha_result.summary["targets"]["all"]["1"]
    assert {"coverage_80", "coverage_80_uncalibrated", "log_score", "rps",
            "pit_calibration_error"} <= set(headline)
    assert sum(headline["pit_histogram"]) == pytest.approx(1.0)


def test_every_backtest_reports_ceilings_and_the_gap_closed(ha_result, synthetic_city) -> None:
    summary = ha_result.summary
    assert set(summary["ceilings"]) == {"smoother", "hindsight", "reference_mean"}
    hindsight = summary["ceilings"]["hindsight"]["all"]["1"]
    model = summary["targets"]["all"]["1"]
    # Flags rank by count, PAI* by the best set of the same size: hindsight is close to 1.
    assert model["pei_star@5%"] < hindsight["pei_star@5%"] <= 1.0
    assert hindsight["hit_rate@5%"] >= model["hit_rate@5%"]
    assert "poisson_deviance" not in hindsight
    reference = summary["ceilings"]["reference_mean"]["all"]["1"]
    smoother = summary["ceilings"]["smoother"]["all"]["1"]
    share = summary["gap_closed"]["all"]["1"]["smoother"]["poisson_deviance"]
    gap = smoother["poisson_deviance"] - reference["poisson_deviance"]
    if gap < 0:
        assert share == pytest.approx((model["poisson_deviance"]
                                       - reference["poisson_deviance"]) / gap)
    else:  # the ceiling does not beat the reference: no gap to close
        assert share is None
    hit = summary["gap_closed"]["all"]["1"]["hindsight"]["hit_rate@5%"]
    assert hit == pytest.approx((model["hit_rate@5%"] - reference["hit_rate@5%"])
                                / (hindsight["hit_rate@5%"] - reference["hit_rate@5%"]))


def test_smoother_ceiling_is_the_mean_of_the_weeks_around_the_target(synthetic_city) -> None:
    from crimecast.data.panel import panel_arrays
    from crimecast.forecast.backtest import ceiling_rows

    settings = EvaluationSettings(backtest_weeks=6, ceiling_halfwidth=2)
    result = run_backtest(get_model("historical_average", window=4), synthetic_city.panel,
                          synthetic_city.graph, settings, progress=False)
    data = panel_arrays(synthetic_city.panel, synthetic_city.graph)
    smoother = ceiling_rows(result.rows, data, synthetic_city.graph, settings)["smoother"]
    row = smoother.iloc[0]
    week = data.weeks.get_loc(row["week"])
    area = list(synthetic_city.graph.area_ids).index(row["area_id"])
    cat = data.categories.index(row["category"])
    around = [w for w in range(week - 2, week + 3) if w != week and w < len(data.weeks)]
    assert row["mean"] == pytest.approx(data.counts[area, around, cat].mean())


def test_categories_without_incidents_are_left_out_with_a_warning(synthetic_city) -> None:
    from crimecast.forecast.metrics import ScoringWarning, active_categories

    rows = pd.DataFrame({"category": ["violent", "violent", "arson"], "actual": [1.0, 0, 0]})
    with pytest.warns(ScoringWarning, match="arson"):
        assert active_categories(rows) == ["violent"]
