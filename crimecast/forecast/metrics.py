"""The one place forecast metrics are computed (backtests, promotion and monitoring).

Point and interval metrics (arrays of any matching shape):
    :func:`mae`, :func:`rmse`, :func:`poisson_deviance`, :func:`interval_coverage`.

Hotspot metrics for one *snapshot* (one target week × category; arrays ``[A]``):
    the flagged set is the areas ranked by predicted count, taken in order while their
    cumulative land area stays within ``share`` of the city's (always at least one area)
    — :func:`flag_by_area_share`; then

    - hit rate  = incidents in flagged areas / all incidents,
    - PAI       = hit rate / flagged share of land area  (Chainey et al. 2008),
    - PEI*      = PAI / PAI*, where PAI* is the largest PAI any set of the *same number*
                  of areas reaches with perfect knowledge of the counts (Hunt 2016);
                  found exactly by Dinkelbach's iteration (:func:`max_pai`), so 0 ≤ PEI* ≤ 1,
    - top-k hit rate = incidents in the k areas with the highest predicted count / all.

Frame-level: :func:`score_forecasts` takes a *scored* forecast frame (forecast columns plus
``actual``) and area attributes, and returns overall metrics, hotspot metrics averaged over
snapshots, per-group metrics (Fairlearn ``MetricFrame``) and disparity ratios
(:func:`disparity_ratios`: flag rate per true incident and per resident of each group,
divided by the citywide rate, 1.0 = parity).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Land-area shares of the city flagged as hotspots (1 %, 5 %, 10 %).
DEFAULT_AREA_SHARES: tuple[float, ...] = (0.01, 0.05, 0.10)
DEFAULT_TOP_K: tuple[int, ...] = (10,)
_EPS = 1e-8


# ------------------------------------------------------------------ point and interval
def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(actual, float) - np.asarray(predicted, float))))


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error."""
    diff = np.asarray(actual, float) - np.asarray(predicted, float)
    return float(np.sqrt(np.mean(diff**2)))


