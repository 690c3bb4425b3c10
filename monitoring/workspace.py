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
}
BAND_COLUMNS = ("band_low", "band_high")


def group_row(table: pd.DataFrame, band: tuple[float, float]) -> pd.DataFrame:
    """One-row frame of ``<quantity>__<group>`` columns (NaN values dropped: Evidently
    cannot serialise them) plus the band limits, for the *groups* run."""
    row: dict[str, float] = {"band_low": float(band[0]), "band_high": float(band[1])}
    for _, rec in table.iterrows():
        for quantity in GROUP_QUANTITIES:
            value = rec.get(quantity)
            if value is not None and np.isfinite(value):
                row[f"{quantity}__{rec['group']}"] = float(value)
    return pd.DataFrame([row])


def groups_snapshot(table: pd.DataFrame, band: tuple[float, float], timestamp: datetime):
    """Evidently snapshot holding the per-group numbers of one week."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue

    row = group_row(table, band)
    dataset = Dataset.from_pandas(row, data_definition=DataDefinition(
        numerical_columns=list(row.columns)))
    report = Report([MeanValue(column=c) for c in row.columns])
    return report.run(dataset, None, timestamp=timestamp, tags=["groups"])


def _metric(quantity: str, group: str, legend: str | None = None):
    from evidently.sdk.models import PanelMetric

    return PanelMetric(legend=legend or group, metric="MeanValue",
                       metric_labels={"column": f"{quantity}__{group}"}, tags=["groups"])


def dashboard_model(groups: Sequence[str], input_columns: Sequence[str]):
    """The dashboard: panels for drift, performance, disparity and exposure by group."""
    from evidently.sdk.models import DashboardModel, DashboardTabModel, PanelMetric
    from evidently.sdk.panels import counter_panel, line_plot_panel, text_panel

    drift_tag = ["drift"]
    band = [_metric("band", "", "band low"), _metric("band", "", "band high")]
    band[0].metric_labels = {"column": "band_low"}
    band[1].metric_labels = {"column": "band_high"}
    overview = [
        text_panel("crimecast oversight",
                   "Weekly drift, accuracy and disparity of the place-based forecasts "
                   "(census tracts and weeks, never persons)."),
        counter_panel("Share of drifted model inputs (latest week)", size="half", values=[
            PanelMetric(legend="drift share", metric="DriftedColumnsCount",
                        metric_labels={"value_type": "share"}, tags=drift_tag)]),
        counter_panel("Prediction drift score (latest week)", size="half", values=[
            PanelMetric(legend="prediction", metric="ValueDrift",
                        metric_labels={"column": "prediction"}, tags=drift_tag)]),
        line_plot_panel("Drift share of model inputs over time", size="half", values=[
            PanelMetric(legend="drift share", metric="DriftedColumnsCount",
                        metric_labels={"value_type": "share"}, tags=drift_tag)]),
        line_plot_panel("Input and prediction drift scores", size="half", values=[
            PanelMetric(legend=c, metric="ValueDrift", metric_labels={"column": c},
                        tags=drift_tag) for c in (*input_columns, "prediction")]),
    ]
    fairness = [
        line_plot_panel("MAE overall (Evidently) and by group", size="half", values=[
            PanelMetric(legend="overall", metric="MAE", metric_labels={"value_type": "mean"},
                        tags=drift_tag),
            *[_metric("mae", g) for g in groups]]),
        line_plot_panel("Disparity: hotspot flags per incident vs city (band shown)",
                        size="half", values=[
                            *[_metric("flag_rate_per_incident_ratio", g) for g in groups],
                            *band]),
        line_plot_panel("Allocation exposure: share of flagged hotspots by group",
                        size="half", values=[_metric("flagged_share", g) for g in groups]),
        line_plot_panel("Share of forecast risk by group (compare with flagged share)",
                        size="half", values=[_metric("risk_share", g) for g in groups]),
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

    def save(self, groups: Sequence[str], input_columns: Sequence[str]) -> None:
        """Rebuild the dashboard for these groups and persist the week index."""
        self.workspace.save_dashboard(self.project.id, dashboard_model(groups, input_columns))
        write_json(self.index_path, self._index)
