"""The promotion gate: a pure function from two backtests' numbers to a verdict.

:func:`gate` compares a challenger with a reference (the champion, or the best baseline
while there is none) on the same backtest windows and returns its verdict with every
check and why. Settings: ``configs/promotion.yaml`` (:class:`PromotionSettings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field, field_validator

from crimecast.config import ConcernSettings
from crimecast.contracts import AreaGraph


class PromotionSettings(ConcernSettings):
    """configs/promotion.yaml: the promotion gate's tolerances."""

    concern: ClassVar[str] = "promotion"
    deviance_tolerance: float = 0.0
    pai_tolerance: float = 0.0
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


# ------------------------------------------------------------------------------ gate

@dataclass
class GateResult:
    """The promotion gate's verdict: ``promote``, the reasons, and every check made."""

    promote: bool
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)


def gate_scores(summary: dict[str, Any], settings: PromotionSettings) -> dict[str, Any]:
    """The numbers the gate compares, from a backtest summary.

    Returns ``{"poisson_deviance": float, "pai": float (at ``settings.pai_area_share``),
    "disparity": {"<kind>/<group>": ratio}}`` with kinds ``flag_rate_per_incident`` and
    ``flag_rate_per_resident``. Raises ``KeyError`` naming the share when the backtest did
    not compute that PAI.
    """
    share = settings.pai_area_share
    key = f"pai@{share * 100:g}%"
    overall = summary["overall"]
    if key not in overall:
        have = sorted(k for k in overall if k.startswith("pai@"))
        raise KeyError(f"backtest summary has no {key!r} (has {have}); add {share} to "
                       "configs/evaluation.yaml area_shares or change configs/promotion.yaml "
                       "pai_area_share")
    disparity = {}
    for group, row in summary.get("disparity", {}).items():
        for kind in ("flag_rate_per_incident", "flag_rate_per_resident"):
            disparity[f"{kind}/{group}"] = float(row[f"{kind}_ratio"])
    return {"poisson_deviance": float(overall["poisson_deviance"]), "pai": float(overall[key]),
            "disparity": disparity}


def gate(challenger: dict[str, Any], reference: dict[str, Any],
         settings: PromotionSettings, group_sizes: dict[str, int] | None = None) -> GateResult:
    """Decide whether ``challenger`` may replace ``reference`` (both from
    :func:`gate_scores`). ``group_sizes`` (areas per group) exempts groups with fewer than
    ``settings.min_group_areas`` areas from the disparity checks: their ratios rest on a
    handful of flags and swing from 0 to several-fold by chance. Pure function."""
    checks: list[dict[str, Any]] = []
    dev_c, dev_r = challenger["poisson_deviance"], reference["poisson_deviance"]
    limit = dev_r * (1 + settings.deviance_tolerance)
    checks.append({"check": "poisson_deviance", "challenger": dev_c, "reference": dev_r,
                   "limit": limit, "passed": bool(dev_c <= limit + 1e-12)})
    pai_c, pai_r = challenger["pai"], reference["pai"]
    floor = pai_r * (1 - settings.pai_tolerance)
    checks.append({"check": f"pai@{settings.pai_area_share:g}", "challenger": pai_c,
                   "reference": pai_r, "limit": floor, "passed": bool(pai_c >= floor - 1e-12)})
    low, high = settings.disparity_band
    for key in sorted(challenger["disparity"]):
        if key.split("/", 1)[0] not in settings.disparity_kinds:
            continue
        ratio_c = challenger["disparity"][key]
        ratio_r = reference["disparity"].get(key)
        if ratio_c is None or not math.isfinite(ratio_c):
            continue  # no incidents or residents in this group: nothing to compare
        group = key.split("/", 1)[-1]
        if group in settings.exempt_groups:
            checks.append({"check": f"disparity:{key}", "challenger": ratio_c,
                           "reference": ratio_r, "passed": True,
                           "note": "exempt: not a demographic group (exempt_groups)"})
            continue
        if group_sizes is not None and group_sizes.get(group, 0) < settings.min_group_areas:
            checks.append({"check": f"disparity:{key}", "challenger": ratio_c,
                           "reference": ratio_r, "passed": True,
                           "note": f"exempt: {group_sizes.get(group, 0)} areas < "
                                   f"min_group_areas {settings.min_group_areas}"})
            continue
        in_band = low <= ratio_c <= high
        distance_c = _parity_distance(ratio_c)
        distance_r = _parity_distance(ratio_r) if ratio_r is not None else None
        # A never-flagged group (ratio 0) is infinitely far from parity; it passes only
        # when the reference never flagged it either.
        not_worse = distance_r is not None and (
            distance_c <= distance_r + settings.disparity_margin or distance_c == distance_r)
        checks.append({"check": f"disparity:{key}", "challenger": ratio_c, "reference": ratio_r,
                       "band": [low, high], "passed": bool(in_band or not_worse)})
    failed = [c for c in checks if not c["passed"]]
    if not failed:
        return GateResult(True, "challenger is at least as accurate and every group's disparity "
                                "ratio is within the band or not worse", checks)
    parts = []
    for c in failed:
        if c["check"].startswith("disparity:"):
            parts.append(f"{c['check']} ratio {c['challenger']:.3f} outside "
                         f"[{low:g}, {high:g}] and further from parity than the reference "
                         f"({_fmt(c['reference'])}) by more than {settings.disparity_margin:g}")
        else:
            parts.append(f"{c['check']} {c['challenger']:.4f} vs reference "
                         f"{c['reference']:.4f} (limit {c['limit']:.4f})")
    return GateResult(False, "refused: " + "; ".join(parts), checks)


def group_sizes(graph: AreaGraph) -> dict[str, int]:
    """Areas per demographic group (``graph.areas["group"]``)."""
    return {str(g): int(n) for g, n in graph.areas["group"].value_counts().items()}


def _parity_distance(ratio: float) -> float:
    """``|ln ratio|``: 0 at parity, equal for 0.8 and 1.25, infinite for 0; NaN -> inf."""
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return math.inf
    return abs(math.log(ratio))


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


