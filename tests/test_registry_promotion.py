"""Promotion gate, audit log, rollback and alias history against a real MLflow SQLite store.

The challengers are a historical average with deliberate distortions (``GroupScaled``):
a uniform over-forecast (same ranking, worse deviance: the champion to beat), the plain
model (fair and more accurate), and one that inflates one group's forecasts (more accurate
than the champion, but flags that group far more often per true incident).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crimecast.forecast.models.historical_average import HistoricalAverage
from crimecast.lifecycle.audit import alias_history, append_audit, champion_lineage, read_audit
from crimecast.lifecycle.gate import GateEvidence, PromotionSettings, gate, policy_text
from crimecast.lifecycle.promotion import promote, rollback
from crimecast.lifecycle.registry import model_info, resolve_alias, set_alias
from crimecast.lifecycle.store import TrackingSettings, mlflow_client
from crimecast.lifecycle.tracking import train_and_register


class GroupScaled(HistoricalAverage):
    """Historical average x ``scale``, and x ``group_factor`` in areas of ``group``."""

    name = "group_scaled"

    def __init__(self, *, scale: float = 1.0, group: str = "", group_factor: float = 1.0,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.scale, self.group, self.group_factor = scale, group, group_factor

    def _predict_mean(self, data, graph, horizons):
        mean = super()._predict_mean(data, graph, horizons) * self.scale
        mean[graph.areas["group"].to_numpy() == self.group] *= self.group_factor
        return mean


MODEL = f"{__name__}:GroupScaled"


@pytest.mark.slow
def test_biased_challenger_refused_fair_one_promoted_and_rollback_restores(
        synthetic_city, small_backtest: Path) -> None:
    panel, graph = synthetic_city.panel, synthetic_city.graph
    champion = train_and_register(MODEL, panel, graph, {"window": 13, "scale": 1.5})
    set_alias("champion", champion.version, reason="initial champion set by operator")

    biased = train_and_register(MODEL, panel, graph,
                                {"window": 13, "group": "black", "group_factor": 1.5})
    refused = promote(panel, graph, actor="alice")
    assert refused["decision"] == "refused"
    assert refused["challenger_version"] == biased.version
    assert "disparity:flag_rate_per_incident/black" in refused["reason"]
    checks = {c["check"]: c for c in refused["checks"]}
    assert checks["poisson_deviance"]["passed"], "the biased model is more accurate overall"
    assert not checks["disparity:flag_rate_per_incident/black"]["passed"]
    assert resolve_alias("champion") == champion.version
    last = read_audit()[-1]
    assert last["decision"] == "refused" and last["actor"] == "alice"
    assert "disparity:flag_rate_per_incident/black" in last["reason"]
    assert last["metrics"]["challenger"]["poisson_deviance"] < last["metrics"]["reference"]["poisson_deviance"]
    tags = model_info("challenger")["tags"]
    assert tags["promotion.decision"] == "refused"
    # MLflow readable: one sentence per check, the policy, and the decision as JSON.
    assert tags["promotion.check.disparity:flag_rate_per_incident/black".replace(":", "_")
                ].startswith("FAILED: ")
    assert tags["promotion.policy"].startswith("A new model replaces the current one")
    import mlflow.artifacts

    decision = mlflow.artifacts.load_dict(tags["promotion.record"])
    assert decision["decision"] == "refused" and decision["checks"] == json.loads(
        json.dumps(refused["checks"], default=str))

    fair = train_and_register(MODEL, panel, graph, {"window": 13})
    promoted = promote(panel, graph)
    assert promoted["decision"] == "promoted", promoted["reason"]
    assert promoted["actor"] == "test-operator"
    assert resolve_alias("champion") == fair.version
    assert resolve_alias("challenger") is None
    info = model_info("champion")
    assert info["version"] == fair.version and info["tags"]["promotion.decision"] == "promoted"

    client = mlflow_client()
    experiment = client.get_experiment_by_name(TrackingSettings.load().experiment)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # ML, not GenAI
    assert experiment.tags["mlflow.note.content"]
    registered = client.get_registered_model(TrackingSettings.load().registered_model)
    assert "promotion gate" in registered.description
    assert "trained on" in client.get_model_version(registered.name, fair.version).description
    artifacts = [a.path for a in client.list_artifacts(info["run_id"], "evaluation")]
    assert "evaluation/by_group.csv" in artifacts and "evaluation/disparity.csv" in artifacts

    back = rollback(actor="bob", reason="incident review")
    assert back["decision"] == "rolled_back"
    assert resolve_alias("champion") == champion.version
    assert champion_lineage() == [champion.version]

    changes = [(c["event"], c["alias"], c["from"], c["to"]) for c in alias_history()]
    assert changes == [
        ("register", "challenger", None, champion.version),
        ("set_alias", "champion", None, champion.version),
        ("register", "challenger", champion.version, biased.version),
        ("register", "challenger", biased.version, fair.version),
        ("promote", "champion", champion.version, fair.version),
        ("promote", "challenger", fair.version, None),
        ("rollback", "champion", fair.version, champion.version),
    ]


def _entry(reference: float, challenger: float, relative_ci: tuple[float, float]) -> dict:
    return {"reference": reference, "challenger": challenger,
            "diff": challenger - reference, "relative": challenger / reference - 1,
            "ci": [reference * relative_ci[0], reference * relative_ci[1]],
            "relative_ci": list(relative_ci)}


def _ratio(challenger: float, ci: tuple[float, float], reference: float | None = None,
           distance_ci: tuple[float, float] = (-0.05, 0.05)) -> dict:
    return {"challenger": challenger, "challenger_ci": list(ci), "reference": reference,
            "reference_ci": [None, None], "distance_diff": sum(distance_ci) / 2,
            "distance_diff_ci": list(distance_ci)}


def _evidence(deviance_ci=(-0.04, -0.02), pai_ci=(-0.01, 0.01), ratios=None,
              complexity=(4, 1)) -> GateEvidence:
    low, high = deviance_ci
    return GateEvidence(
        accuracy={"poisson_deviance": _entry(1.0, 1.0 + (low + high) / 2, deviance_ci),
                  "pai": _entry(3.0, 3.0 * (1 + sum(pai_ci) / 2), pai_ci)},
        disparity={f"flag_rate_per_incident/{g}": r for g, r in (ratios or {}).items()},
        challenger="v2 (gnn)", reference="v1 (seasonal_naive)",
        challenger_complexity=complexity[0], reference_complexity=complexity[1])


def _settings(**overrides) -> PromotionSettings:
    """The gate's settings with round margins (1 % deviance, 2 % PAI) for these tests."""
    return PromotionSettings(**{"margins": {"poisson_deviance": 0.01, "pai": 0.02},
                                **overrides})


