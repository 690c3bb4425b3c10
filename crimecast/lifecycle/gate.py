"""The promotion gate: a pure function from paired evidence to a verdict, under a policy.

:func:`gate_evidence` scores a challenger and a reference (the champion, or the best
baseline while there is none) on the *same* backtest rows of the gate's target and
horizon (``configs/promotion.yaml``: ``target``, ``horizon``) and returns their paired
differences with 95 % confidence intervals (:mod:`crimecast.forecast.evidence`: a
moving-block bootstrap over the backtest weeks). :func:`gate` turns that evidence into a
verdict with every check, its numbers, its interval and one plain sentence, and says
which policy decided (:func:`policy_text` says it in words).

Accuracy (relative change ``challenger / reference - 1`` of the Poisson deviance, lower
is better, and of PAI at ``pai_area_share`` of land area, higher is better):

- **non-inferiority** (default): a metric passes when its CI stays within its margin on
  the worse side (deviance: upper bound ≤ ``margins.poisson_deviance``; PAI: lower bound
  ≥ ``-margins.pai``). All pass and at least one is better by more than its margin (CI
  entirely beyond the margin on the better side) → the challenger is **better**; all
  pass, none better → a **tie**; any fails → **worse**. The margins are the smallest
  differences that count: they sit above the differences retraining one model with
  another seed produces, so a re-run is a tie, not a verdict.
- **superiority**: every metric must be better beyond doubt → **better**; any CI entirely
  on the worse side of 0 → **worse**; otherwise a **tie**.

A tie goes to the current model (``tie_break: champion``) or to the model of lower
complexity (``tie_break: simpler``; :attr:`Forecaster.complexity`).

Fairness, for each gated disparity ratio (flags per recorded incident relative to the
city; 1.0 = parity) of each group with at least ``min_group_areas`` areas and not in
``exempt_groups``: the group passes when the 95 % CI of the challenger's ratio reaches
into ``disparity_band`` (the data do not show it outside the band), **or** when the
challenger is not further from parity (``|ln ratio|``) than the reference by more than
``disparity_margin``, judged by the upper bound of the paired CI of that difference. The
second clause lets a model keep a group outside the band when the model it replaces did
so too; it is a policy, and every decision says so.

A champion seeded from a baseline meets the band rule on its own
(:func:`baseline_fairness`); if no baseline does, the decision records a public
exception (promotion.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import Field, field_validator

from crimecast.config import ConcernSettings
from crimecast.contracts import AreaGraph
from crimecast.forecast.evidence import (
    disparity_evidence,
    paired_comparison,
    population_by_group,
    target_components,
)
from crimecast.forecast.metrics import ALL
from crimecast.forecast.settings import EvaluationSettings

#: The accuracy metrics the gate compares, by their margin's key.
GATED_METRICS: tuple[str, ...] = ("poisson_deviance", "pai")
_WORDS = {"poisson_deviance": "Poisson deviance (forecast error, lower is better)",
          "pai": "PAI (share of crime in the flagged areas per share of land, higher is "
                 "better)"}


class PromotionSettings(ConcernSettings):
    """configs/promotion.yaml: the gate's policy, margins and fairness rules."""

    concern: ClassVar[str] = "promotion"
    policy: Literal["non_inferiority", "superiority"] = "non_inferiority"
    margins: dict[str, float] = Field(
        default_factory=lambda: {"poisson_deviance": 0.025, "pai": 0.05},
        description="relative margins of the non-inferiority test")
    tie_break: Literal["champion", "simpler"] = "champion"
    target: str = Field(ALL, description="the target compared: a category or 'all'")
    horizon: int = Field(1, ge=1, le=4, description="the horizon compared")
    pai_area_share: float = 0.05
    disparity_band: tuple[float, float] = (0.8, 1.25)
    disparity_margin: float = 0.10
    disparity_kinds: list[str] = Field(default_factory=lambda: ["flag_rate_per_incident"])
    min_group_areas: int = 5
    exempt_groups: list[str] = Field(default_factory=lambda: ["unknown"])
    seed_champion_with_baseline: bool = True
    baselines: list[str] = Field(
        default_factory=lambda: ["historical_average", "seasonal_naive"])

    @field_validator("disparity_band")
    @classmethod
    def _band_ordered(cls, band: tuple[float, float]) -> tuple[float, float]:
        if not 0 < band[0] <= 1 <= band[1]:
            raise ValueError(f"disparity_band must satisfy 0 < low <= 1 <= high, got {band}")
        return band

    @field_validator("margins")
    @classmethod
    def _known_margins(cls, margins: dict[str, float]) -> dict[str, float]:
        if set(margins) != set(GATED_METRICS):
            raise ValueError(f"margins must give exactly {list(GATED_METRICS)}, "
                             f"got {sorted(margins)}")
        if any(not -1 < m < 1 for m in margins.values()):
            raise ValueError("margins are relative changes between -1 and 1, e.g. 0.01 = 1 %")
        return margins

    @property
    def pai_key(self) -> str:
        """The metric name of PAI at the gate's land-area share (``pai@5%``)."""
        return f"pai@{self.pai_area_share * 100:g}%"


