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
from crimecast.lifecycle.gate import PromotionSettings, gate
from crimecast.lifecycle.promotion import promote, rollback
from crimecast.lifecycle.registry import model_info, resolve_alias, set_alias
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


@pytest.fixture
def small_backtest(tracked_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # 8 origins keep each backtest cheap; flagging a quarter of the land area gives every
    # group of the 64-area city enough flags for stable disparity ratios.
    monkeypatch.setenv("CRIMECAST_EVALUATION__BACKTEST_WEEKS", "8")
    monkeypatch.setenv("CRIMECAST_EVALUATION__FLAG_SHARE", "0.25")
    monkeypatch.setenv("CRIMECAST_TRACKING__LOG_MAP", "false")
    monkeypatch.setenv("USER", "test-operator")
    return tracked_project


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
    assert model_info("challenger")["tags"]["promotion.decision"] == "refused"

    fair = train_and_register(MODEL, panel, graph, {"window": 13})
    promoted = promote(panel, graph)
    assert promoted["decision"] == "promoted", promoted["reason"]
    assert promoted["actor"] == "test-operator"
    assert resolve_alias("champion") == fair.version
    assert resolve_alias("challenger") is None
    info = model_info("champion")
    assert info["version"] == fair.version and info["tags"]["promotion.decision"] == "promoted"

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


def _scores(deviance: float, pai: float, **ratios: float) -> dict:
    return {"poisson_deviance": deviance, "pai": pai,
            "disparity": {f"flag_rate_per_incident/{g}": r for g, r in ratios.items()}}


def test_gate_refuses_when_disparity_grows_past_band_and_margin() -> None:
    settings = PromotionSettings()
    reference = _scores(1.0, 3.0, a=1.3, b=0.9)
    verdict = gate(_scores(0.9, 3.1, a=1.6, b=0.9), reference, settings)
    assert not verdict.promote
    assert "disparity:flag_rate_per_incident/a" in verdict.reason


def test_gate_allows_out_of_band_ratio_that_does_not_worsen() -> None:
    settings = PromotionSettings()
    reference = _scores(1.0, 3.0, a=1.6, b=0.9)
    assert gate(_scores(0.9, 3.1, a=1.65, b=1.0), reference, settings).promote


def test_gate_refuses_less_accurate_challenger() -> None:
    settings = PromotionSettings()
    reference = _scores(1.0, 3.0, a=1.0)
    worse_deviance = gate(_scores(1.01, 3.1, a=1.0), reference, settings)
    worse_pai = gate(_scores(0.9, 2.9, a=1.0), reference, settings)
    assert not worse_deviance.promote and "poisson_deviance" in worse_deviance.reason
    assert not worse_pai.promote and "pai@0.05" in worse_pai.reason
    tolerant = PromotionSettings(deviance_tolerance=0.02)
    assert gate(_scores(1.01, 3.1, a=1.0), reference, tolerant).promote


def test_gate_exempts_small_groups_and_records_it() -> None:
    settings = PromotionSettings(min_group_areas=5)
    reference = _scores(1.0, 3.0, tiny=1.0, big=1.0)
    verdict = gate(_scores(0.9, 3.1, tiny=0.0, big=1.0), reference, settings,
                   group_sizes={"tiny": 3, "big": 40})
    assert verdict.promote
    note = next(c for c in verdict.checks if c["check"].endswith("/tiny"))
    assert "exempt" in note["note"]


def test_gate_exempts_areas_without_a_demographic_group() -> None:
    reference = _scores(1.0, 3.0, unknown=0.7, big=1.0)
    challenger = _scores(0.9, 3.1, unknown=0.3, big=1.0)
    sizes = {"unknown": 17, "big": 40}
    assert not gate(challenger, reference, PromotionSettings(exempt_groups=[]), sizes).promote
    verdict = gate(challenger, reference, PromotionSettings(), sizes)
    assert verdict.promote
    note = next(c for c in verdict.checks if c["check"].endswith("/unknown"))
    assert "not a demographic group" in note["note"]


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
