"""The Evidently workspace: one oversight project, weekly runs, and its dashboard.

Each monitored week adds two timestamped runs to the project:

- the *drift* run (tag ``drift``): the Evidently report of :func:`monitoring.drift.drift_report`
  (input drift share, per-column drift, prediction drift, regression quality);
- the *groups* run (tag ``groups``): one row of per-group numbers computed by
  :mod:`monitoring.disparity` (MAE, flags-per-incident disparity ratio, flagged and risk
  shares), logged
  as Evidently ``MeanValue`` metrics on columns named ``<quantity>__<group>`` so the
  dashboard can plot each group as its own line.

The dashboard is rebuilt on every run (groups can change) and shows: drift share over
time, prediction drift, MAE overall and by group, disparity ratios against the band, and
allocation exposure (share of flagged hotspots vs share of forecast risk) by group.
``state/monitoring/workspace_index.json`` remembers which runs belong to which week, so
re-monitoring a week replaces its points instead of duplicating them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crimecast.io import write_json

# Plotted per group on the dashboard. Every Evidently value metric renders a plot as it
# is computed (~0.1 s each), so the per-resident ratio and crime share stay in the CSV
# tables and the public report rather than here.
GROUP_QUANTITIES: dict[str, str] = {
    "mae": "MAE",
    "flag_rate_per_incident_ratio": "flags per incident (ratio to city)",
    "flagged_share": "share of flagged hotspots",
    "risk_share": "share of forecast risk",
    "patrol_units_share": "share of patrol units handed out",
    "outreach_units_share": "share of outreach slots handed out",
}
BAND_COLUMNS = ("band_low", "band_high")
#: Constant lines drawn on the drift panels: the alert thresholds.
THRESHOLD_COLUMNS = ("drift_alert_at", "forecast_drift_alert_at")


def group_row(table: pd.DataFrame, band: tuple[float, float],
              thresholds: tuple[float, float] = (0.5, 0.1),
              exempt: Sequence[str] = (), min_group_areas: int = 1) -> pd.DataFrame:
    """One-row frame of ``<quantity>__<group>`` columns (NaN values dropped: Evidently
    cannot serialise them), the band limits, the drift alert thresholds and
    ``groups_outside_band`` (groups of residents outside the band this week), for the
    *groups* run."""
    # Column order is series order in the Evidently UI, which colours series by position:
    # groups first (residents sorted, then exempt labels, as dashboard_model lists them),
    # reference lines last, so a group keeps its colour in every panel.
    row: dict[str, float] = {}
    outside = 0
    order = {g: i for i, g in enumerate(ordered_groups(table["group"].astype(str), exempt))}
    table = table.assign(_order=table["group"].astype(str).map(order)).sort_values("_order")
    for _, rec in table.iterrows():
        group = str(rec["group"])
        for quantity in GROUP_QUANTITIES:
            if quantity == "flag_rate_per_incident_ratio" and group in exempt:
                continue  # no residents: not a disparity
            value = rec.get(quantity)
            if value is not None and np.isfinite(value):
                row[f"{quantity}__{group}"] = float(value)
        ratio = rec.get("flag_rate_per_incident_ratio")
        if (group not in exempt and rec.get("areas", np.inf) >= min_group_areas
                and ratio is not None and np.isfinite(ratio)
                and not band[0] <= ratio <= band[1]):
            outside += 1
    row.update({"band_low": float(band[0]), "band_high": float(band[1]),
                "drift_alert_at": float(thresholds[0]),
                "forecast_drift_alert_at": float(thresholds[1]),
                "groups_outside_band": float(outside)})
    return pd.DataFrame([row])


def ordered_groups(groups: Sequence[str], exempt: Sequence[str] = ()) -> list[str]:
    """Groups in dashboard order: groups of residents sorted, then the exempt labels."""
    unique = sorted(set(groups))
    return [g for g in unique if g not in exempt] + [g for g in unique if g in exempt]


def groups_snapshot(table: pd.DataFrame, band: tuple[float, float], timestamp: datetime,
                    thresholds: tuple[float, float] = (0.5, 0.1), exempt: Sequence[str] = (),
                    min_group_areas: int = 1):
    """Evidently snapshot holding the per-group numbers of one week."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue

    row = group_row(table, band, thresholds, exempt, min_group_areas)
    dataset = Dataset.from_pandas(row, data_definition=DataDefinition(
        numerical_columns=list(row.columns)))
    report = Report([MeanValue(column=c) for c in row.columns])
    week = pd.Timestamp(timestamp).date().isoformat()
    return report.run(dataset, None, timestamp=timestamp, tags=["groups"],
                      name=f"Week of {week}: numbers by group (points of the dashboard)")


def _metric(column: str, legend: str):
    from evidently.sdk.models import PanelMetric

    return PanelMetric(legend=legend, metric="MeanValue", metric_labels={"column": column},
                       tags=["groups"])


