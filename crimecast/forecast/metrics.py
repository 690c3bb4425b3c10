"""The one place forecast metrics are computed (backtests, promotion and monitoring).

Point and interval metrics (arrays of any matching shape):
    :func:`mae`, :func:`rmse`, :func:`poisson_deviance`, :func:`interval_coverage`.

Proper scores of the predictive distribution NB(mean, dispersion)
(:mod:`crimecast.forecast.distributions`), lower is better:
    :func:`log_score` (mean negative log-likelihood of the actual count),
    :func:`ranked_probability_score` (RPS for counts: ``sum_k (F(k) - 1{y <= k})^2``);
    calibration: :func:`randomised_pit` (uniform on [0, 1] for a calibrated forecast),
    :func:`pit_histogram` and :func:`pit_calibration_error` (total-variation distance of
    the PIT histogram from flat: 0 = calibrated).

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

Targets: :func:`target_frame` turns scored rows into one *target*: a category, or
``"all"`` (the sum over categories per area-week, with the sum's NB moment-matched).
:func:`active_categories` leaves out categories without a single incident in the rows
(with a :class:`ScoringWarning`): all-zero rows dilute deviance and inflate coverage.

Per week: :func:`weekly_components` gives, for each target week, additive sums (of unit
deviances, log scores, interval hits, snapshot hit rates, flags per group, ...) from which
:func:`metric_values` computes every metric; summed over all weeks they give the usual
pooled numbers, and :mod:`crimecast.forecast.evidence` resamples weeks from them for
confidence intervals.

Frame-level: :func:`score_forecasts` takes a *scored* forecast frame (forecast columns plus
``actual``) and area attributes, and returns overall metrics, hotspot metrics averaged over
snapshots, per-group metrics (on each group's rows) and disparity ratios
(:func:`disparity_ratios`: flag rate per true incident and per resident of each group,
divided by the citywide rate, 1.0 = parity).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from crimecast.forecast import distributions

#: Land-area shares of the city flagged as hotspots (1 %, 5 %, 10 %).
DEFAULT_AREA_SHARES: tuple[float, ...] = (0.01, 0.05, 0.10)
DEFAULT_TOP_K: tuple[int, ...] = (10,)
#: Bins of the PIT histogram.
PIT_BINS = 10
#: The target that sums every category of an area-week.
ALL = "all"
_EPS = 1e-8


class ScoringWarning(UserWarning):
    """Something was left out of a score (e.g. a category without incidents)."""


# ------------------------------------------------------------------ point and interval
def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(actual, float) - np.asarray(predicted, float))))


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error."""
    diff = np.asarray(actual, float) - np.asarray(predicted, float)
    return float(np.sqrt(np.mean(diff**2)))