# --------------------------------------------------------------------------- evidence
@dataclass
class GateEvidence:
    """What the gate judges: paired accuracy comparisons (``accuracy[metric]`` from
    :func:`crimecast.forecast.evidence.paired_comparison`, ``metric`` in
    :data:`GATED_METRICS`), disparity evidence per ``"<kind>/<group>"``, and the two
    models' labels and complexity ranks."""

    accuracy: dict[str, dict[str, Any]]
    disparity: dict[str, dict[str, Any]]
    challenger: str
    reference: str
    challenger_complexity: int = 0
    reference_complexity: int = 0


def gate_evidence(challenger_rows: pd.DataFrame, reference_rows: pd.DataFrame,
                  graph: AreaGraph, settings: PromotionSettings,
                  evaluation: EvaluationSettings | None = None, *,
                  challenger: str = "challenger", reference: str = "reference",
                  challenger_calibration: dict[str, Any] | None = None,
                  reference_calibration: dict[str, Any] | None = None,
                  challenger_complexity: int = 0, reference_complexity: int = 0,
                  ) -> GateEvidence:
    """Paired evidence of two backtests on the gate's target and horizon (the rows must
    be the same cells; ``ValueError`` otherwise)."""
    from crimecast.forecast.evidence import check_same_rows

    evaluation = evaluation or EvaluationSettings.load()
    check_same_rows(reference_rows, challenger_rows)
    population = population_by_group(graph.areas)
    parts = [target_components(rows, graph.areas, settings.target, settings.horizon,
                               calibration, evaluation)
             for rows, calibration in ((reference_rows, reference_calibration),
                                       (challenger_rows, challenger_calibration))]
    if settings.pai_key not in parts[0].columns:
        raise KeyError(f"backtest has no {settings.pai_key!r}; add {settings.pai_area_share} "
                       "to configs/evaluation.yaml area_shares or change "
                       "configs/promotion.yaml pai_area_share")
    compared = paired_comparison(parts[0], parts[1], evaluation, population,
                                 ["poisson_deviance", settings.pai_key])
    return GateEvidence(
        accuracy={"poisson_deviance": compared["poisson_deviance"],
                  "pai": compared[settings.pai_key]},
        disparity=disparity_evidence(parts[0], parts[1], evaluation, population,
                                     settings.disparity_kinds),
        challenger=challenger, reference=reference,
        challenger_complexity=challenger_complexity, reference_complexity=reference_complexity)


def gate_scores(summary: dict[str, Any], settings: PromotionSettings) -> dict[str, Any]:
    """The gate's numbers (point estimates) from a backtest summary, at the gate's target
    and horizon: ``{"poisson_deviance", "pai" (at ``pai_area_share``), "disparity":
    {"<kind>/<group>": ratio}}``. Raises ``KeyError`` naming the share when the backtest
    did not compute that PAI."""
    headline = summary["targets"][settings.target][str(settings.horizon)]
    if settings.pai_key not in headline:
        have = sorted(k for k in headline if k.startswith("pai@"))
        raise KeyError(f"backtest summary has no {settings.pai_key!r} (has {have}); add "
                       f"{settings.pai_area_share} to configs/evaluation.yaml area_shares or "
                       "change configs/promotion.yaml pai_area_share")
    disparity = {}
    for key, value in headline.items():
        kind, _, group = key.partition("_ratio/")
        if group and kind in ("flag_rate_per_incident", "flag_rate_per_resident"):
            disparity[f"{kind}/{group}"] = float("nan") if value is None else float(value)
    return {"poisson_deviance": float(headline["poisson_deviance"]),
            "pai": float(headline[settings.pai_key]), "disparity": disparity}