def test_challenger_better_beyond_the_margin_and_not_worse_elsewhere_is_promoted() -> None:
    verdict = gate(_evidence(), _settings())
    assert verdict.promote and verdict.outcome == "better"
    deviance = verdict.checks[0]
    assert deviance["verdict"] == "better" and deviance["relative"] is True
    assert deviance["ci"] == [-0.04, -0.02] and deviance["diff"] == pytest.approx(-0.03)
    assert "-3.0 %" in deviance["plain"] and "better by more than the margin" in deviance["plain"]
    assert verdict.policy["kind"] == "non_inferiority"
    assert verdict.policy["margins"] == {"poisson_deviance": 0.01, "pai": 0.02}


def test_differences_inside_the_margins_are_a_tie_that_goes_to_the_configured_side() -> None:
    tie = _evidence(deviance_ci=(-0.008, 0.004), pai_ci=(-0.015, 0.012))
    kept = gate(tie, _settings(tie_break="champion"))
    assert not kept.promote and kept.outcome == "tie"
    assert all(c["verdict"] == "not_worse" for c in kept.checks[:2])
    assert "tie" in kept.reason and "v1 (seasonal_naive)" in kept.reason
    # tie_break: simpler hands a tie to the lower complexity rank, whichever side it is on.
    assert not gate(tie, _settings(tie_break="simpler")).promote
    simpler = _evidence(deviance_ci=(-0.008, 0.004), pai_ci=(-0.015, 0.012), complexity=(0, 1))
    assert gate(simpler, _settings(tie_break="simpler")).promote


def test_challenger_worse_beyond_a_margin_is_refused_with_the_numbers() -> None:
    verdict = gate(_evidence(pai_ci=(-0.05, -0.01)), _settings())
    assert not verdict.promote and verdict.outcome == "worse"
    pai = verdict.checks[1]
    assert pai["check"] == "pai@0.05" and not pai["passed"] and pai["verdict"] == "worse"
    assert "-5.0 %" in pai["plain"] and "-2.0 %" in pai["plain"]
    assert "pai@0.05" in verdict.reason
    assert gate(_evidence(pai_ci=(-0.05, -0.01)),
                _settings(margins={"poisson_deviance": 0.01, "pai": 0.06})).promote


def test_superiority_needs_every_interval_on_the_better_side_of_zero() -> None:
    settings = _settings(policy="superiority")
    assert gate(_evidence(pai_ci=(0.001, 0.03)), settings).promote
    unclear = gate(_evidence(pai_ci=(-0.01, 0.03)), settings)
    assert not unclear.promote and unclear.outcome == "tie"
    worse = gate(_evidence(pai_ci=(-0.03, -0.001)), settings)
    assert worse.outcome == "worse" and worse.checks[1]["verdict"] == "worse"


def test_disparity_outside_the_band_and_further_from_parity_is_refused() -> None:
    ratios = {"a": _ratio(1.6, (1.4, 1.8), reference=1.3, distance_ci=(0.1, 0.3)),
              "b": _ratio(0.9, (0.7, 1.1), reference=0.9)}
    verdict = gate(_evidence(ratios=ratios), _settings())
    assert not verdict.promote
    check = next(c for c in verdict.checks if c["check"] == "disparity:flag_rate_per_incident/a")
    assert not check["passed"] and check["challenger_ci"] == [1.4, 1.8]
    assert check["ci"] == [0.1, 0.3] and check["relative"] is False
    assert "disparity:flag_rate_per_incident/a" in verdict.reason and "fails" in check["plain"]


