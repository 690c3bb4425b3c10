"""The gate on real backtests of the synthetic city, with the default policy:

- a model retrained with another seed is a tie (neither promoted as better nor refused as
  worse) under non-inferiority;
- a clearly worse challenger is refused and a clearly better one promoted;
- a champion seeded from a baseline outside the fairness band carries a public exception;
- ``crimecast evaluate`` and ``crimecast promote`` show the CIs, the ceilings and the
  policy in plain words.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crimecast.cli import app
from crimecast.forecast.backtest import run_backtest
from crimecast.forecast.models import get_model
from crimecast.forecast.models.historical_average import HistoricalAverage
from crimecast.forecast.settings import EvaluationSettings
from crimecast.lifecycle.audit import read_audit
from crimecast.lifecycle.gate import PromotionSettings, gate, gate_evidence, group_sizes
from crimecast.lifecycle.registry import model_info, resolve_alias
from crimecast.lifecycle.tracking import train_and_register


class Scaled(HistoricalAverage):
    """A historical average times ``scale``: the same ranking, a worse expected count."""

    name = "scaled"

    def __init__(self, *, scale: float = 1.0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.scale = scale

    def _predict_mean(self, data, graph, horizons):
        return super()._predict_mean(data, graph, horizons) * self.scale


def _verdict(challenger, reference, city, settings=None):
    settings = settings or PromotionSettings()
    return gate(gate_evidence(challenger.rows, reference.rows, city.graph, settings,
                              EvaluationSettings()), settings, group_sizes(city.graph))


@pytest.mark.slow
def test_the_same_model_retrained_with_another_seed_is_a_tie(synthetic_city) -> None:
    runs = [run_backtest(get_model("lightgbm_poisson", seed=seed), synthetic_city.panel,
                         synthetic_city.graph, EvaluationSettings(), progress=False)
            for seed in (0, 1, 2)]
    for other in runs[1:]:
        verdict = _verdict(other, runs[0], synthetic_city)
        assert verdict.outcome == "tie", verdict.reason
        assert not verdict.promote and "tie" in verdict.reason
        assert {c["verdict"] for c in verdict.checks[:2]} == {"not_worse"}


def test_a_clearly_worse_challenger_is_refused_and_a_clearly_better_one_promoted(
        synthetic_city) -> None:
    settings = EvaluationSettings()
    fair = run_backtest(HistoricalAverage(window=13), synthetic_city.panel,
                        synthetic_city.graph, settings, progress=False)
    inflated = run_backtest(Scaled(window=13, scale=1.5), synthetic_city.panel,
                            synthetic_city.graph, settings, progress=False)
    worse = _verdict(inflated, fair, synthetic_city)
    assert not worse.promote and worse.outcome == "worse"
    deviance = worse.checks[0]
    assert deviance["verdict"] == "worse" and deviance["ci"][0] > 0.025
    assert "poisson_deviance" in worse.reason and "worse beyond the margin" in worse.reason
    better = _verdict(fair, inflated, synthetic_city)
    assert better.promote and better.outcome == "better"
    assert better.checks[0]["ci"][1] < -0.025
    assert better.policy["kind"] == "non_inferiority" and better.policy["text"]


@pytest.mark.slow
def test_evaluate_and_a_seeded_champion_outside_the_band_record_a_public_exception(
        synthetic_city, small_backtest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracked_project = small_backtest
    # A band nobody's interval reaches: every baseline is outside it on its own.
    monkeypatch.setenv("CRIMECAST_PROMOTION__DISPARITY_BAND", "[0.999, 1.001]")
    monkeypatch.setenv("COLUMNS", "250")
    panel, graph = synthetic_city.panel, synthetic_city.graph
    challenger = train_and_register(f"{__name__}:Scaled", panel, graph,
                                    {"window": 13, "scale": 2.0})
    runner = CliRunner()

    evaluated = runner.invoke(app, ["evaluate"])
    assert evaluated.exit_code == 0, evaluated.output
    for words in ("paired 95 % CIs against", "two-sided smoother (ceiling)",
                  "perfect hindsight (ceiling)", "Policy", "current model stays",
                  "Gate preview", "would be refused"):
        assert words in evaluated.output, words
    payload = json.loads((tracked_project / "artifacts" / "evaluation.json").read_text())
    for key in ("version", "alias", "model", "data_version", "models", "gate", "by_group",
                "disparity", "run_id", "comparisons", "ceilings", "ceiling_comparisons",
                "gap_closed", "calibration", "coverage_by_group", "disparity_ci",
                "gate_preview", "policy", "headline", "reference"):
        assert key in payload, key
    label = f"v{payload['version']}:{payload['model']}"
    deviance = payload["comparisons"][label]["all"]["poisson_deviance"]
    assert deviance["ci"][0] > 0 and len(deviance["relative_ci"]) == 2

    promoted = runner.invoke(app, ["promote", "--actor", "carol"])
    assert promoted.exit_code == 0, promoted.output
    assert "PUBLIC EXCEPTION" in promoted.output and "policy:" in promoted.output
    record = json.loads((tracked_project / "artifacts" / "promotion.json").read_text())
    assert record["decision"] == "refused" and record["outcome"] == "worse"
    assert record["exception"]["public"] is True
    assert "passes the fairness band" in record["exception"]["reason"]
    assert record["policy"]["kind"] == "non_inferiority" and "0.999–1.001" in record[
        "policy"]["text"]
    accuracy = record["checks"][0]
    assert {"check", "passed", "plain", "diff", "ci", "relative"} <= set(accuracy)
    seeded = record["seed"]["baseline"]
    assert all("plain" in c for c in record["seed"]["checks"])
    champion = model_info("champion")
    assert champion["model_name"] == seeded and resolve_alias("challenger") == challenger.version
    assert champion["tags"]["promotion.exception"].startswith("no baseline")
    register = read_audit()[-1]
    assert register["event"] == "register" and "PUBLIC EXCEPTION" in register["reason"]


@pytest.mark.slow
def test_an_ensemble_registers_serves_and_goes_through_the_gate(
        synthetic_city, small_backtest: Path) -> None:
    import mlflow
    import pandas as pd

    from crimecast.lifecycle.promotion import promote

    panel, graph = synthetic_city.panel, synthetic_city.graph
    registered = train_and_register("ensemble", panel, graph, {
        "members": ["historical_average", "seasonal_naive"],
        "member_params": {"historical_average": {"window": 8}}})
    assert model_info("challenger")["model_name"] == "ensemble"
    served = mlflow.pyfunc.load_model(f"models:/crimecast/{registered.version}")
    table = served.predict(pd.DataFrame({"horizon": [1]}))
    assert len(table) == graph.num_nodes * len(panel.categories)
    record = promote(panel, graph)
    assert record["challenger_version"] == registered.version
    assert record["decision"] in ("promoted", "refused") and record["policy"]["text"]