# ------------------------------------------------------------------------------ gate
@dataclass
class GateResult:
    """The verdict: ``promote``, the ``outcome`` of the accuracy test (``better``,
    ``tie``, ``worse``), the reason, every check and the policy that decided."""

    promote: bool
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = ""
    policy: dict[str, Any] = field(default_factory=dict)


def policy_record(settings: PromotionSettings) -> dict[str, Any]:
    """The policy as recorded in every decision: ``kind``, ``margins``, ``tie_break``,
    ``text``."""
    return {"kind": settings.policy, "margins": dict(settings.margins),
            "tie_break": settings.tie_break, "target": settings.target,
            "horizon": settings.horizon, "pai_area_share": settings.pai_area_share,
            "text": policy_text(settings)}


def _pct(value: float | None, signed: bool = True) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * 100:+.1f} %" if signed else f"{value * 100:.1f} %"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _target_words(settings: PromotionSettings) -> str:
    what = "all recorded crimes" if settings.target == ALL else f"{settings.target} crimes"
    weeks = "one week" if settings.horizon == 1 else f"{settings.horizon} weeks"
    return f"the forecast of {what} {weeks} ahead"


def policy_text(settings: PromotionSettings) -> str:
    """The gate's policy in plain words (decisions, README and the report's model card)."""
    dev, pai = settings.margins["poisson_deviance"], settings.margins["pai"]
    share = f"{settings.pai_area_share * 100:g} %"
    if settings.policy == "non_inferiority":
        accuracy = (
            f"A new model replaces the current one only if, on the same backtest weeks and "
            f"for {_target_words(settings)}, it is shown not to be worse beyond a margin: "
            f"the 95 % confidence interval of the change in forecast error (Poisson "
            f"deviance) must stay below {_pct(dev)}, and that of the change in hotspot "
            f"accuracy (PAI at {share} of the land area) above {_pct(-pai)}. It must also be "
            "better by more than the margin on at least one of the two (its interval "
            f"entirely below {_pct(-dev)} for the error, or above {_pct(pai)} for PAI): "
            "differences inside the margins are smaller than retraining the same model with "
            "another random seed produces, so they do not count either way.")
    else:
        accuracy = (
            f"A new model replaces the current one only if, on the same backtest weeks and "
            f"for {_target_words(settings)}, it is better beyond doubt on both forecast "
            f"error (Poisson deviance) and hotspot accuracy (PAI at {share} of the land "
            "area): the 95 % confidence interval of each change lies entirely on the better "
            "side of zero.")
    tie = ("When the evidence shows neither model better, the current model stays."
           if settings.tie_break == "champion" else
           "When the evidence shows neither model better, the simpler model is chosen.")
    low, high = settings.disparity_band
    exempt = (f" (areas labelled {', '.join(settings.exempt_groups)} are not a demographic "
              "group and are exempt)" if settings.exempt_groups else "")
    fairness = (
        f"Fairness: for every demographic group with at least {settings.min_group_areas} "
        f"areas{exempt}, the model's hotspot flags per recorded incident, relative to the "
        f"city as a whole, must not be shown to lie outside {low:g}–{high:g} (the 95 % "
        "interval of the ratio must reach into that band), unless the group is no further "
        f"from parity than under the model it replaces, by at most {settings.disparity_margin:g} "
        "on the log scale (upper end of the paired 95 % interval). That second rule means a "
        "model may keep a group outside the band if the current model already does so; it "
        "does not let the gap grow.")
    seed = (" With no current model, the best baseline forecast is the reference; if the new "
            "model is not chosen, a baseline that passes the band rule on its own becomes the "
            "first model in use, and if none passes, the most accurate baseline is used and "
            "the decision records a public exception saying why."
            if settings.seed_champion_with_baseline else "")
    return f"{accuracy} {tie} {fairness}{seed}"