def test_disparity_whose_interval_reaches_the_band_or_does_not_worsen_passes() -> None:
    reaches = {"a": _ratio(1.35, (1.2, 1.5), reference=1.0, distance_ci=(0.2, 0.4))}
    verdict = gate(_evidence(ratios=reaches), _settings())
    assert verdict.promote and "reaches into the band" in verdict.checks[-1]["plain"]
    kept_out = {"a": _ratio(2.4, (2.1, 2.7), reference=2.2, distance_ci=(-0.02, 0.08))}
    verdict = gate(_evidence(ratios=kept_out), _settings())
    assert verdict.promote
    assert "no further from parity" in verdict.checks[-1]["plain"]
    assert "not-worse rule" in verdict.checks[-1]["plain"]


def test_gate_exempts_small_groups_and_records_it() -> None:
    ratios = {"tiny": _ratio(0.0, (0.0, 0.0), reference=1.0, distance_ci=(9.0, 9.0)),
              "big": _ratio(1.0, (0.9, 1.1), reference=1.0)}
    verdict = gate(_evidence(ratios=ratios), _settings(min_group_areas=5),
                   group_sizes={"tiny": 3, "big": 40})
    assert verdict.promote
    note = next(c for c in verdict.checks if c["check"].endswith("/tiny"))
    assert "exempt" in note["note"] and "3 areas" in note["plain"]


def test_gate_exempts_areas_without_a_demographic_group() -> None:
    ratios = {"unknown": _ratio(0.3, (0.2, 0.4), reference=0.7, distance_ci=(0.5, 1.0)),
              "big": _ratio(1.0, (0.9, 1.1), reference=1.0)}
    sizes = {"unknown": 17, "big": 40}
    evidence = _evidence(ratios=ratios)
    assert not gate(evidence, _settings(exempt_groups=[]), sizes).promote
    verdict = gate(evidence, _settings(), sizes)
    assert verdict.promote
    note = next(c for c in verdict.checks if c["check"].endswith("/unknown"))
    assert "not a demographic group" in note["note"]


def test_policy_text_says_margins_tie_break_and_the_fairness_rule_in_words() -> None:
    text = policy_text(_settings())
    for words in ("+1.0 %", "-2.0 %", "current model stays", "0.8–1.25",
                  "keep a group outside the band", "public exception"):
        assert words in text, words
    assert "simpler model is chosen" in policy_text(_settings(tie_break="simpler"))
    assert "both" in policy_text(_settings(policy="superiority"))


def test_audit_log_appends_json_lines_and_skips_torn_tail(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    first = append_audit({"event": "promote", "decision": "refused", "reason": "r1"}, log)
    append_audit({"event": "promote", "decision": "promoted", "reason": "r2",
                  "actor": "carol"}, log)
    with open(log, "a") as handle:  # a crash mid-write leaves a partial last line
        handle.write('{"event": "promo')
    records = read_audit(log)
    assert [r["reason"] for r in records] == ["r1", "r2"]
    assert records[0]["at"] == first["at"] and records[1]["actor"] == "carol"
    assert json.loads(log.read_text().splitlines()[0])["decision"] == "refused"


def test_champion_lineage_follows_promotions_and_rollbacks(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    for event, before, after in [("set_alias", None, "1"), ("promote", "1", "2"),
                                 ("promote", "2", "3"), ("rollback", "3", "2")]:
        append_audit({"event": event, "alias_changes": [
            {"alias": "champion", "from": before, "to": after}]}, log)
    assert champion_lineage(log) == ["1", "2"]
    assert [c["to"] for c in alias_history(log)] == ["1", "2", "3", "2"]


def test_backtests_are_computed_once_per_specification(
        synthetic_city, synthetic_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import crimecast.forecast.backtest
    from crimecast.forecast.backtest import backtest_model
    from crimecast.forecast.models import get_model

    monkeypatch.setenv("CRIMECAST_EVALUATION__BACKTEST_WEEKS", "4")
    calls = []
    real = crimecast.forecast.backtest.run_backtest
    monkeypatch.setattr(crimecast.forecast.backtest, "run_backtest",
                        lambda *a, **k: calls.append(a[0].get_params()) or real(*a, **k))
    panel, graph = synthetic_city.panel, synthetic_city.graph
    rows, summary = backtest_model(get_model("historical_average", window=4), panel, graph)
    again_rows, again = backtest_model(get_model("historical_average", window=4), panel, graph)
    assert len(calls) == 1 and again == summary and again_rows.equals(rows)
    backtest_model(get_model("historical_average", window=8), panel, graph)
    monkeypatch.setenv("CRIMECAST_EVALUATION__BACKTEST_WEEKS", "5")
    backtest_model(get_model("historical_average", window=4), panel, graph)
    assert len(calls) == 3, "new params or new windows are new backtests"
