"""Impact evaluation on the synthetic city with a known injected effect (issue 15).

A fast version of ``benchmarks/impact.py``: a few seeds instead of 20."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crimecast.impact import (
    ImpactDesign,
    buffer_mask,
    estimate_impact,
    impact_by_subset,
    synthetic_trial,
)
from monitoring.impact import did_it_work_html, read_impact, treated_from_dosage

SEEDS = (0, 1, 2)


def _risk(trial) -> np.ndarray:
    start = trial.design.start
    return trial.counts[:, start - 13:start].sum(axis=2).mean(axis=1)


@pytest.mark.parametrize("seed", SEEDS)
def test_injected_reduction_recovered_by_both_estimators_with_displacement(seed: int) -> None:
    trial = synthetic_trial(seed, effect=-0.20, displacement=0.05)
    result = estimate_impact(trial.counts.sum(axis=2), trial.design, _risk(trial),
                             draws=500, seed=seed)
    did, wdd = result["did"], result["wdd"]
    for name, (effect, ci) in {"did": (did["effect"], did["ci"]),
                               "wdd": (wdd["treated"]["effect"], wdd["treated"]["ci"])}.items():
        assert ci[0] <= -0.20 <= ci[1], f"{name} CI {ci} misses -20 %"
        assert ci[1] < 0, f"{name} CI {ci} does not exclude 0"
        assert -0.32 < effect < -0.08
    # The buffer's +5 % is reported with its CI, and the CI covers it.
    buffer = wdd["buffer"]
    assert buffer["areas"] == int(trial.design.buffer.sum()) > 30
    assert buffer["ci"][0] <= 0.05 <= buffer["ci"][1]
    assert buffer["effect"] > 0
    assert wdd["displacement"] in ("displacement", "none detected")
    assert wdd["wdd"] == pytest.approx(wdd["treated"]["change"] + buffer["change"])


@pytest.mark.parametrize("seed", SEEDS)
def test_placebo_cis_cover_zero(seed: int) -> None:
    trial = synthetic_trial(seed, effect=0.0, displacement=0.0)
    result = estimate_impact(trial.counts.sum(axis=2), trial.design, _risk(trial),
                             draws=500, seed=seed)
    for ci in (result["did"]["ci"], result["wdd"]["treated"]["ci"],
               result["wdd"]["buffer"]["ci"]):
        assert ci[0] <= 0 <= ci[1]


def test_matched_controls_exclude_treated_and_buffer_areas() -> None:
    from crimecast.impact import match_controls, matching_features

    trial = synthetic_trial(3)
    controls = match_controls(matching_features(trial.counts.sum(axis=2), trial.design),
                              trial.design, k=5)
    assert controls.shape == (int(trial.design.treated.sum()), 5)
    assert not (trial.design.treated[controls] | trial.design.buffer[controls]).any()


def test_by_category_and_group_with_small_groups_skipped() -> None:
    trial = synthetic_trial(4)
    result = impact_by_subset(trial.counts, trial.categories, trial.groups, trial.design,
                              trial.edge_index, min_treated=8, draws=200)
    assert set(result["by_category"]) == set(trial.categories)
    treated_groups = pd.Series(trial.groups[trial.design.treated]).value_counts()
    assert set(result["by_group"]) == set(treated_groups.index)
    for label, n in treated_groups.items():
        entry = result["by_group"][label]
        if n < 8:
            assert "skipped" in entry
        else:
            assert entry["did"]["treated_areas"] == n
            assert entry["did"]["ci"][0] <= -0.2 <= entry["did"]["ci"][1]


def test_buffer_is_the_untreated_graph_neighbours() -> None:
    edge_index = np.array([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])  # a path 0-1-2-3
    treated = np.array([False, True, False, False])
    assert buffer_mask(treated, edge_index).tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="both treated and in the buffer"):
        ImpactDesign(treated=treated, buffer=treated, start=2, weeks=1, pre_weeks=2,
                     valid=np.ones(4, bool))


def test_treated_from_dosage_threshold() -> None:
    dosage = pd.DataFrame({"week": ["2024-01-01", "2024-01-08", "2024-01-01", "2024-01-08"],
                           "area_id": ["a", "a", "b", "b"],
                           "kind": ["patrol_minutes"] * 4, "amount": [120, 60, 30, 0]})
    ids, start, weeks = treated_from_dosage(dosage, "patrol_minutes", 60)
    assert ids == ["a"] and start == pd.Timestamp("2024-01-01") and weeks == 2
    assert treated_from_dosage(dosage, "outreach_contacts", 1) == ([], None, 0)


def test_report_section_without_interventions_says_so() -> None:
    assert "No interventions recorded yet" in did_it_work_html(None)


def test_impact_cli_writes_estimates_and_the_report_section(synthetic_project: Path) -> None:
    from crimecast.cli import app
    from crimecast.contracts import Panel

    panel = Panel.load()
    areas = sorted(panel.counts["area_id"].unique())
    Path("treated.csv").write_text("area_id\n" + "\n".join(areas[:10]) + "\n")
    start = panel.weeks[-16].date().isoformat()
    result = CliRunner().invoke(app, ["impact", "--treated", "treated.csv", "--start", start,
                                      "--weeks", "12"])
    assert result.exit_code == 0, result.output
    payload = read_impact(synthetic_project / "state/monitoring/impact.json")
    assert payload["design"]["treated_areas"] == 10
    assert payload["design"]["start_week"] == start
    page = did_it_work_html(payload)
    assert "Did it work?" in page and "Weighted displacement difference" in page
    assert "%" in page


def test_impact_cli_bad_treated_file_is_one_line(synthetic_project: Path) -> None:
    Path("treated.csv").write_text("tract\n42\n")
    done = subprocess.run([sys.executable, "-m", "crimecast", "impact", "--treated",
                           "treated.csv", "--start", "2023-01-02", "--weeks", "4"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "treated.csv: no 'area_id' column" in done.stderr.splitlines()[0]