def poisson_deviance(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean Poisson deviance ``2 * mean(y log(y/mu) - (y - mu))`` (``0 log 0 = 0``).

    Predictions are floored at 1e-8 so a zero forecast for a non-zero count is a large,
    finite penalty rather than infinity.
    """
    y = np.asarray(actual, float)
    mu = np.maximum(np.asarray(predicted, float), _EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / mu), 0.0)
    return float(np.mean(2.0 * (term - (y - mu))))


def interval_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actual counts inside ``[lower, upper]`` (bounds inclusive)."""
    y = np.asarray(actual, float)
    return float(np.mean((y >= np.asarray(lower, float)) & (y <= np.asarray(upper, float))))


# --------------------------------------------------------------------------- hotspots
def flag_by_area_share(predicted: np.ndarray, land_area: np.ndarray, share: float) -> np.ndarray:
    """Boolean ``[A]`` mask of hotspot areas for one snapshot.

    Areas are ranked by ``predicted`` (descending; ties broken by smaller land area, then
    by index, so the result is deterministic) and taken while the cumulative land area is
    at most ``share`` of the total; the top area is always flagged.
    """
    predicted = np.asarray(predicted, float)
    land_area = np.asarray(land_area, float)
    if not 0 < share <= 1:
        raise ValueError(f"area share must be in (0, 1], got {share}")
    if predicted.shape != land_area.shape:
        raise ValueError(f"predicted {predicted.shape} and land_area {land_area.shape} differ")
    order = np.lexsort((np.arange(len(predicted)), land_area, -predicted))
    cumulative = np.cumsum(land_area[order])
    count = max(1, int(np.searchsorted(cumulative, share * land_area.sum() * (1 + 1e-12),
                                       side="right")))
    mask = np.zeros(len(predicted), dtype=bool)
    mask[order[:count]] = True
    return mask


def max_pai(actual: np.ndarray, land_area: np.ndarray, num_areas: int) -> float:
    """Largest PAI of any set of ``num_areas`` areas given the actual counts (PAI*).

    Maximises ``(sum y_S / Y) / (sum a_S / A)`` over sets ``|S| = num_areas`` with
    Dinkelbach's method: for a ratio ``lam``, the best set maximises ``sum(y - lam * a)``
    (the top ``num_areas`` of ``y - lam * a``); iterate ``lam`` = that set's ratio until it
    stops increasing. Exact, and a few iterations in practice. NaN when there are no
    incidents.
    """
    y = np.asarray(actual, float)
    a = np.asarray(land_area, float)
    total_y, total_a = y.sum(), a.sum()
    if total_y <= 0:
        return float("nan")
    num_areas = int(min(max(num_areas, 1), len(y)))
    chosen = np.argsort(-(y / np.maximum(a, _EPS)), kind="stable")[:num_areas]
    ratio = y[chosen].sum() / a[chosen].sum()
    for _ in range(100):
        gain = y - ratio * a
        chosen = np.argpartition(-gain, num_areas - 1)[:num_areas]
        new_ratio = y[chosen].sum() / a[chosen].sum()
        if new_ratio <= ratio * (1 + 1e-12):
            break
        ratio = new_ratio
    return float(ratio * total_a / total_y)


def hotspot_scores(predicted: np.ndarray, actual: np.ndarray, land_area: np.ndarray,
                   share: float) -> dict[str, float]:
    """Hit rate, PAI and PEI* of one snapshot when flagging ``share`` of the land area.

    Inputs are ``[A]`` arrays. Returns ``hit_rate``, ``pai``, ``pei_star``,
    ``area_share`` (the flagged share actually reached) and ``flagged`` (number of areas).
    Hit rate, PAI and PEI* are NaN when the snapshot has no incidents.
    """
    y = np.asarray(actual, float)
    a = np.asarray(land_area, float)
    mask = flag_by_area_share(predicted, a, share)
    area_share = float(a[mask].sum() / a.sum())
    total = y.sum()
    if total <= 0:
        nan = float("nan")
        return {"hit_rate": nan, "pai": nan, "pei_star": nan, "area_share": area_share,
                "flagged": float(mask.sum())}
    hit_rate = float(y[mask].sum() / total)
    pai = hit_rate / area_share
    best = max_pai(y, a, int(mask.sum()))
    return {"hit_rate": hit_rate, "pai": pai, "pei_star": pai / best if best > 0 else 0.0,
            "area_share": area_share, "flagged": float(mask.sum())}


def top_k_hit_rate(predicted: np.ndarray, actual: np.ndarray, k: int) -> float:
    """Share of incidents in the ``k`` areas with the highest predicted count."""
    y = np.asarray(actual, float)
    if y.sum() <= 0:
        return float("nan")
    order = np.lexsort((np.arange(len(y)), -np.asarray(predicted, float)))
    return float(y[order[: int(k)]].sum() / y.sum())


# -------------------------------------------------------------------- frame-level API
def _check_columns(frame: pd.DataFrame, needed: Sequence[str], name: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; has {list(frame.columns)}")


def point_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """MAE, RMSE, mean Poisson deviance and 80/95 % coverage of a scored frame
    (columns ``actual``, ``mean``, ``lower_80``, ``upper_80``, ``lower_95``, ``upper_95``)."""
    _check_columns(frame, ("actual", "mean"), "scored forecasts")
    y, mu = frame["actual"].to_numpy(float), frame["mean"].to_numpy(float)
    out = {"mae": mae(y, mu), "rmse": rmse(y, mu), "poisson_deviance": poisson_deviance(y, mu),
           "n": float(len(frame))}
    for level in (80, 95):
        lo, hi = f"lower_{level}", f"upper_{level}"
        if lo in frame.columns and hi in frame.columns:
            out[f"coverage_{level}"] = interval_coverage(y, frame[lo], frame[hi])
    return out


def _snapshots(frame: pd.DataFrame) -> Any:
    """Group a scored frame into hotspot snapshots: one per target week × horizon × category."""
    return frame.groupby(["week", "horizon", "category"], sort=True, observed=True)


def hotspot_metrics(frame: pd.DataFrame, land_area: pd.Series,
                    area_shares: Sequence[float] = DEFAULT_AREA_SHARES,
                    top_k: Sequence[int] = DEFAULT_TOP_K) -> dict[str, float]:
    """Hotspot metrics averaged over snapshots (snapshots without incidents are skipped).

    ``land_area`` is indexed by ``area_id``. Keys: ``hit_rate@5%``, ``pai@5%``,
    ``pei_star@5%`` for each share, and ``hit_rate@top10`` for each k.
    """
    _check_columns(frame, ("area_id", "week", "horizon", "category", "actual", "mean"),
                   "scored forecasts")
    rows = []
    for _, snap in _snapshots(frame):
        area = land_area.reindex(snap["area_id"]).to_numpy(float)
        if np.isnan(area).any():
            missing = snap["area_id"][np.isnan(area)].iloc[0]
            raise ValueError(f"land area unknown for area_id {missing!r}")
        pred, act = snap["mean"].to_numpy(float), snap["actual"].to_numpy(float)
        row: dict[str, float] = {}
        for share in area_shares:
            label = f"{share * 100:g}%"
            for key, value in hotspot_scores(pred, act, area, share).items():
                if key in ("hit_rate", "pai", "pei_star"):
                    row[f"{key}@{label}"] = value
        for k in top_k:
            row[f"hit_rate@top{k}"] = top_k_hit_rate(pred, act, k)
        rows.append(row)
    if not rows:
        return {}
    return {k: float(v) for k, v in pd.DataFrame(rows).mean(skipna=True).items()}


def group_metrics(frame: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """Point and interval metrics per demographic group with Fairlearn's ``MetricFrame``.

    ``groups`` maps ``area_id`` to its group label. Returns one row per group with
    ``mae``, ``rmse``, ``poisson_deviance``, ``coverage_80``, ``coverage_95``, ``n``.
    """
    from fairlearn.metrics import MetricFrame

    _check_columns(frame, ("area_id", "actual", "mean", "lower_80", "upper_80",
                           "lower_95", "upper_95"), "scored forecasts")
    labels = groups.reindex(frame["area_id"]).to_numpy()
    if pd.isna(labels).any():
        raise ValueError("group unknown for some area_id in the scored forecasts, e.g. "
                         f"{frame['area_id'][pd.isna(labels)].iloc[0]!r}")

    def coverage(y_true: np.ndarray, y_pred: np.ndarray, lower: np.ndarray,
                 upper: np.ndarray) -> float:
        return interval_coverage(y_true, lower, upper)

    def count(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(len(y_true))

    frame_metrics = MetricFrame(
        metrics={"mae": mae, "rmse": rmse, "poisson_deviance": poisson_deviance,
                 "coverage_80": coverage, "coverage_95": coverage, "n": count},
        y_true=frame["actual"].to_numpy(float), y_pred=frame["mean"].to_numpy(float),
        sensitive_features=pd.Series(labels, name="group"),
        sample_params={
            "coverage_80": {"lower": frame["lower_80"].to_numpy(float),
                            "upper": frame["upper_80"].to_numpy(float)},
            "coverage_95": {"lower": frame["lower_95"].to_numpy(float),
                            "upper": frame["upper_95"].to_numpy(float)},
        },
    )
    return frame_metrics.by_group.astype(float)


def disparity_ratios(frame: pd.DataFrame, areas: pd.DataFrame, share: float = 0.05,
                     group_column: str = "group") -> pd.DataFrame:
    """How often each group's areas are flagged as hotspots, relative to the city.

    In every snapshot the top ``share`` of land area is flagged (:func:`flag_by_area_share`).
    For group g over all snapshots:

    - ``flag_rate_per_incident`` = flags in g / true incidents in g,
    - ``flag_rate_per_resident`` = flags in g / (residents of g × snapshots),

    each divided by the same rate for the whole city → ``*_ratio`` (1.0 = parity; 2.0 =
    flagged twice as often as the city per incident/resident). ``areas`` is indexed by
    ``area_id`` with ``land_area_km2``, ``population`` and ``group_column``.
    Returns one row per group: ``areas``, ``population``, ``incidents``, ``flags`` and the
    four rate columns.
    """
    _check_columns(areas, ("land_area_km2", "population", group_column), "areas")
    land = areas["land_area_km2"]
    flags = np.zeros(len(frame), dtype=bool)
    positions = np.arange(len(frame))
    num_snapshots = 0
    for _, snap in _snapshots(frame.assign(_pos=positions)):
        area = land.reindex(snap["area_id"]).to_numpy(float)
        flags[snap["_pos"].to_numpy()] = flag_by_area_share(snap["mean"].to_numpy(float),
                                                             area, share)
        num_snapshots += 1
    labels = areas[group_column].reindex(frame["area_id"]).to_numpy()
    table = pd.DataFrame({"group": labels, "flags": flags.astype(float),
                          "incidents": frame["actual"].to_numpy(float)})
    per_group = table.groupby("group").sum()
    population = areas.groupby(group_column)["population"].sum().astype(float)
    per_group["population"] = population.reindex(per_group.index)
    per_group["areas"] = areas.groupby(group_column).size().reindex(per_group.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_group["flag_rate_per_incident"] = per_group["flags"] / per_group["incidents"]
        per_group["flag_rate_per_resident"] = per_group["flags"] / (
            per_group["population"] * max(num_snapshots, 1))
        city_per_incident = per_group["flags"].sum() / per_group["incidents"].sum()
        city_per_resident = per_group["flags"].sum() / (
            per_group["population"].sum() * max(num_snapshots, 1))
        per_group["flag_rate_per_incident_ratio"] = (
            per_group["flag_rate_per_incident"] / city_per_incident)
        per_group["flag_rate_per_resident_ratio"] = (
            per_group["flag_rate_per_resident"] / city_per_resident)
    per_group.index.name = group_column
    return per_group.replace([np.inf, -np.inf], np.nan)


def score_forecasts(frame: pd.DataFrame, areas: pd.DataFrame,
                    area_shares: Sequence[float] = DEFAULT_AREA_SHARES,
                    top_k: Sequence[int] = DEFAULT_TOP_K, flag_share: float = 0.05,
                    group_column: str = "group") -> dict[str, Any]:
    """All metrics of a scored forecast frame, overall and by group.

    ``frame``: FORECAST_COLUMNS plus ``actual``; ``areas``: indexed by ``area_id`` with
    ``land_area_km2``, ``population`` and ``group_column`` (``AreaGraph.areas``).
    Returns ``{"overall": {...}, "by_group": {group: {...}}, "disparity": {group: {...}}}``
    where ``overall`` holds point, interval and hotspot metrics.
    """
    overall = {**point_metrics(frame),
               **hotspot_metrics(frame, areas["land_area_km2"], area_shares, top_k)}
    by_group = group_metrics(frame, areas[group_column])
    disparity = disparity_ratios(frame, areas, flag_share, group_column)
    return {
        "overall": overall,
        "by_group": {str(g): {k: float(v) for k, v in row.items()}
                     for g, row in by_group.iterrows()},
        "disparity": {str(g): {k: float(v) for k, v in row.items()}
                      for g, row in disparity.iterrows()},
    }
