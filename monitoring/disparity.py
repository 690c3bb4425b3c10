"""Per-group performance, disparity ratios and allocation exposure, week by week.

All metrics come from :mod:`crimecast.forecast.metrics` (the one place they are computed):
per-group MAE/RMSE/coverage on each group's rows (equal to Fairlearn's ``MetricFrame``)
(:func:`crimecast.forecast.metrics.group_metrics`) and flag-rate disparity ratios
(:func:`crimecast.forecast.metrics.disparity_ratios`). Evidently's ``GroupBy`` is not used: in
0.7.23 it returns the overall value for every group.

*Allocation exposure* compares, per group, the share of flagged hotspots (top
``flag_area_share`` of land area by forecast, each category separately) with the group's
share of forecast risk and of observed crime: a group whose flagged share runs well ahead
of its crime share is over-exposed to patrols.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crimecast.forecast import metrics
from monitoring.settings import DisparitySettings

#: The disparity ratios the band applies to (columns of :func:`group_table`).
RATIO_COLUMNS: tuple[str, ...] = ("flag_rate_per_incident_ratio", "flag_rate_per_resident_ratio")


def scored_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A monitoring frame (rows with an outcome only) in the shape crimecast.forecast.metrics
    scores: FORECAST_COLUMNS with ``mean`` and ``horizon`` plus ``actual``."""
    observed = frame[frame["target"].notna()]
    out = observed.rename(columns={"prediction": "mean", "target": "actual"})
    if "horizon" not in out.columns:
        out = out.assign(horizon=1)
    return out.reset_index(drop=True)


def areas_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-area attributes (indexed by area_id) carried in the monitoring frame."""
    cols = [c for c in ("group", "land_area_km2", "population") if c in frame.columns]
    areas = frame.drop_duplicates("area_id").set_index("area_id")[cols]
    if "population" not in areas.columns:
        areas = areas.assign(population=1.0)
    return areas


def flagged(frame: pd.DataFrame, share: float) -> np.ndarray:
    """Boolean per row: is the row's area a flagged hotspot in its (week, category)
    snapshot, flagging by forecast until ``share`` of the land area is covered."""
    flags = np.zeros(len(frame), dtype=bool)
    positions = pd.Series(np.arange(len(frame)), index=frame.index)
    for _, snap in frame.groupby(["week", "category"], sort=False, observed=True):
        flags[positions[snap.index].to_numpy()] = metrics.flag_by_area_share(
            snap["prediction"].to_numpy(float), snap["land_area_km2"].to_numpy(float), share)
    return flags


def exposure_table(frame: pd.DataFrame, share: float) -> pd.DataFrame:
    """Per group: ``flagged_share`` (share of all flags), ``risk_share`` (share of summed
    forecasts) and ``crime_share`` (share of observed counts; NaN without outcomes)."""
    flags = flagged(frame, share)
    table = pd.DataFrame({
        "group": frame["group"].to_numpy(),
        "flags": flags.astype(float),
        "risk": frame["prediction"].to_numpy(float),
        "crime": frame["target"].to_numpy(float) if "target" in frame else np.nan,
    })
    per_group = table.groupby("group", observed=True).sum(min_count=1)
    out = pd.DataFrame(index=per_group.index)
    out["flagged_share"] = per_group["flags"] / max(per_group["flags"].sum(), 1.0)
    out["risk_share"] = per_group["risk"] / max(per_group["risk"].sum(), 1e-12)
    crime_total = per_group["crime"].sum()
    out["crime_share"] = per_group["crime"] / crime_total if crime_total > 0 else np.nan
    return out


def group_table(frame: pd.DataFrame, settings: DisparitySettings) -> pd.DataFrame:
    """Per-group numbers for one monitored period (a week, or a whole window).

    ``frame``: monitoring frame rows of the period. Returns one row per group with
    ``areas``, ``mae``, ``rmse``, ``poisson_deviance``, ``coverage_80`` (NaN without
    outcomes), the two disparity ratios of :data:`RATIO_COLUMNS` and the exposure
    shares of :func:`exposure_table`.
    """
    areas = areas_table(frame)
    out = exposure_table(frame, settings.flag_area_share)
    out["areas"] = areas.groupby("group", observed=True).size().reindex(out.index).astype(float)
    scored = scored_frame(frame)
    if scored.empty:
        for col in ("mae", "rmse", "poisson_deviance", "coverage_80", *RATIO_COLUMNS):
            out[col] = np.nan
        return out.rename_axis("group").reset_index()
    by_group = metrics.group_metrics(scored, areas["group"])
    ratios = metrics.disparity_ratios(scored, areas, settings.flag_area_share)
    for col in ("mae", "rmse", "poisson_deviance", "coverage_80"):
        out[col] = by_group[col].reindex(out.index)
    for col in RATIO_COLUMNS:
        out[col] = ratios[col].reindex(out.index)
    return out.rename_axis("group").reset_index()


def exempt_groups() -> list[str]:
    """Area labels that are not groups of residents (``unknown``: no resident
    demographics), exempt from disparity alerts. The one setting is the gate's
    ``exempt_groups`` (configs/promotion.yaml), so the gate and the alerts agree."""
    from crimecast.lifecycle.gate import PromotionSettings

    return list(PromotionSettings.load().exempt_groups)


def band_breaches(table: pd.DataFrame, settings: DisparitySettings,
                  ratio_columns: tuple[str, ...] = ("flag_rate_per_incident_ratio",),
                  exempt: list[str] | None = None) -> list[dict[str, Any]]:
    """Groups whose disparity ratio lies outside ``settings.band``.

    Groups with fewer than ``settings.min_group_areas`` areas, and NaN ratios (no
    incidents), are skipped: their ratios are too noisy to act on. So are the ``exempt``
    labels (default: :func:`exempt_groups`). Returns one record per breach: ``group``,
    ``ratio`` (column name), ``value``, ``band``, ``direction`` (``"above"``/``"below"``).
    """
    low, high = settings.band
    exempt = exempt_groups() if exempt is None else exempt
    breaches = []
    for _, row in table.iterrows():
        if row.get("areas", np.inf) < settings.min_group_areas or str(row["group"]) in exempt:
            continue
        for col in ratio_columns:
            value = row.get(col)
            if value is None or not np.isfinite(value):
                continue
            if value < low or value > high:
                breaches.append({"group": str(row["group"]), "ratio": col,
                                 "value": round(float(value), 4), "band": [low, high],
                                 "direction": "above" if value > high else "below"})
    return breaches
