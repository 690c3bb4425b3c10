"""Feedback-loop simulation: do forecasts that direct patrols end up chasing themselves?

Ensign et al. (2018, "Runaway Feedback Loops in Predictive Policing") show that when
police go where the model predicts crime, and the model learns from crimes the police
*discovered*, patrols concentrate ever further on the places they already patrol. This
module reproduces that on a synthetic city whose true crime rates are known:

each simulated week ``t``
  1. the model (a cheap crimecast model, retrained every week) forecasts next week's
     expected count per area from the *recorded* history;
  2. ``patrol_units`` patrol units are split across areas in proportion to the forecast
     (:func:`crimecast.forecast.allocation.allocate_units`, as the ``/allocate`` endpoint does);
  3. true crimes happen: ``y ~ Poisson(λ)``, ``λ`` the city's true intensity;
  4. crimes are recorded: each is reported by the public with probability
     ``report_share``; each unreported one is discovered by patrols with probability
     ``1 - exp(-discovery_rate * units)`` (more patrol dosage, more discovery).

Five policies are compared on the same true crimes and reports:

- ``naive``: train on everything recorded (reported + discovered);
- ``reported_only``: train on public reports only (independent of where patrols were);
- ``dosage_corrected``: train on recorded counts divided by the probability that a crime
  is recorded under the area's patrol dosage, ``r + (1 - r) p`` (Horvitz-Thompson);
- ``randomised``: train like ``naive``, but allocate in trial mode
  (:func:`crimecast.forecast.allocation.randomise_near_cutoff`, as ``/allocate`` does when
  ``trial_share > 0``): ``trial_share`` of the units go at random to areas near the
  cut-off, so patrols keep sampling places the forecast is unsure about;
- ``randomised_corrected``: trial-mode allocation and dosage-corrected training.

Per week and group we measure the group's share of patrol units against its share of
true crime (``λ``), and summarise the week by the total-variation gap
``½ Σ_g |patrol_share_g − crime_share_g|`` (0 = patrols follow true crime exactly).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crimecast.contracts import CATEGORIES, AreaGraph, Panel

POLICIES: tuple[str, ...] = ("naive", "reported_only", "dosage_corrected", "randomised",
                             "randomised_corrected")


@dataclass(frozen=True)
class SimulationConfig:
    """Knobs of the simulation (defaults: a small city, a few months)."""

    weeks: int = 30
    n_areas: int = 100
    seed: int = 7
    warmup_weeks: int = 26
    patrol_units: int | None = None  # default: n_areas (one unit per area on average)
    report_share: float = 0.1
    discovery_rate: float = 0.5
    model: str = "historical_average"
    # Trial mode of the ``randomised`` policy: share of units at random, relative band.
    trial_share: float = 0.2
    trial_tolerance: float = 0.5
    # None: a 4-week window for historical_average (short memory shows the loop sooner),
    # the model's defaults otherwise.
    model_params: dict[str, Any] | None = None

    def params(self) -> dict[str, Any]:
        if self.model_params is not None:
            return dict(self.model_params)
        return {"window": 4} if self.model == "historical_average" else {}

    @property
    def units(self) -> int:
        return int(self.patrol_units or self.n_areas)


@dataclass
class City:
    """What the simulation needs from a synthetic city: true intensity ``[A, W, C]``
    (warm-up + simulated weeks), the graph and the group of each area."""

    intensity: np.ndarray
    weeks: pd.DatetimeIndex
    graph: AreaGraph
    groups: np.ndarray


def make_city(config: SimulationConfig) -> City:
    """A synthetic city (:func:`crimecast.data.synthetic.generate_city`) with enough weeks for
    the warm-up and the simulation."""
    from crimecast.data.synthetic import generate_city

    city = generate_city(n_areas=config.n_areas, n_weeks=config.warmup_weeks + config.weeks,
                         seed=config.seed)
    adjacency = city.neighbours.tocoo()
    edge_index = np.vstack([adjacency.row, adjacency.col]).astype(np.int64)
    areas = pd.DataFrame(city.areas.drop(columns="geometry")).set_index("area_id")
    graph = AreaGraph(city.area_ids, edge_index, np.ones(edge_index.shape[1], np.float32), areas)
    return City(np.asarray(city.intensity, dtype=np.float64), city.weeks, graph,
                areas["group"].to_numpy(dtype=str))


def _panel(counts: np.ndarray, city: City, num_weeks: int) -> Panel:
    from crimecast.data.panel import panel_from_array

    return Panel(panel_from_array(np.rint(counts[:, :num_weeks]).astype(np.int64),
                                  city.graph.area_ids, city.weeks[:num_weeks], CATEGORIES))


def _discovery(units: np.ndarray, rate: float) -> np.ndarray:
    """Probability that patrols discover an unreported crime, per area ``[A]``."""
    return 1.0 - np.exp(-rate * units)


def _shares(values: np.ndarray, groups: np.ndarray, labels: np.ndarray) -> np.ndarray:
    totals = np.array([values[groups == g].sum() for g in labels], dtype=np.float64)
    return totals / max(totals.sum(), 1e-12)


def simulate(config: SimulationConfig, policy: str, city: City | None = None,
             progress: bool = False) -> pd.DataFrame:
    """Run one training policy; returns one row per (week, group) with ``patrol_share``,
    ``crime_share`` (true), ``recorded_share``, plus the week's ``patrol_gap`` (total
    variation between patrol and true crime shares)."""
    from crimecast.forecast.allocation import allocate_units, randomise_near_cutoff
    from crimecast.forecast.models import get_model

    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {list(POLICIES)}")
    city = city or make_city(config)
    rng = np.random.default_rng(config.seed)
    # True crimes and public reports are drawn once, identically for every policy.
    true_counts = rng.poisson(city.intensity)
    reported = rng.binomial(true_counts, config.report_share)
    discovery_rng = np.random.default_rng(config.seed + 1)
    num_areas = city.intensity.shape[0]
    r = config.report_share
    # Warm-up: patrols spread evenly, so the first forecast starts from an unbiased-ish
    # record and any concentration later is the loop's doing.
    even = np.full(num_areas, config.units / num_areas)
    training = np.zeros_like(city.intensity)
    warm = config.warmup_weeks
    p_even = _discovery(even, config.discovery_rate)[:, None, None]
    discovered_warm = discovery_rng.binomial(true_counts[:, :warm] - reported[:, :warm], p_even)
    training[:, :warm] = _training_counts(policy, reported[:, :warm],
                                          reported[:, :warm] + discovered_warm, p_even, r)
    labels = np.unique(city.groups)
    rows = []
    weeks = range(warm, warm + config.weeks)
    iterator = weeks
    if progress:
        from tqdm import tqdm

        iterator = tqdm(weeks, desc=f"simulate {policy}", leave=False)
    for t in iterator:
        model = get_model(config.model, **config.params())
        history = _panel(training, city, t)
        model.fit(history, city.graph)
        risk = model.predict_mean(history, city.graph, (1,))[:, 0, :].sum(axis=1)
        allocation = allocate_units(city.graph.area_ids, risk, risk, city.groups, config.units)
        units = allocation.by_area["units"].to_numpy(dtype=np.float64)
        if policy.startswith("randomised"):
            units = randomise_near_cutoff(units, risk, config.trial_share,
                                          config.trial_tolerance,
                                          seed=config.seed * 10_000 + t).units.astype(np.float64)
        p = _discovery(units, config.discovery_rate)[:, None]
        discovered = discovery_rng.binomial(true_counts[:, t] - reported[:, t], p)
        recorded = reported[:, t] + discovered
        training[:, t] = _training_counts(policy, reported[:, t], recorded, p, r)
        patrol = _shares(units, city.groups, labels)
        crime = _shares(city.intensity[:, t].sum(axis=1), city.groups, labels)
        seen = _shares(recorded.sum(axis=1), city.groups, labels)
        gap = 0.5 * float(np.abs(patrol - crime).sum())
        for g, label in enumerate(labels):
            rows.append({"policy": policy, "week": city.weeks[t], "step": t - warm + 1,
                         "group": str(label), "patrol_share": patrol[g], "crime_share": crime[g],
                         "recorded_share": seen[g], "patrol_gap": gap})
    return pd.DataFrame(rows)


def _training_counts(policy: str, reported: np.ndarray, recorded: np.ndarray,
                     discovery: np.ndarray, report_share: float) -> np.ndarray:
    """What the model is trained on under ``policy`` (same shapes as the counts)."""
    if policy in ("naive", "randomised"):
        return recorded.astype(np.float64)
    if policy == "reported_only":
        return reported.astype(np.float64)
    # Each true crime is recorded with probability r + (1 - r) p: dividing by it is the
    # Horvitz-Thompson estimate of the true count, whatever the patrol dosage was.
    # (Rescaling down to the reported level instead would round small counts to zero.)
    return recorded / (report_share + (1 - report_share) * discovery)


def run_all(config: SimulationConfig, progress: bool = False) -> dict[str, pd.DataFrame]:
    """Every policy of :data:`POLICIES` on the same city; {policy: per-week table}."""
    city = make_city(config)
    return {policy: simulate(config, policy, city, progress) for policy in POLICIES}


def weekly_gaps(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Patrol gap per week (rows) and policy (columns)."""
    return pd.DataFrame({policy: frame.groupby("step")["patrol_gap"].first()
                         for policy, frame in results.items()})


