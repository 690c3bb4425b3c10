"""A synthetic city with a known true crime intensity, for tests, benchmarks and oracles.

The city is a square tiled by Voronoi cells of jittered grid points (≈0.9 km² each, like
Philadelphia's census tracts), placed around Philadelphia's longitude/latitude. Each area
gets smooth, spatially clustered covariates (population, demographic shares, income,
poverty), so demographic groups differ in their crime levels the way real cities do.

Weekly counts per (area, week, category) follow a self-exciting Poisson process::

    m[a, t, c]      = base[a, c] * exp(season[t, c] + trend[t])        (background)
    λ[a, t, c]      = (1 - α - γ) m[a, t, c]
                      + α · y[a, t-1, c]                                 (near-repeat)
                      + γ · mean_{j ~ a} y[j, t-1, c]                    (spatial spill-over)
    y[a, t, c]      ~ Poisson(λ[a, t, c])                                (true crimes)
    recorded        = y thinned (factor < 1) or topped up (factor > 1) for the biased
                      group, and thinned to ``outage_factor`` in outage weeks

``λ`` is the *true intensity* (expected count given the past) saved as ``truth.parquet``;
``recorded_intensity`` is what a perfect model of the recorded counts would predict.
Scaling the background by ``1 - α - γ`` keeps the long-run mean near ``base``.

Everything is vectorised over areas; 100,000 areas × 104 weeks take seconds. Point
events (with timestamps and coordinates inside the area polygon) are only materialised
on request (:meth:`SyntheticCity.events`), for the synthetic *source*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import sparse

from crimecast.contracts import CATEGORIES, ArtifactPaths
from crimecast.data.graph import row_normalised_adjacency
from crimecast.data.settings import AreaGroupSettings, GraphSettings

# Philadelphia's centre; the synthetic city is laid out around it so maps look familiar.
CENTRE_LON, CENTRE_LAT = -75.15, 39.99
KM_PER_DEG_LAT = 110.57
KM_PER_DEG_LON = 111.32 * np.cos(np.radians(CENTRE_LAT))
# Groups of the default majority rule (crimecast.data.areas) and the income terciles.
BIAS_GROUPS: tuple[str, ...] = ("black", "white", "asian", "hispanic", "mixed", "unknown",
                                "low", "middle", "high")
# One representative Philadelphia UCR code per category for generated events.
OFFENSE_CODE: dict[str, int] = {"violent": 400, "property": 600, "other": 2600}


class SyntheticSettings(BaseModel):
    """Knobs of :func:`generate_city` (``configs/data.yaml`` key ``synthetic``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_areas: int = Field(408, ge=4, description="number of areas (Voronoi cells)")
    n_weeks: int = Field(260, ge=8, description="number of weeks simulated")
    seed: int = 2026
    start_week: str = Field("2021-01-04", description="Monday of the first week")
    area_km2: float = Field(0.9, gt=0, description="mean area of a cell in km²")
    # Mean weekly recorded count per area and category (before season and trend).
    mean_counts: dict[str, float] = Field(
        default_factory=lambda: {"violent": 1.2, "property": 2.4, "other": 2.0})
    # Amplitude of annual seasonality on the log scale, per category (peak in mid-July).
    season_amplitude: dict[str, float] = Field(
        default_factory=lambda: {"violent": 0.25, "property": 0.12, "other": 0.08})
    trend_per_year: float = Field(-0.03, description="log-scale change per year")
    self_excitation: float = Field(0.25, ge=0, lt=1, description="α: weight of last week here")
    spillover: float = Field(0.15, ge=0, lt=1, description="γ: weight of last week next door")
    poverty_effect: float = Field(0.5, description="log-rate per s.d. of poverty")
    density_effect: float = Field(0.2, description="log-rate per s.d. of log density")
    area_noise: float = Field(0.25, ge=0, description="s.d. of unexplained log-rate per area")
    length_scale_km: float | None = Field(
        None, gt=0, description="correlation length of covariates (default: city side / 5)")
    bias_group: str | None = Field(None, description="group whose counts are misrecorded")
    bias_factor: float = Field(1.0, gt=0, description="recorded / true for bias_group")
    n_outage_weeks: int = Field(0, ge=0, description="weeks where recording collapses")
    outage_factor: float = Field(0.3, ge=0, le=1, description="share recorded in outages")
    outage_seed_weeks: list[int] = Field(
        default_factory=list, description="explicit outage week indices (overrides random)")

    @model_validator(mode="after")
    def _check(self) -> SyntheticSettings:
        for name in ("mean_counts", "season_amplitude"):
            missing = set(CATEGORIES) - set(getattr(self, name))
            if missing:
                raise ValueError(f"{name} lacks categories {sorted(missing)}")
        if self.self_excitation + self.spillover >= 1:
            raise ValueError("self_excitation + spillover must be < 1 for a stable process")
        if self.bias_group is not None and self.bias_group not in BIAS_GROUPS:
            raise ValueError(f"bias_group {self.bias_group!r} is not one of {list(BIAS_GROUPS)}")
        if pd.Timestamp(self.start_week).dayofweek != 0:
            raise ValueError(f"start_week {self.start_week} is not a Monday")
        return self


@dataclass
class SyntheticCity:
    """A generated city. Arrays are ``[areas, weeks, categories]`` in ``areas`` row order.

    - ``areas``: GeoDataFrame (EPSG:4326) with the ``areas.parquet`` contract columns.
    - ``weeks``: Mondays of the simulated weeks.
    - ``intensity``: true expected crimes given the past (float32).
    - ``recorded_intensity``: expected *recorded* crimes (bias and outages applied).
    - ``counts``: recorded counts (int32), what a police database would hold.
    - ``neighbours``: row-normalised sparse adjacency used for spill-over.
    - ``outage_weeks``: weeks whose recording collapsed.
    """

    areas: gpd.GeoDataFrame
    weeks: pd.DatetimeIndex
    intensity: np.ndarray
    recorded_intensity: np.ndarray
    counts: np.ndarray
    neighbours: sparse.csr_matrix = field(repr=False)
    outage_weeks: pd.DatetimeIndex
    settings: SyntheticSettings

    @property
    def area_ids(self) -> np.ndarray:
        return self.areas["area_id"].to_numpy(dtype=str)

    def _long(self, values: dict[str, np.ndarray]) -> pd.DataFrame:
        n_areas, n_weeks, n_cats = self.counts.shape
        frame = pd.DataFrame({
            "area_id": np.repeat(self.area_ids, n_weeks * n_cats),
            "week": np.tile(np.repeat(self.weeks.values, n_cats), n_areas),
            "category": np.tile(np.array(CATEGORIES), n_areas * n_weeks),
        })
        for name, array in values.items():
            frame[name] = array.reshape(-1)
        return frame

    def truth_frame(self) -> pd.DataFrame:
        """``truth.parquet`` rows: area_id, week, category, intensity, recorded_intensity."""
        return self._long({"intensity": self.intensity.astype(np.float64),
                           "recorded_intensity": self.recorded_intensity.astype(np.float64)})

    def panel_frame(self) -> pd.DataFrame:
        """``panel.parquet`` rows (:data:`PANEL_COLUMNS`) straight from the recorded counts."""
        from crimecast.data.panel import panel_from_array

        return panel_from_array(self.counts, self.area_ids, self.weeks, CATEGORIES,
                                self.outage_weeks)

    def demographics_frame(self) -> pd.DataFrame:
        """Raw demographics (``RAW_DEMOGRAPHIC_COLUMNS``) as a census table would give them."""
        cols = ["area_id", "population", "pct_black", "pct_white", "pct_asian",
                "pct_hispanic", "median_income", "pct_poverty"]
        return pd.DataFrame(self.areas[cols])

    def events(self, seed: int | None = None) -> pd.DataFrame:
        """One row per recorded crime: ``source_key, occurred_local, offense_code, lon,
        lat, category, area_id``, with a uniform time within the week (local wall clock)
        and a uniform point inside the area's polygon (so a point-in-polygon join
        recovers ``area_id``)."""
        rng = np.random.default_rng(self.settings.seed + 1 if seed is None else seed)
        flat = self.counts.reshape(-1).astype(np.int64)
        _, n_weeks, n_cats = self.counts.shape
        cell = np.repeat(np.arange(flat.size), flat)
        area_idx, rest = np.divmod(cell, n_weeks * n_cats)
        week_idx, cat_idx = np.divmod(rest, n_cats)
        lon, lat = sample_points_in_polygons(self.areas.geometry.values, area_idx, rng)
        # Seconds within the week; a whole number keeps the text timestamp exact.
        offset = rng.integers(0, 7 * 24 * 3600, size=cell.size)
        occurred = self.weeks.values[week_idx] + offset.astype("timedelta64[s]")
        cats = np.array(CATEGORIES)[cat_idx]
        frame = pd.DataFrame({
            "source_key": np.char.add("syn-", np.arange(cell.size).astype(str)),
            "occurred_local": pd.DatetimeIndex(occurred).strftime("%Y-%m-%d %H:%M:%S"),
            "offense_code": np.vectorize(OFFENSE_CODE.get, otypes=[np.int64])(cats)
            if cell.size else np.array([], dtype=np.int64),
            "lon": lon, "lat": lat, "category": cats,
            "area_id": self.area_ids[area_idx],
        })
        return frame


def sample_points_in_polygons(polygons: np.ndarray, which: np.ndarray,
                              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points inside ``polygons[which[i]]`` for every i, by rejection from each
    polygon's bounding box (Voronoi cells are convex, so few rounds are needed).
    Returns (lon, lat) arrays shaped like ``which``."""
    bounds = shapely.bounds(polygons)
    lon = np.empty(which.size)
    lat = np.empty(which.size)
    todo = np.arange(which.size)
    for _ in range(100):
        if todo.size == 0:
            break
        b = bounds[which[todo]]
        x = rng.uniform(b[:, 0], b[:, 2])
        y = rng.uniform(b[:, 1], b[:, 3])
        inside = shapely.contains_xy(polygons[which[todo]], x, y)
        lon[todo[inside]], lat[todo[inside]] = x[inside], y[inside]
        todo = todo[~inside]
    if todo.size:
        # Degenerate slivers: fall back to a point guaranteed inside.
        pts = shapely.point_on_surface(polygons[which[todo]])
        lon[todo], lat[todo] = shapely.get_x(pts), shapely.get_y(pts)
    return lon, lat


def _smooth_fields(xy: np.ndarray, n_fields: int, length_scale: float,
                   rng: np.random.Generator, n_waves: int = 48) -> np.ndarray:
    """``n_fields`` independent smooth Gaussian-like random fields at points ``xy`` [n, 2]
    (random Fourier features of a squared-exponential kernel), standardised per field.
    Returns [n, n_fields]."""
    freq = rng.normal(size=(n_fields, n_waves, 2)) / length_scale
    phase = rng.uniform(0, 2 * np.pi, size=(n_fields, n_waves))
    out = np.empty((xy.shape[0], n_fields))
    for f in range(n_fields):
        out[:, f] = np.cos(xy @ freq[f].T + phase[f]).sum(axis=1)
    out -= out.mean(axis=0)
    out /= out.std(axis=0) + 1e-12
    return out


def _tessellate(n_areas: int, area_km2: float, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi cells of jittered grid points in a rectangle, in km. Returns
    (polygons [n] in km coordinates, seed points [n, 2] in km)."""
    cols = int(np.ceil(np.sqrt(n_areas)))
    rows = int(np.ceil(n_areas / cols))
    grid = np.stack(np.meshgrid(np.arange(cols), np.arange(rows)), axis=-1).reshape(-1, 2)
    points = (grid[:n_areas] + 0.5 + rng.uniform(-0.35, 0.35, size=(n_areas, 2)))
    box = shapely.box(0, 0, cols, rows)
    cells = shapely.get_parts(shapely.voronoi_polygons(
        shapely.multipoints(points), extend_to=box, ordered=True))
    cells = shapely.intersection(cells, box)
    side = np.sqrt(area_km2)
    return shapely.transform(cells, lambda c: c * side), points * side


def _covariates(xy_km: np.ndarray, cell_km2: np.ndarray, settings: SyntheticSettings,
                rng: np.random.Generator) -> pd.DataFrame:
    """Smooth, correlated covariates: segregation (clustered shares), poverty tied to the
    shares and to a latent deprivation field, income inversely to poverty."""
    side = float(np.sqrt(len(xy_km) * settings.area_km2))
    scale = settings.length_scale_km or max(side / 5, 1.0)
    fields = _smooth_fields(xy_km, 7, scale, rng)
    n = len(xy_km)
    # Shares: softmax of smooth fields with a sharpness that makes most areas majority-one
    # group (residential segregation), with group sizes like a large US city.
    logits = 1.8 * fields[:, :4] + np.log([0.40, 0.38, 0.08, 0.14])
    shares = np.exp(logits)
    shares = 100 * shares / shares.sum(axis=1, keepdims=True)
    deprivation = 0.6 * fields[:, 4] + 0.5 * (shares[:, 0] + shares[:, 3] - shares[:, 1]) / 50
    deprivation = (deprivation - deprivation.mean()) / deprivation.std()
    poverty = 100 / (1 + np.exp(-(-1.6 + 0.8 * deprivation + 0.2 * rng.normal(size=n))))
    income = np.exp(11.0 - 0.35 * deprivation + 0.15 * rng.normal(size=n))
    population = np.round(np.exp(8.2 + 0.35 * fields[:, 5] + 0.3 * rng.normal(size=n)))
    population[rng.uniform(size=n) < 0.01] = 0  # parks, airports, rivers: empty tracts
    return pd.DataFrame({
        "population": population.astype(np.int64),
        "pct_black": shares[:, 0], "pct_white": shares[:, 1],
        "pct_asian": shares[:, 2], "pct_hispanic": shares[:, 3],
        "median_income": np.round(income, -2), "pct_poverty": poverty,
        "land_area_km2": cell_km2,
        "_latent": fields[:, 6],
    })


def _seasonal_log(weeks: pd.DatetimeIndex, settings: SyntheticSettings) -> np.ndarray:
    """[weeks, categories] log-scale seasonal + trend term; peaks in mid-July."""
    phase = 2 * np.pi * (weeks.dayofyear.to_numpy() / 365.25 - 0.287)
    amp = np.array([settings.season_amplitude[c] for c in CATEGORIES])
    years = np.arange(len(weeks)) / 52.18
    return np.sin(phase)[:, None] * amp[None, :] + settings.trend_per_year * years[:, None]


def generate_city(n_areas: int | None = None, n_weeks: int | None = None,
                  seed: int | None = None, settings: SyntheticSettings | None = None,
                  adjacency: tuple[np.ndarray, np.ndarray] | None = None,
                  groups: AreaGroupSettings | None = None,
                  effect: np.ndarray | None = None,
                  **overrides: Any) -> SyntheticCity:
    """Generate a synthetic city.

    Arguments: ``n_areas``, ``n_weeks``, ``seed`` and any other :class:`SyntheticSettings`
    field as keyword (they override ``settings``). ``adjacency`` is an optional
    ``(edge_index [2, E], edge_weight [E])`` to use for spill-over; by default the queen
    contiguity of the generated polygons (:func:`crimecast.data.graph.build_graph`).
    ``groups`` is how fairness groups are labelled (default: the data settings' default,
    majority race/ethnicity); ``bias_group`` names one of those labels.
    ``effect`` is an optional ``[areas, weeks]`` multiplier of the true intensity (an
    injected intervention: 0.8 = −20 %, 1.05 = +5 % displacement). It acts on each week's
    crimes after the self-exciting step, and next week's near-repeats follow the
    untreated crimes, so the expected effect on the counts is exactly the multiplier
    (a known truth for :mod:`crimecast.impact`).

    Returns a :class:`SyntheticCity` (areas, weekly intensities and recorded counts).
    """
    from crimecast.data.areas import build_areas
    from crimecast.data.graph import build_graph

    base = (settings or SyntheticSettings()).model_dump()
    for key, value in (("n_areas", n_areas), ("n_weeks", n_weeks), ("seed", seed)):
        if value is not None:
            base[key] = value
    base.update(overrides)
    cfg = SyntheticSettings.model_validate(base)
    rng = np.random.default_rng(cfg.seed)

    cells_km, points_km = _tessellate(cfg.n_areas, cfg.area_km2, rng)
    extent = shapely.total_bounds(cells_km)[2:]
    cell_km2 = shapely.area(cells_km)
    centre = extent / 2
    polygons = shapely.transform(cells_km, lambda c: np.column_stack([
        CENTRE_LON + (c[:, 0] - centre[0]) / KM_PER_DEG_LON,
        CENTRE_LAT + (c[:, 1] - centre[1]) / KM_PER_DEG_LAT]))

    cov = _covariates(points_km, cell_km2, cfg, rng)
    area_ids = np.char.add("99", np.char.zfill(np.arange(cfg.n_areas).astype(str), 9))
    # Areas go through the same join and group labelling as a real city's (crimecast.data.areas).
    raw_areas = gpd.GeoDataFrame({"area_id": area_ids, "aland_m2": np.round(cell_km2 * 1e6)},
                                 geometry=polygons, crs="EPSG:4326")
    demographics = cov.drop(columns=["land_area_km2", "_latent"]).assign(area_id=area_ids)
    areas = build_areas(raw_areas, demographics, groups or AreaGroupSettings())
    if not (areas["area_id"].to_numpy() == area_ids).all():
        raise AssertionError("build_areas reordered the synthetic areas")  # ids sort in order
    groups_of = areas["group"].to_numpy(dtype=str)

    if adjacency is None:
        edge_index, _ = build_graph(areas, method="queen")
    else:
        edge_index = adjacency[0]
    neighbours = row_normalised_adjacency(edge_index, cfg.n_areas)

    # Background rate per area and category: covariates + spatially smooth residual.
    z = lambda v: (v - v.mean()) / (v.std() + 1e-12)
    density = np.log1p(cov["population"].to_numpy() / np.maximum(cell_km2, 1e-3))
    log_rel = (cfg.poverty_effect * z(cov["pct_poverty"].to_numpy())
               + cfg.density_effect * z(density)
               + 0.5 * cfg.area_noise * cov["_latent"].to_numpy()
               + 0.5 * cfg.area_noise * rng.normal(size=cfg.n_areas))
    # Empty tracts still see some crime (through-traffic), just less.
    log_rel = log_rel - 0.7 * (cov["population"].to_numpy() == 0)
    rel = np.exp(log_rel)
    rel /= rel.mean()
    mean_counts = np.array([cfg.mean_counts[c] for c in CATEGORIES])
    base_rate = rel[:, None] * mean_counts[None, :]  # [areas, cats]

    weeks = pd.date_range(cfg.start_week, periods=cfg.n_weeks, freq="7D")
    season = _seasonal_log(weeks, cfg)  # [weeks, cats]
    outage_idx = _outage_weeks(cfg, rng)
    factor = np.ones(cfg.n_areas)
    if cfg.bias_group is not None:
        factor[groups_of == cfg.bias_group] = cfg.bias_factor

    if effect is not None:
        effect = np.asarray(effect, dtype=np.float64)
        if effect.shape != (cfg.n_areas, cfg.n_weeks) or (effect < 0).any():
            raise ValueError(f"effect must be a non-negative [{cfg.n_areas}, {cfg.n_weeks}] "
                             f"array, got shape {effect.shape}")
    alpha, gamma = cfg.self_excitation, cfg.spillover
    shape = (cfg.n_areas, cfg.n_weeks, len(CATEGORIES))
    intensity = np.empty(shape, dtype=np.float32)
    recorded_intensity = np.empty(shape, dtype=np.float32)
    counts = np.empty(shape, dtype=np.int32)
    # Burn-in from the stationary mean so week 0 is not special.
    previous = rng.poisson(base_rate * np.exp(season[0])).astype(np.float64)
    for _ in range(8):
        lam = (1 - alpha - gamma) * base_rate * np.exp(season[0]) + alpha * previous \
            + gamma * (neighbours @ previous)
        previous = rng.poisson(lam).astype(np.float64)
    for t in range(cfg.n_weeks):
        lam = ((1 - alpha - gamma) * base_rate * np.exp(season[t]) + alpha * previous
               + gamma * (neighbours @ previous))
        true_counts = rng.poisson(lam)
        untreated = true_counts
        if effect is not None:
            # Thinning / topping up the untreated crimes: E[crimes] = effect · λ exactly.
            true_counts = _record(untreated, lam, effect[:, t, None], rng)
            lam = lam * effect[:, t, None]
        week_factor = factor * (cfg.outage_factor if t in outage_idx else 1.0)
        recorded = _record(true_counts, lam, week_factor[:, None], rng)
        intensity[:, t] = lam
        recorded_intensity[:, t] = lam * week_factor[:, None]
        counts[:, t] = recorded
        previous = untreated.astype(np.float64)

    return SyntheticCity(areas=areas, weeks=weeks, intensity=intensity,
                         recorded_intensity=recorded_intensity, counts=counts,
                         neighbours=neighbours, outage_weeks=weeks[sorted(outage_idx)],
                         settings=cfg)


def _outage_weeks(cfg: SyntheticSettings, rng: np.random.Generator) -> set[int]:
    if cfg.outage_seed_weeks:
        bad = [w for w in cfg.outage_seed_weeks if not 0 <= w < cfg.n_weeks]
        if bad:
            raise ValueError(f"outage_seed_weeks {bad} outside 0..{cfg.n_weeks - 1}")
        return set(cfg.outage_seed_weeks)
    if cfg.n_outage_weeks == 0:
        return set()
    # Not in the first or last 10 % of weeks, so backtests and burn-in stay clean.
    lo, hi = cfg.n_weeks // 10, cfg.n_weeks - cfg.n_weeks // 10
    return set(rng.choice(np.arange(lo, hi), size=cfg.n_outage_weeks, replace=False).tolist())


def _record(true_counts: np.ndarray, lam: np.ndarray, factor: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """Recorded counts: binomial thinning where ``factor < 1`` (unreported crimes), extra
    Poisson records where ``factor > 1`` (over-policing records more of the same)."""
    factor = np.broadcast_to(factor, true_counts.shape)
    thin = rng.binomial(true_counts, np.minimum(factor, 1.0))
    extra = rng.poisson(lam * np.maximum(factor - 1.0, 0.0))
    return thin + extra


def save_city_artifacts(city: SyntheticCity, artifacts: ArtifactPaths,
                        graph_settings: GraphSettings | None = None) -> dict[str, Path]:
    """Write a city straight into pipeline artifacts, bypassing fetch and ingest (for
    test fixtures and benchmarks): areas.parquet, graph.npz and panel.parquet, as the
    areas, graph and panel stages would (the truth is ``city.truth_frame()``). ``graph_settings``
    defaults to :class:`crimecast.data.settings.GraphSettings`' defaults.
    Returns {artifact name: path written}."""
    from crimecast.contracts import AreaGraph
    from crimecast.data.graph import build_graph
    from crimecast.io import write_parquet

    graph_settings = graph_settings or GraphSettings()
    written: dict[str, Path] = {}
    written["areas"] = write_parquet(artifacts.areas, city.areas)
    edge_index, edge_weight = build_graph(city.areas, graph_settings.method,
                                          graph_settings.knn_k, graph_settings.tolerance_deg)
    graph = AreaGraph(city.area_ids, edge_index, edge_weight,
                      pd.DataFrame(city.areas.drop(columns="geometry")).set_index("area_id"))
    written["graph"] = graph.save(artifacts.graph)
    written["panel"] = write_parquet(artifacts.panel, city.panel_frame())
    return written