def dashboard_model(groups: Sequence[str], input_columns: Sequence[str],
                    exempt: Sequence[str] = ()):
    """The dashboard: panels for drift, performance, disparity and exposure by group.

    Every per-group panel lists the groups in the same order (:func:`ordered_groups`), with
    reference lines after them, so each group keeps its colour from panel to panel (the
    Evidently UI colours series by position; the city-wide MAE is in the public report). Evidently's line panels cannot shade an area: the
    band is drawn as two labelled limit lines here, and shaded in the public report.
    """
    from evidently.sdk.models import DashboardModel, DashboardTabModel, PanelMetric
    from evidently.sdk.panels import counter_panel, line_plot_panel, text_panel

    groups = ordered_groups(groups, exempt)
    residents = [g for g in groups if g not in exempt]
    drift_tag = ["drift"]
    band = [_metric("band_low", "fair band: lower limit"),
            _metric("band_high", "fair band: upper limit")]
    lags = [c for c in input_columns if c in ("lag_1", "mean_4", "mean_13")]
    census = [c for c in input_columns if c not in lags]
    overview = [
        text_panel("crimecast oversight",
                   "Weekly drift, accuracy and disparity of the place-based forecasts (areas "
                   "and weeks, never persons). Each point is one week (x axis: the week's "
                   "Monday)."),
        counter_panel("Groups outside the fair band (latest week; 0 = pass)", size="half",
                      values=[_metric("groups_outside_band", "groups outside the band")]),
        counter_panel("Share of recent-crime inputs that drifted (latest week)", size="half",
                      values=[PanelMetric(legend="drift share", metric="DriftedColumnsCount",
                                          metric_labels={"value_type": "share"},
                                          tags=drift_tag)]),
        line_plot_panel("Share of recent-crime inputs that drifted, by week", size="half",
                        description="y: share of the lag inputs that drifted (0–1); the alert "
                                    "line is the threshold",
                        values=[PanelMetric(legend="share of inputs that drifted",
                                            metric="DriftedColumnsCount",
                                            metric_labels={"value_type": "share"},
                                            tags=drift_tag),
                                _metric("drift_alert_at", "alert threshold")]),
        line_plot_panel("Forecast and input drift scores, by week", size="half",
                        description="y: drift score (Wasserstein distance in standard "
                                    "deviations); above the alert line the column drifted",
                        values=[*[PanelMetric(legend=c, metric="ValueDrift",
                                              metric_labels={"column": c}, tags=drift_tag)
                                  for c in (*lags, "prediction")],
                                _metric("forecast_drift_alert_at", "alert threshold")]),
    ]
    if census:
        overview.append(line_plot_panel(
            "Census inputs (static: outside the drift share), by week", size="half",
            description="y: drift score; these change only when the area data are replaced",
            values=[PanelMetric(legend=c, metric="ValueDrift", metric_labels={"column": c},
                                tags=drift_tag) for c in census]))
    fairness = [
        line_plot_panel("Average miss (MAE) by group, by week", size="half",
                        description="y: crimes per area and week the forecast was off by",
                        values=[_metric(f"mae__{g}", g) for g in groups]),
        line_plot_panel("Disparity: hotspot flags per recorded crime vs city, by week",
                        size="half",
                        description="y: ratio (1 = fair share); outside the two limit lines = "
                                    "alert. Areas without residents are not shown.",
                        values=[*[_metric(f"flag_rate_per_incident_ratio__{g}", g)
                                  for g in residents], *band]),
        line_plot_panel("Share of flagged hotspots by group, by week", size="half",
                        description="y: share of the week's hotspot flags (0–1)",
                        values=[_metric(f"flagged_share__{g}", g) for g in groups]),
        line_plot_panel("Share of forecast risk by group, by week", size="half",
                        description="y: share of the week's forecast crimes (0–1); compare "
                                    "with the flagged share",
                        values=[_metric(f"risk_share__{g}", g) for g in groups]),
        line_plot_panel("Patrol units handed out by /allocate: share by group", size="half",
                        description="y: share of the week's patrol units (0–1); from the "
                                    "prediction log",
                        values=[_metric(f"patrol_units_share__{g}", g) for g in groups]),
        line_plot_panel("Outreach slots handed out by /allocate: share by group", size="half",
                        description="y: share of the week's outreach slots (0–1); from the "
                                    "prediction log",
                        values=[_metric(f"outreach_units_share__{g}", g) for g in groups]),
    ]
    panels = overview + fairness
    tabs = [
        DashboardTabModel(title="Drift", panels=[p.id for p in overview]),
        DashboardTabModel(title="Fairness & exposure", panels=[p.id for p in fairness]),
    ]
    return DashboardModel(tabs=tabs, panels=panels)


class OversightWorkspace:
    """The local Evidently workspace and its oversight project (created on first use)."""

    def __init__(self, directory: Path, project_name: str, index_path: Path) -> None:
        from evidently.ui.workspace import Workspace

        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.workspace = Workspace(str(directory))
        self.index_path = index_path
        found = [p for p in self.workspace.list_projects() if p.name == project_name]
        if found:
            self.project = found[0]
        else:
            self.project = self.workspace.create_project(project_name)
            self.project.description = ("Drift, accuracy and disparity of crimecast's weekly "
                                        "place-based forecasts.")
            self.project.save()
        self._index: dict[str, list[str]] = (
            json.loads(index_path.read_text()) if index_path.exists() else {})

    @property
    def project_id(self) -> str:
        return str(self.project.id)

    def replace_week(self, week: pd.Timestamp, snapshots: Sequence[Any]) -> list[str]:
        """Store the week's snapshots, deleting the runs an earlier monitoring of the same
        week stored. Returns the new snapshot ids."""
        key = f"{self.project_id}/{pd.Timestamp(week).date().isoformat()}"
        for old in self._index.get(key, []):
            try:
                self.workspace.delete_run(self.project.id, old)
            except (FileNotFoundError, OSError):
                pass  # already gone (workspace edited by hand); nothing to replace
        ids = [str(self.workspace.add_run(self.project.id, snap).id) for snap in snapshots]
        self._index[key] = ids
        return ids

    def save(self, groups: Sequence[str], input_columns: Sequence[str],
             exempt: Sequence[str] = ()) -> None:
        """Rebuild the dashboard for these groups and persist the week index."""
        self.workspace.save_dashboard(self.project.id,
                                      dashboard_model(groups, input_columns, exempt))
        write_json(self.index_path, self._index)