def summarise(results: dict[str, pd.DataFrame], config: SimulationConfig) -> dict[str, Any]:
    """JSON-able summary: per policy the gap in the first and last week and its mean over
    the last quarter of the weeks, and the group with the largest excess of patrol share
    over true crime share at the end."""
    gaps = weekly_gaps(results)
    tail = max(1, len(gaps) // 4)
    out: dict[str, Any] = {"config": asdict(config), "policies": {}}
    for policy, frame in results.items():
        last = frame[frame["step"] == frame["step"].max()]
        excess = (last["patrol_share"] - last["crime_share"]).to_numpy()
        worst = last.iloc[int(np.argmax(excess))]
        out["policies"][policy] = {
            "gap_first_week": float(gaps[policy].iloc[0]),
            "gap_last_week": float(gaps[policy].iloc[-1]),
            "gap_mean_last_quarter": float(gaps[policy].iloc[-tail:].mean()),
            "most_overpatrolled_group": str(worst["group"]),
            "its_patrol_share": float(worst["patrol_share"]),
            "its_true_crime_share": float(worst["crime_share"]),
        }
    return out


def write_simulation(results: dict[str, pd.DataFrame], directory: Path,
                     config: SimulationConfig | None = None) -> dict[str, Path]:
    """Write ``feedback.csv`` (per week, group and policy), ``feedback.json`` (summary),
    ``gap.png`` (patrol gap per week by policy) and ``shares.png`` (patrol vs true crime
    share of each group, naive vs mitigated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crimecast.io import atomic_path, write_csv, write_json

    config = config or SimulationConfig()
    table = pd.concat(results.values(), ignore_index=True)
    paths = {"table": write_csv(directory / "feedback.csv", table),
             "summary": write_json(directory / "feedback.json", summarise(results, config))}
    gaps = weekly_gaps(results)
    fig, ax = plt.subplots(figsize=(7, 4))
    for policy in gaps.columns:
        ax.plot(gaps.index, gaps[policy], marker="o", markersize=3, label=policy)
    ax.set_xlabel("simulated week")
    ax.set_ylabel("½ Σ |patrol share − true crime share|")
    ax.set_title("Feedback loop: how far patrols drift from true crime, by training policy")
    ax.legend()
    fig.tight_layout()
    with atomic_path(directory / "gap.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    paths["gap_plot"] = directory / "gap.png"

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.8), sharey=True)
    for ax, (policy, frame) in zip(np.atleast_1d(axes), results.items()):
        for group, part in frame.groupby("group"):
            line, = ax.plot(part["step"], part["patrol_share"], label=f"{group} patrols")
            ax.plot(part["step"], part["crime_share"], linestyle="--", color=line.get_color(),
                    label=f"{group} true crime")
        ax.set_title(policy)
        ax.set_xlabel("simulated week")
    np.atleast_1d(axes)[0].set_ylabel("share")
    np.atleast_1d(axes)[-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(directory / "shares.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    paths["share_plot"] = directory / "shares.png"
    return paths