def unit_deviance(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Poisson deviance of each cell, ``2 (y log(y/mu) - (y - mu))`` (``0 log 0 = 0``).

    Predictions are floored at 1e-8 so a zero forecast for a non-zero count is a large,
    finite penalty rather than infinity.
    """
    y = np.asarray(actual, float)
    mu = np.maximum(np.asarray(predicted, float), _EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return 2.0 * (term - (y - mu))


def poisson_deviance(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean Poisson deviance ``2 * mean(y log(y/mu) - (y - mu))`` (see :func:`unit_deviance`)."""
    return float(np.mean(unit_deviance(actual, predicted)))


def interval_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actual counts inside ``[lower, upper]`` (bounds inclusive)."""
    y = np.asarray(actual, float)
    return float(np.mean((y >= np.asarray(lower, float)) & (y <= np.asarray(upper, float))))


# ------------------------------------------------------------ proper scores (counts)
def unit_log_score(actual: np.ndarray, mean: np.ndarray,
                   dispersion: float | np.ndarray) -> np.ndarray:
    """``-log P(Y = y)`` of each cell under NB(mean, dispersion) (lower is better)."""
    return -distributions.log_pmf(actual, mean, dispersion)


def log_score(actual: np.ndarray, mean: np.ndarray, dispersion: float | np.ndarray) -> float:
    """Mean negative log-likelihood of the actual counts (the log score; lower is better)."""
    return float(np.mean(unit_log_score(actual, mean, dispersion)))


def unit_rps(actual: np.ndarray, mean: np.ndarray,
             dispersion: float | np.ndarray) -> np.ndarray:
    """Ranked probability score of each cell, ``sum_k (F(k) - 1{y <= k})^2`` over counts
    ``k = 0, 1, ...`` (lower is better; for a point forecast it is the absolute error).

    The sum runs past the actual count and 12 standard deviations beyond the mean, where
    the remaining tail adds nothing measurable.
    """
    y = np.asarray(actual, float).ravel()
    out = np.empty(len(y))
    for rows, cdf in distributions.cdf_grids(mean, dispersion, y):
        counts = np.arange(cdf.shape[1], dtype=float)[None, :]
        out[rows] = ((cdf - (y[rows, None] <= counts)) ** 2).sum(axis=1)
    return out.reshape(np.shape(actual))


def ranked_probability_score(actual: np.ndarray, mean: np.ndarray,
                             dispersion: float | np.ndarray) -> float:
    """Mean ranked probability score (see :func:`unit_rps`)."""
    return float(np.mean(unit_rps(actual, mean, dispersion)))


def randomised_pit(actual: np.ndarray, mean: np.ndarray, dispersion: float | np.ndarray,
                   seed: int = 0) -> np.ndarray:
    """Randomised probability integral transform ``F(y-1) + V (F(y) - F(y-1))``,
    ``V ~ U(0, 1)`` (seeded): uniform on [0, 1] when the count forecasts are calibrated
    (Czado, Gneiting & Held 2009). The same ``seed`` and row order give the same ``V``, so
    two forecasters scored on the same rows share them."""
    y = np.asarray(actual, float)
    upper, lower = distributions.cdf_pair(y, mean, dispersion)
    noise = np.random.default_rng(seed).uniform(size=y.shape)
    return np.clip(lower + noise * (upper - lower), 0.0, 1.0)


def pit_counts(pit: np.ndarray, bins: int = PIT_BINS) -> np.ndarray:
    """How many PIT values fall in each of ``bins`` equal bins of [0, 1]."""
    index = np.minimum((np.asarray(pit, float) * bins).astype(int), bins - 1)
    return np.bincount(index.ravel(), minlength=bins).astype(float)


def pit_histogram(pit: np.ndarray, bins: int = PIT_BINS) -> np.ndarray:
    """Share of PIT values in each of ``bins`` equal bins (sums to 1; flat = calibrated)."""
    counts = pit_counts(pit, bins)
    return counts / max(counts.sum(), 1.0)


def pit_calibration_error(histogram: np.ndarray) -> float:
    """Total-variation distance of a PIT histogram (shares) from the flat one:
    ``0.5 * sum |share - 1/bins|``. 0 = calibrated; it is the share of forecasts that would
    have to move to another bin to make the histogram flat."""
    shares = np.asarray(histogram, float)
    return float(0.5 * np.abs(shares - 1.0 / len(shares)).sum())


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


def _share_label(share: float) -> str:
    return f"{share * 100:g}%"


def snapshot_table(frame: pd.DataFrame, land_area: pd.Series,
                   area_shares: Sequence[float] = DEFAULT_AREA_SHARES,
                   top_k: Sequence[int] = DEFAULT_TOP_K, flag_share: float | None = None,
                   groups: pd.Series | None = None) -> pd.DataFrame:
    """One row per hotspot snapshot (target week × horizon × category) of a scored frame.

    Columns: ``week``, ``has_incidents``, ``hit_rate@<s>``, ``pai@<s>``, ``pei_star@<s>``
    for each area share, ``hit_rate@top<k>`` (NaN without incidents), and, when
    ``flag_share`` and ``groups`` (``area_id`` → group label) are given, the areas flagged
    at ``flag_share`` and the incidents of each group: ``flags:<g>``, ``incidents:<g>``.
    ``land_area`` is indexed by ``area_id``.
    """
    _check_columns(frame, ("area_id", "week", "horizon", "category", "actual", "mean"),
                   "scored forecasts")
    labels = None
    if flag_share is not None and groups is not None:
        labels = groups.reindex(frame["area_id"]).to_numpy()
        names = sorted({str(g) for g in pd.unique(labels) if pd.notna(g)})
    rows = []
    positions = np.arange(len(frame))
    for (week, _, _), snap in _snapshots(frame.assign(_pos=positions)):
        area = land_area.reindex(snap["area_id"]).to_numpy(float)
        if np.isnan(area).any():
            missing = snap["area_id"][np.isnan(area)].iloc[0]
            raise ValueError(f"land area unknown for area_id {missing!r}")
        pred, act = snap["mean"].to_numpy(float), snap["actual"].to_numpy(float)
        row: dict[str, Any] = {"week": week, "has_incidents": bool(act.sum() > 0)}
        for share in area_shares:
            label = _share_label(share)
            for key, value in hotspot_scores(pred, act, area, share).items():
                if key in ("hit_rate", "pai", "pei_star"):
                    row[f"{key}@{label}"] = value
        for k in top_k:
            row[f"hit_rate@top{k}"] = top_k_hit_rate(pred, act, k)
        if labels is not None:
            flagged = flag_by_area_share(pred, area, flag_share)
            snap_labels = labels[snap["_pos"].to_numpy()]
            for name in names:
                member = snap_labels == name
                row[f"flags:{name}"] = float(flagged[member].sum())
                row[f"incidents:{name}"] = float(act[member].sum())
        rows.append(row)
    return pd.DataFrame(rows)


def hotspot_metrics(frame: pd.DataFrame, land_area: pd.Series,
                    area_shares: Sequence[float] = DEFAULT_AREA_SHARES,
                    top_k: Sequence[int] = DEFAULT_TOP_K) -> dict[str, float]:
    """Hotspot metrics averaged over snapshots (snapshots without incidents are skipped).

    ``land_area`` is indexed by ``area_id``. Keys: ``hit_rate@5%``, ``pai@5%``,
    ``pei_star@5%`` for each share, and ``hit_rate@top10`` for each k.
    """
    table = snapshot_table(frame, land_area, area_shares, top_k)
    if table.empty:
        return {}
    scores = table.drop(columns=["week", "has_incidents"])
    return {k: float(v) for k, v in scores.mean(skipna=True).items()}


def active_categories(rows: pd.DataFrame) -> list[str]:
    """Categories with at least one incident in ``rows`` (sorted). The others are left out
    of pooled scores with a :class:`ScoringWarning`: a category that never occurs scores a
    near-perfect deviance and full coverage, which flatters every model alike."""
    totals = rows.groupby("category", observed=True)["actual"].sum()
    empty = sorted(str(c) for c, total in totals.items() if total <= 0)
    if empty:
        warnings.warn(f"categories without incidents in the scored weeks are left out of "
                      f"the overall metrics: {empty}", ScoringWarning, stacklevel=2)
    return sorted(str(c) for c, total in totals.items() if total > 0)


def target_frame(rows: pd.DataFrame, target: str) -> pd.DataFrame:
    """The scored rows of one target: a category's own rows, or for :data:`ALL` the sum
    over categories of each (origin, area, week, horizon).

    For ``"all"`` the means and actual counts are summed and the sum's dispersion is
    moment-matched from the categories' (independent NB counts,
    :func:`crimecast.forecast.distributions.moment_matched_dispersion`); its intervals are
    the nominal central intervals of that distribution. Rows need ``dispersion`` (0 is
    assumed when absent: Poisson).
    """
    if target != ALL:
        part = rows[rows["category"] == target]
        if part.empty:
            raise ValueError(f"no scored rows for target {target!r}; categories are "
                             f"{sorted(rows['category'].unique())} or {ALL!r}")
        return part.reset_index(drop=True)
    keys = [c for c in ("origin", "area_id", "week", "horizon") if c in rows.columns]
    extra = [c for c in ("group", "model") if c in rows.columns]
    mu = rows["mean"].to_numpy(float)
    alpha = (rows["dispersion"].to_numpy(float) if "dispersion" in rows.columns
             else np.zeros(len(rows)))
    work = rows[keys + extra].assign(mean=mu, actual=rows["actual"].to_numpy(float),
                                     variance=mu + alpha * mu**2)
    summed = work.groupby(keys, sort=True, observed=True).agg(
        {"mean": "sum", "actual": "sum", "variance": "sum", **{c: "first" for c in extra}}
    ).reset_index()
    total = summed["mean"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = np.where(total > 0, (summed["variance"].to_numpy() - total)
                              / np.maximum(total, 1e-12) ** 2, 0.0)
    summed["dispersion"] = np.maximum(dispersion, 0.0)
    summed["category"] = ALL
    for name, values in distributions.intervals(total, summed["dispersion"].to_numpy(),
                                                {80: 0.80, 95: 0.95}).items():
        summed[name] = values
    return summed.drop(columns="variance")


def weekly_components(frame: pd.DataFrame, areas: pd.DataFrame,
                      area_shares: Sequence[float] = DEFAULT_AREA_SHARES,
                      top_k: Sequence[int] = DEFAULT_TOP_K, flag_share: float = 0.05,
                      group_column: str = "group", seed: int = 0,
                      intervals: bool = True) -> pd.DataFrame:
    """Additive per-week sums from which :func:`metric_values` computes every metric.

    ``frame``: scored rows (``week``, ``area_id``, ``horizon``, ``category``, ``mean``,
    ``actual``, ``dispersion`` (0 if absent) and, with ``intervals``, the interval bounds);
    ``areas``: indexed by ``area_id`` with ``land_area_km2`` and ``group_column``.
    Returns one row per target week (sorted) with columns ``n``, ``deviance``,
    ``log_score``, ``rps``, ``abs_error``, ``sq_error``, ``inside_80``, ``inside_95``,
    ``pit_0`` … ``pit_9`` (sums over the week's cells), ``snapshots`` (snapshots with
    incidents) and the sums of their ``hit_rate@<s>``, ``pai@<s>``, ``pei_star@<s>``,
    ``hit_rate@top<k>``, and ``flags:<g>`` / ``incidents:<g>`` per group. Summing every
    row and passing it to :func:`metric_values` gives the pooled metrics of ``frame``.
    ``intervals=False`` skips the interval columns (the perfect-hindsight ceiling has
    no intervals).
    """
    y = frame["actual"].to_numpy(float)
    mu = frame["mean"].to_numpy(float)
    alpha = (frame["dispersion"].to_numpy(float) if "dispersion" in frame.columns
             else np.zeros(len(frame)))
    cells = pd.DataFrame({
        "week": frame["week"].to_numpy(), "n": 1.0,
        "deviance": unit_deviance(y, mu), "log_score": unit_log_score(y, mu, alpha),
        "rps": unit_rps(y, mu, alpha), "abs_error": np.abs(y - mu), "sq_error": (y - mu) ** 2,
    })
    if intervals:
        for level in (80, 95):
            cells[f"inside_{level}"] = ((y >= frame[f"lower_{level}"].to_numpy(float))
                                        & (y <= frame[f"upper_{level}"].to_numpy(float)))
        pit = randomised_pit(y, mu, alpha, seed)
        index = np.minimum((pit * PIT_BINS).astype(int), PIT_BINS - 1)
        for b in range(PIT_BINS):
            cells[f"pit_{b}"] = (index == b).astype(float)
    per_week = cells.groupby("week", sort=True).sum().astype(float)
    snaps = snapshot_table(frame, areas["land_area_km2"], area_shares, top_k, flag_share,
                           areas[group_column])
    if not snaps.empty:
        snaps = snaps.assign(snapshots=snaps["has_incidents"].astype(float)).drop(
            columns="has_incidents")
        per_week = per_week.join(snaps.fillna(0.0).groupby("week", sort=True).sum())
    return per_week.fillna(0.0)


#: Metrics where a lower value is better; hit rates, PAI and PEI* are better higher, and
#: coverage is best at its nominal level.
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"poisson_deviance", "log_score", "rps", "mae", "rmse", "pit_calibration_error"})


def metric_values(sums: pd.DataFrame | pd.Series,
                  population: pd.Series | None = None) -> pd.DataFrame:
    """Every metric from summed :func:`weekly_components` (one row per resampled set of
    weeks; a Series is one set). ``population`` (group → residents) adds the per-resident
    disparity ratios. Returns columns ``poisson_deviance``, ``log_score``, ``rps``,
    ``mae``, ``rmse``, ``coverage_80``, ``coverage_95``, ``pit_calibration_error``, the
    hotspot means (``hit_rate@5%`` …), and per group
    ``flag_rate_per_incident_ratio/<g>`` (``(flags_g / incidents_g) / (flags / incidents)``)
    and ``flag_rate_per_resident_ratio/<g>`` (``(flags_g / flags) / (pop_g / pop)``).
    """
    table = sums.to_frame().T if isinstance(sums, pd.Series) else sums
    out: dict[str, Any] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        n = table["n"].to_numpy(float)
        for name, column in (("poisson_deviance", "deviance"), ("log_score", "log_score"),
                             ("rps", "rps"), ("mae", "abs_error")):
            out[name] = table[column].to_numpy(float) / n
        out["rmse"] = np.sqrt(table["sq_error"].to_numpy(float) / n)
        for level in (80, 95):
            if f"inside_{level}" in table:
                out[f"coverage_{level}"] = table[f"inside_{level}"].to_numpy(float) / n
        if "pit_0" in table:
            shares = np.stack([table[f"pit_{b}"].to_numpy(float) for b in range(PIT_BINS)],
                              axis=1) / n[:, None]
            out["pit_calibration_error"] = 0.5 * np.abs(shares - 1.0 / PIT_BINS).sum(axis=1)
        if "snapshots" in table:
            snapshots = table["snapshots"].to_numpy(float)
            for column in table.columns:
                if column.startswith(("hit_rate@", "pai@", "pei_star@")):
                    out[column] = table[column].to_numpy(float) / snapshots
        groups = [c.split(":", 1)[1] for c in table.columns if c.startswith("flags:")]
        if groups:
            flags = sum(table[f"flags:{g}"].to_numpy(float) for g in groups)
            incidents = sum(table[f"incidents:{g}"].to_numpy(float) for g in groups)
            for g in groups:
                out[f"flag_rate_per_incident_ratio/{g}"] = (
                    (table[f"flags:{g}"].to_numpy(float) / table[f"incidents:{g}"].to_numpy(float))
                    / (flags / incidents))
                if population is not None and g in population.index:
                    out[f"flag_rate_per_resident_ratio/{g}"] = (
                        (table[f"flags:{g}"].to_numpy(float) / flags)
                        / (float(population[g]) / float(population.sum())))
    result = pd.DataFrame(out, index=table.index)
    return result.replace([np.inf, -np.inf], np.nan)


def group_metrics(frame: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """Point and interval metrics per demographic group, on each group's rows.

    ``groups`` maps ``area_id`` to its group label. Returns one row per group (index
    ``group``, sorted) with ``mae``, ``rmse``, ``poisson_deviance``, ``coverage_80``,
    ``coverage_95``, ``n``: the same functions as the overall metrics on the filtered rows
    (what Fairlearn's ``MetricFrame.by_group`` returns, without its per-row conversion of
    sample parameters, which took ~40 % of a backtest at H3 r9).
    """
    _check_columns(frame, ("area_id", "actual", "mean", "lower_80", "upper_80",
                           "lower_95", "upper_95"), "scored forecasts")
    labels = groups.reindex(frame["area_id"]).to_numpy()
    if pd.isna(labels).any():
        raise ValueError("group unknown for some area_id in the scored forecasts, e.g. "
                         f"{frame['area_id'][pd.isna(labels)].iloc[0]!r}")
    labels = labels.astype(str)
    columns = {c: frame[c].to_numpy(float) for c in
               ("actual", "mean", "lower_80", "upper_80", "lower_95", "upper_95")}
    rows = {}
    for group in sorted(set(labels)):
        rows_of = labels == group
        y, mean = columns["actual"][rows_of], columns["mean"][rows_of]
        rows[group] = {
            "mae": mae(y, mean), "rmse": rmse(y, mean),
            "poisson_deviance": poisson_deviance(y, mean),
            "coverage_80": interval_coverage(y, columns["lower_80"][rows_of],
                                             columns["upper_80"][rows_of]),
            "coverage_95": interval_coverage(y, columns["lower_95"][rows_of],
                                             columns["upper_95"][rows_of]),
            "n": float(rows_of.sum())}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("group").astype(float)


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
    snaps = snapshot_table(frame, areas["land_area_km2"], (), (), share, areas[group_column])
    num_snapshots = max(len(snaps), 1)
    names = [c.split(":", 1)[1] for c in snaps.columns if c.startswith("flags:")]
    per_group = pd.DataFrame({
        "flags": [float(snaps[f"flags:{g}"].sum()) for g in names],
        "incidents": [float(snaps[f"incidents:{g}"].sum()) for g in names]},
        index=pd.Index(names, name=group_column))
    labels = areas[group_column].astype(str)
    per_group["population"] = areas.groupby(labels)["population"].sum().astype(float).reindex(
        per_group.index)
    per_group["areas"] = areas.groupby(labels).size().reindex(per_group.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_group["flag_rate_per_incident"] = per_group["flags"] / per_group["incidents"]
        per_group["flag_rate_per_resident"] = per_group["flags"] / (
            per_group["population"] * num_snapshots)
        city_per_incident = per_group["flags"].sum() / per_group["incidents"].sum()
        city_per_resident = per_group["flags"].sum() / (
            per_group["population"].sum() * num_snapshots)
        per_group["flag_rate_per_incident_ratio"] = (
            per_group["flag_rate_per_incident"] / city_per_incident)
        per_group["flag_rate_per_resident_ratio"] = (
            per_group["flag_rate_per_resident"] / city_per_resident)
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
