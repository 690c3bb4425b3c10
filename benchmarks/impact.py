"""Impact-estimator benchmark → benchmarks/results/impact.json.

On the synthetic city (408 areas, 130 weeks; :func:`crimecast.impact.synthetic_trial`),
30 populated areas drawn at random get −20 % intensity for 12 weeks and their graph
neighbours +5 %; a placebo run on the same city and draws injects nothing. For every
seed both estimators of :mod:`crimecast.impact` (matched difference-in-differences and
the weighted displacement difference) estimate the effect with a 95 % CI. Reported per
estimator: the mean estimate, how often the CI covers the injected value (coverage),
how often it excludes 0 (power), and for the placebo how often it covers 0.

    .venv/bin/python benchmarks/impact.py [--seeds 20] [--draws 2000]

Targets (issue 15): CI covers −20 % and excludes 0; placebo CIs cover 0; coverage
reported over ≥ 20 seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "impact.json"

from crimecast.impact import estimate_impact, synthetic_trial


def estimates(seed: int, effect: float, displacement: float, draws: int) -> dict[str, Any]:
    """One seed's three estimates: DiD and WDD on the treated areas, WDD on the buffer."""
    trial = synthetic_trial(seed, effect=effect, displacement=displacement)
    result = estimate_impact(trial.counts.sum(axis=2), trial.design,
                             risk=trial.counts[:, trial.design.start - 13:trial.design.start]
                             .sum(axis=2).mean(axis=1),
                             draws=draws, seed=seed)
    did, wdd = result["did"], result["wdd"]
    return {"did": (did["effect"], did["ci"]), "wdd": (wdd["treated"]["effect"],
                                                      wdd["treated"]["ci"]),
            "wdd_buffer": (wdd["buffer"]["effect"], wdd["buffer"]["ci"]),
            "displacement_label": wdd["displacement"]}


def summarise(runs: list[dict[str, Any]], truth: dict[str, float]) -> dict[str, Any]:
    """Per estimator: mean and s.d. of the estimates, CI coverage of the truth, share of
    CIs excluding 0, mean CI width."""
    out: dict[str, Any] = {}
    for name, value in truth.items():
        points = np.array([r[name][0] for r in runs])
        cis = np.array([r[name][1] for r in runs], dtype=float)
        out[name] = {"truth": value, "mean_estimate": round(float(points.mean()), 4),
                     "sd_estimate": round(float(points.std(ddof=1)), 4),
                     "coverage": round(float(np.mean((cis[:, 0] <= value)
                                                     & (value <= cis[:, 1]))), 3),
                     "excludes_zero": round(float(np.mean((cis[:, 1] < 0) | (cis[:, 0] > 0))),
                                            3),
                     "mean_ci_width": round(float(np.mean(cis[:, 1] - cis[:, 0])), 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--draws", type=int, default=2000)
    args = parser.parse_args()
    started = time.monotonic()
    effect_runs, placebo_runs = [], []
    for seed in range(args.seeds):
        effect_runs.append(estimates(seed, -0.20, 0.05, args.draws))
        placebo_runs.append(estimates(seed, 0.0, 0.0, args.draws))
        e = effect_runs[-1]
        print(f"seed {seed:2d}: DiD {e['did'][0]:+.3f}, WDD {e['wdd'][0]:+.3f}, "
              f"buffer {e['wdd_buffer'][0]:+.3f} ({e['displacement_label']})", flush=True)
    injected = summarise(effect_runs, {"did": -0.20, "wdd": -0.20, "wdd_buffer": 0.05})
    placebo = summarise(placebo_runs, {"did": 0.0, "wdd": 0.0, "wdd_buffer": 0.0})
    labels = [r["displacement_label"] for r in effect_runs]
    payload = {
        "benchmark": "impact",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "command": "python benchmarks/impact.py --seeds "
                   f"{args.seeds} --draws {args.draws}",
        "design": {"areas": 408, "weeks": 130, "treated_areas": 30, "treated_weeks": 12,
                   "pre_weeks": 52, "injected_effect": -0.20, "injected_displacement": 0.05,
                   "treated_selection": "random among populated areas"},
        "seeds": args.seeds,
        "level": 0.95,
        "injected": injected,
        "placebo": placebo,
        "wdd_displacement_reported": {label: labels.count(label) for label in set(labels)},
        "every_injected_ci_excludes_zero": bool(
            injected["did"]["excludes_zero"] == 1 and injected["wdd"]["excludes_zero"] == 1),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps({"injected": injected, "placebo": placebo}, indent=2))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
