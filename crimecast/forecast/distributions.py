"""The predictive distribution of a count forecast: negative binomial (Poisson at zero
dispersion), elementwise on arrays.

Every forecaster's forecast of a cell (area × week × category) is ``NB(mu, alpha)`` with
mean ``mu`` and variance ``mu + alpha * mu**2``; ``alpha <= 1e-8`` is Poisson. The
interval bounds (:func:`central_interval`), the proper scores and the PIT in
:mod:`crimecast.forecast.metrics` and the interval calibration all read the distribution
from here, so they agree on it.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

#: Dispersion at or below this is treated as Poisson.
POISSON_DISPERSION = 1e-8


def _params(mean: np.ndarray, dispersion: float | np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = np.maximum(np.asarray(mean, dtype=np.float64), 0.0)
    alpha = np.broadcast_to(np.asarray(dispersion, dtype=np.float64), mu.shape)
    return mu, alpha, alpha <= POISSON_DISPERSION


#: Largest count grid evaluated at once; rows whose distribution reaches further fall back
#: to scipy (rare: huge means or extreme dispersion).
_MAX_GRID = 2048
_CHUNK_CELLS = 4_000_000


def _cdf_grid(mu: np.ndarray, alpha: np.ndarray, top: int) -> np.ndarray:
    """``[n, top + 1]``: ``F(0..top)`` of each row, from the pmf recurrence in log space
    (``p(k) = p(k-1) * (k - 1 + r) / k * mu / (r + mu)``; Poisson: ``* mu / k``), which is
    an order of magnitude faster than scipy's incomplete beta for small counts."""
    k = np.arange(1, top + 1, dtype=np.float64)[None, :]
    m = np.maximum(mu, 1e-300)[:, None]
    is_poisson = alpha <= POISSON_DISPERSION
    r = np.where(is_poisson, 1.0, 1.0 / np.maximum(alpha, POISSON_DISPERSION))[:, None]
    poisson = is_poisson[:, None]
    with np.errstate(divide="ignore"):
        log_first = np.where(poisson, -m, r * (np.log(r) - np.log(r + m)))
        step = np.where(poisson, np.log(m) - np.log(k),
                        np.log(k - 1 + r) - np.log(k) + np.log(m) - np.log(r + m))
    log_pmf = np.concatenate([log_first, log_first + np.cumsum(step, axis=1)], axis=1)
    cdf = np.cumsum(np.exp(log_pmf), axis=1)
    cdf[mu <= 0] = 1.0
    return np.minimum(cdf, 1.0)


def _grid_buckets(mu: np.ndarray, alpha: np.ndarray,
                  extra: np.ndarray | None = None) -> list[tuple[int, np.ndarray]]:
    """Rows grouped by the count grid they need (12 standard deviations past the mean,
    and ``extra`` counts): ``[(top, row indices)]`` with ``top`` a power of two, so a few
    wide rows do not widen every row's grid; rows needing more than ``_MAX_GRID`` come
    last with ``top = -1`` (scipy handles them)."""
    need = mu + 12 * np.sqrt(mu + alpha * mu**2) + 10
    if extra is not None:
        need = np.maximum(need, extra)
    tops = np.exp2(np.ceil(np.log2(np.maximum(need, 16)))).astype(np.int64)
    tops[need > _MAX_GRID] = -1
    return [(int(top), np.flatnonzero(tops == top)) for top in np.unique(tops)]