def _accuracy_check(metric: str, entry: dict[str, Any],
                    settings: PromotionSettings) -> dict[str, Any]:
    """One accuracy check on the relative change and its CI."""
    margin = settings.margins[metric]
    relative, (low, high) = entry.get("relative"), entry.get("relative_ci") or [None, None]
    lower_better = metric == "poisson_deviance"
    if low is None or high is None:
        verdict = "inconclusive"
    elif settings.policy == "non_inferiority":
        # Differences inside the margin either way are too small to matter (the margins
        # sit above re-training noise): better means better by more than the margin.
        # (A negative margin demands an improvement of at least |margin| even to pass.)
        better = high < -abs(margin) if lower_better else low > abs(margin)
        within_margin = high <= margin if lower_better else low >= -margin
        verdict = "better" if better else "not_worse" if within_margin else "worse"
    else:
        better = high < 0 if lower_better else low > 0
        worse_than_zero = low > 0 if lower_better else high < 0
        verdict = "better" if better else "worse" if worse_than_zero else "unclear"
    passed = verdict == "better" or (settings.policy == "non_inferiority"
                                     and verdict == "not_worse")
    bound = (f"upper end {_pct(high)} vs the allowed {_pct(margin)}" if lower_better else
             f"lower end {_pct(low)} vs the allowed {_pct(-margin)}")
    meaning = {"better": ("better by more than the margin" if settings.policy ==
                          "non_inferiority" else "better beyond doubt"),
               "not_worse": "not worse beyond the margin, and not better beyond it",
               "unclear": "not shown better or worse",
               "worse": ("worse beyond the margin" if settings.policy == "non_inferiority"
                         else "worse beyond doubt"),
               "inconclusive": "no interval could be computed"}[verdict]
    words = _WORDS[metric]
    plain = (f"{words[0].upper() + words[1:]}: {_num(entry.get('challenger'))} for the new model "
             f"against {_num(entry.get('reference'))}, a change of {_pct(relative)} (95 % "
             f"interval {_pct(low)} to {_pct(high)}; {bound}): {meaning}.")
    return {"check": metric if lower_better else f"pai@{settings.pai_area_share:g}",
            "passed": bool(passed), "verdict": verdict,
            "challenger": entry.get("challenger"), "reference": entry.get("reference"),
            "diff": relative, "ci": [low, high], "relative": True,
            "absolute_diff": entry.get("diff"), "absolute_ci": entry.get("ci"),
            "margin": margin, "dm_p_value": entry.get("dm_p_value"), "plain": plain}


def exemption(group: str, settings: PromotionSettings,
              group_sizes: dict[str, int] | None) -> str | None:
    """Why ``group`` is exempt from the disparity checks, or None. Small groups' ratios
    rest on a handful of flags and swing from 0 to several-fold by chance; exempt labels
    are not demographic groups (e.g. areas without residents)."""
    if group in settings.exempt_groups:
        return "exempt: not a demographic group (exempt_groups)"
    if group_sizes is not None and group_sizes.get(group, 0) < settings.min_group_areas:
        return (f"exempt: {group_sizes.get(group, 0)} areas < min_group_areas "
                f"{settings.min_group_areas}")
    return None


def _disparity_check(key: str, entry: dict[str, Any], settings: PromotionSettings,
                     group_sizes: dict[str, int] | None,
                     reference_named: str = "the current model") -> dict[str, Any] | None:
    group = key.split("/", 1)[-1]
    ratio = entry.get("challenger")
    if ratio is None:
        return None  # no incidents or residents in this group: nothing to compare
    low, high = settings.disparity_band
    ci = entry.get("challenger_ci") or [None, None]
    check: dict[str, Any] = {"check": f"disparity:{key}", "challenger": ratio,
                             "challenger_ci": ci, "reference": entry.get("reference"),
                             "reference_ci": entry.get("reference_ci"),
                             "diff": entry.get("distance_diff"),
                             "ci": entry.get("distance_diff_ci"), "relative": False,
                             "band": [low, high], "margin": settings.disparity_margin}
    note = exemption(group, settings, group_sizes)
    if note is not None:
        check.update(passed=True, note=note,
                     plain=f"Areas labelled '{group}': {note.removeprefix('exempt: ')}, so "
                           "the fairness rule does not apply.")
        return check
    ci_low = ci[0] if ci[0] is not None else ratio
    ci_high = ci[1] if ci[1] is not None else ratio
    reaches_band = ci_high >= low and ci_low <= high
    distance_high = (entry.get("distance_diff_ci") or [None, None])[1]
    not_further = distance_high is not None and distance_high <= settings.disparity_margin
    check.update(passed=bool(reaches_band or not_further), in_band=bool(reaches_band),
                 not_further_from_parity=bool(not_further))
    head = (f"Group '{group}': flags per recorded incident are {_num(ratio, 2)} times the "
            f"city rate (95 % interval {_num(ci_low, 2)}–{_num(ci_high, 2)})")
    if reaches_band:
        plain = f"{head}, which reaches into the band {low:g}–{high:g}: passes."
    elif not_further:
        plain = (f"{head}, outside the band {low:g}–{high:g}, but no further from parity "
                 f"than under {reference_named} ({_num(entry.get('reference'), 2)}): the "
                 f"upper end of the paired interval of the difference is "
                 f"{_num(distance_high, 2)} ≤ the allowed {settings.disparity_margin:g}: "
                 "passes by the not-worse rule.")
    elif entry.get("reference") is None:
        plain = f"{head}, outside the band {low:g}–{high:g}: fails."
    else:
        plain = (f"{head}, outside the band {low:g}–{high:g}, and it may be further from "
                 f"parity than under {reference_named} ({_num(entry.get('reference'), 2)}) "
                 f"by more than {settings.disparity_margin:g} (upper end "
                 f"{_num(distance_high, 2)}): fails.")
    check["plain"] = plain
    return check