def _chunks(n: int, top: int) -> list[slice]:
    size = max(1, _CHUNK_CELLS // (top + 1))
    return [slice(i, i + size) for i in range(0, n, size)]


def cdf_grids(mean: np.ndarray, dispersion: float | np.ndarray,
              counts: np.ndarray | None = None):
    """Yield ``(rows, grid)``: for groups of rows (flat indices into ``mean``), ``grid``
    ``[len(rows), top + 1]`` holds ``F(0..top)``, with ``top`` past 12 standard deviations
    and past ``counts`` (capped at the largest grid; for scores that sum over counts, such
    as the RPS, whose remaining tail is negligible)."""
    mu, alpha, _ = _params(mean, dispersion)
    flat_mu, flat_alpha = mu.ravel(), alpha.ravel()
    extra = None if counts is None else np.broadcast_to(
        np.asarray(counts, float), mu.shape).ravel()
    for top, index in _grid_buckets(flat_mu, flat_alpha, extra):
        top = _MAX_GRID if top < 0 else top
        for part in _chunks(index.size, top):
            rows = index[part]
            yield rows, _cdf_grid(flat_mu[rows], flat_alpha[rows], top)


def _scipy_quantile(mu: np.ndarray, alpha: np.ndarray, q: np.ndarray) -> np.ndarray:
    out = np.empty_like(mu)
    poisson = alpha <= POISSON_DISPERSION
    out[poisson] = stats.poisson.ppf(q[poisson], mu[poisson])
    if (~poisson).any():
        n = 1.0 / alpha[~poisson]
        out[~poisson] = stats.nbinom.ppf(q[~poisson], n, n / (n + mu[~poisson]))
    return np.nan_to_num(out, nan=0.0)


def _scipy_cdf(k: np.ndarray, mu: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = np.empty_like(mu)
    poisson = alpha <= POISSON_DISPERSION
    out[poisson] = stats.poisson.cdf(k[poisson], mu[poisson])
    if (~poisson).any():
        n = 1.0 / alpha[~poisson]
        out[~poisson] = stats.nbinom.cdf(k[~poisson], n, n / (n + mu[~poisson]))
    return np.nan_to_num(out, nan=1.0)


def quantiles(mean: np.ndarray, dispersion: float | np.ndarray,
              levels: list[float | np.ndarray]) -> list[np.ndarray]:
    """Several quantiles of NB(mean, dispersion) at once (one count grid serves all):
    for each entry of ``levels`` (scalar or broadcastable to ``mean``), the smallest count
    ``k`` with ``F(k) >= q``."""
    mu, alpha, _ = _params(mean, dispersion)
    qs = [np.broadcast_to(np.asarray(q, dtype=np.float64), mu.shape).ravel() for q in levels]
    flat_mu, flat_alpha = mu.ravel(), alpha.ravel()
    outs = [np.empty(flat_mu.shape) for _ in qs]
    for top, index in _grid_buckets(flat_mu, flat_alpha):
        if top < 0:
            for q, out in zip(qs, outs, strict=True):
                out[index] = _scipy_quantile(flat_mu[index], flat_alpha[index], q[index])
            continue
        for part in _chunks(index.size, top):
            rows = index[part]
            grid = _cdf_grid(flat_mu[rows], flat_alpha[rows], top)
            for q, out in zip(qs, outs, strict=True):
                # F is non-decreasing: the quantile is how many grid counts stay below q.
                out[rows] = (grid < q[rows, None] - 1e-12).sum(axis=1)
        for q, out in zip(qs, outs, strict=True):
            beyond = index[out[index] > top]  # a tail heavier than 12 standard deviations
            if beyond.size:
                out[beyond] = _scipy_quantile(flat_mu[beyond], flat_alpha[beyond], q[beyond])
    return [out.reshape(mu.shape) for out in outs]


def quantile(mean: np.ndarray, dispersion: float | np.ndarray,
             q: float | np.ndarray) -> np.ndarray:
    """The ``q`` quantile of NB(mean, dispersion): the smallest count ``k`` with
    ``F(k) >= q``. Elementwise; ``dispersion`` and ``q`` broadcast against ``mean``."""
    return quantiles(mean, dispersion, [q])[0]


def cdf_pair(k: np.ndarray, mean: np.ndarray,
             dispersion: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(F(k), F(k - 1))`` at integer counts ``k`` under NB(mean, dispersion), from one
    count grid per row (``F`` is 0 below 0): what the randomised PIT and the interval
    calibration need of each actual count."""
    mu, alpha, _ = _params(mean, dispersion)
    k = np.broadcast_to(np.floor(np.asarray(k, dtype=np.float64)), mu.shape).ravel()
    flat_mu, flat_alpha = mu.ravel(), alpha.ravel()
    at, below = np.empty(flat_mu.shape), np.empty(flat_mu.shape)
    for top, index in _grid_buckets(flat_mu, flat_alpha, k):
        if top < 0:
            at[index] = _scipy_cdf(k[index], flat_mu[index], flat_alpha[index])
            below[index] = _scipy_cdf(k[index] - 1, flat_mu[index], flat_alpha[index])
            continue
        for part in _chunks(index.size, top):
            rows = index[part]
            grid = _cdf_grid(flat_mu[rows], flat_alpha[rows], top)
            line = np.arange(rows.size)
            at[rows] = grid[line, np.clip(k[rows], 0, top).astype(np.int64)]
            below[rows] = grid[line, np.clip(k[rows] - 1, 0, top).astype(np.int64)]
    at[k < 0] = 0.0
    below[k < 1] = 0.0
    return at.reshape(mu.shape), below.reshape(mu.shape)


def cdf(k: np.ndarray, mean: np.ndarray, dispersion: float | np.ndarray) -> np.ndarray:
    """``P(Y <= k)`` under NB(mean, dispersion) at integer counts ``k``; 0 for ``k < 0``.
    Elementwise."""
    return cdf_pair(k, mean, dispersion)[0]


def log_pmf(k: np.ndarray, mean: np.ndarray, dispersion: float | np.ndarray,
            floor: float = 1e-8) -> np.ndarray:
    """``log P(Y = k)`` under NB(mean, dispersion). The mean is floored at ``floor`` so a
    zero forecast of a non-zero count is a large finite penalty, as in the deviance."""
    mu, alpha, poisson = _params(mean, dispersion)
    mu = np.maximum(mu, floor)
    y = np.broadcast_to(np.asarray(k, dtype=np.float64), mu.shape)
    out = np.empty_like(mu)
    out[poisson] = y[poisson] * np.log(mu[poisson]) - mu[poisson] - special.gammaln(
        y[poisson] + 1)
    if (~poisson).any():
        r = 1.0 / alpha[~poisson]
        m, yy = mu[~poisson], y[~poisson]
        out[~poisson] = (special.gammaln(yy + r) - special.gammaln(r) - special.gammaln(yy + 1)
                         + r * np.log(r / (r + m)) + yy * np.log(m / (r + m)))
    return out


def central_interval(mean: np.ndarray, dispersion: float | np.ndarray,
                     coverage: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the central ``coverage`` interval: the ``(1 - coverage) / 2`` and
    ``(1 + coverage) / 2`` quantiles. Count quantiles are integers, so a small mean can lie
    outside them; the bounds are widened to include the mean (the forecast contract keeps
    ``lower <= mean <= upper``). ``coverage`` broadcasts against ``mean`` (calibrated
    intervals use a different nominal coverage per area group)."""
    bounds = intervals(mean, dispersion, {0: coverage})
    return bounds["lower_0"], bounds["upper_0"]


def intervals(mean: np.ndarray, dispersion: float | np.ndarray,
              coverage: dict[int, float | np.ndarray]) -> dict[str, np.ndarray]:
    """Several nested central intervals at once, e.g. ``{80: 0.8, 95: 0.95}`` →
    ``lower_80, upper_80, lower_95, upper_95``, each widened to include the mean (see
    :func:`central_interval`) and, from the second on, to include the ones before it
    (so ``lower_95 <= lower_80 <= mean <= upper_80 <= upper_95``)."""
    mu = np.maximum(np.asarray(mean, dtype=np.float64), 0.0)
    levels = []
    for p in coverage.values():
        p = np.asarray(p, dtype=np.float64)
        levels += [(1.0 - p) / 2.0, (1.0 + p) / 2.0]
    values = quantiles(mu, dispersion, levels)
    out: dict[str, np.ndarray] = {}
    lower, upper = mu, mu
    for i, name in enumerate(coverage):
        lower = np.minimum(values[2 * i], lower)
        upper = np.maximum(values[2 * i + 1], upper)
        out[f"lower_{name}"], out[f"upper_{name}"] = lower, upper
    return out


def moment_matched_dispersion(means: np.ndarray, dispersions: np.ndarray,
                              axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and NB dispersion of a sum of independent NB counts along ``axis``
    (e.g. the categories of one area-week, summed into the target "all"): the sum's mean
    and variance are matched, ``alpha = (var - mu) / mu**2`` (clipped at 0)."""
    mu = np.maximum(np.asarray(means, dtype=np.float64), 0.0)
    alpha = np.broadcast_to(np.asarray(dispersions, dtype=np.float64), mu.shape)
    total = mu.sum(axis=axis)
    variance = (mu + alpha * mu**2).sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        combined = np.where(total > 0, (variance - total) / np.maximum(total, 1e-12) ** 2, 0.0)
    return total, np.maximum(combined, 0.0)