def fairness_checks(disparity: dict[str, dict[str, Any]], settings: PromotionSettings,
                    group_sizes: dict[str, int] | None = None,
                    reference_named: str = "the current model") -> list[dict[str, Any]]:
    """The disparity checks of every gated ratio (sorted by group)."""
    checks = []
    for key in sorted(disparity):
        if key.split("/", 1)[0] not in settings.disparity_kinds:
            continue
        check = _disparity_check(key, disparity[key], settings, group_sizes, reference_named)
        if check is not None:
            checks.append(check)
    return checks


def baseline_fairness(disparity: dict[str, dict[str, Any]], settings: PromotionSettings,
                      group_sizes: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """The band rule alone, for a baseline about to be seeded as the first champion
    (there is no model it replaces, so the not-worse rule cannot apply)."""
    alone = {k: {**v, "reference": None, "reference_ci": [None, None],
                 "distance_diff": None, "distance_diff_ci": [None, None]}
             for k, v in disparity.items()}
    return fairness_checks(alone, settings, group_sizes)


def gate(evidence: GateEvidence, settings: PromotionSettings,
         group_sizes: dict[str, int] | None = None) -> GateResult:
    """Decide whether the challenger may replace the reference. Pure function: returns
    the verdict with every check (accuracy first, then fairness) and the policy."""
    accuracy = [_accuracy_check(m, evidence.accuracy[m], settings) for m in GATED_METRICS]
    verdicts = [c["verdict"] for c in accuracy]
    if settings.policy == "non_inferiority":
        if all(c["passed"] for c in accuracy):
            outcome = "better" if "better" in verdicts else "tie"
        else:
            outcome = "worse"
    else:
        outcome = ("better" if all(v == "better" for v in verdicts) else
                   "worse" if "worse" in verdicts else "tie")
    if outcome == "tie":
        simpler = evidence.challenger_complexity < evidence.reference_complexity
        wins = settings.tie_break == "simpler" and simpler
        to = ("the simpler model" if settings.tie_break == "simpler" and wins else
              "the reference, the simpler or equally simple model"
              if settings.tie_break == "simpler" else "the reference (tie_break: champion)")
        tie = (f"neither model is shown better on accuracy: a tie, which goes to {to}, "
               f"{evidence.challenger if wins else evidence.reference}")
    else:
        wins = outcome == "better"
    fairness = fairness_checks(evidence.disparity, settings, group_sizes,
                               f"the reference ({evidence.reference})")
    checks = accuracy + fairness
    failed_fairness = [c for c in fairness if not c["passed"]]
    policy = policy_record(settings)
    if wins and not failed_fairness:
        reason = (f"{evidence.challenger} is better than {evidence.reference} on the "
                  f"{settings.policy.replace('_', '-')} test" if outcome == "better" else
                  f"{tie}") + "; every group passes the fairness rule"
        return GateResult(True, reason, checks, outcome, policy)
    parts = []
    if not wins:
        if outcome == "tie":
            parts.append(tie)
        else:
            parts += [f"{c['check']}: {c['plain']}" for c in accuracy if not c["passed"]]
    parts += [f"{c['check']}: {c['plain']}" for c in failed_fairness]
    return GateResult(False, "refused: " + " ".join(parts), checks, outcome, policy)


def group_sizes(graph: AreaGraph) -> dict[str, int]:
    """Areas per demographic group (``graph.areas["group"]``)."""
    return {str(g): int(n) for g, n in graph.areas["group"].value_counts().items()}
