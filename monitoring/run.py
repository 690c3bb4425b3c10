"""One monitoring pass: build the monitored weeks, report on each, store everything.

:func:`monitor` is the library entry point behind ``crimecast monitor run``: it takes
the panel and graph, picks the monitored weeks and their reference window, produces one
Evidently drift/performance report and one per-group table per week, stores the runs in
the Evidently workspace, and returns the tables; :func:`write_outputs` saves them under
``state/monitoring/`` for ``monitor check`` and ``crimecast report``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crimecast.contracts import AreaGraph, Panel
from crimecast.forecast import metrics
from crimecast.io import write_csv, write_json, write_parquet
from monitoring import disparity, drift
from monitoring.frames import assemble, input_columns, read_prediction_log, replay_frames
from monitoring.settings import MonitoringSettings

SUMMARY_FILE = "summary.json"


@dataclass
class MonitoringResult:
    """Tables of one monitoring pass.

    ``weekly``: one row per monitored week (drift share, drifted columns, prediction
    drift, MAE/RMSE/coverage/PAI); ``groups``: one row per (week, group) from
    :func:`monitoring.disparity.group_table`; ``window_groups``: the same over all
    monitored weeks together (what alerts and the public report use); ``frame``: the
    monitoring frame of the monitored weeks; ``summary``: JSON-able overview.
    """

    weekly: pd.DataFrame
    groups: pd.DataFrame
    window_groups: pd.DataFrame
    frame: pd.DataFrame
    summary: dict[str, Any]
    last_snapshot: Any = field(default=None, repr=False)
    exposure: pd.DataFrame = field(default_factory=pd.DataFrame)


def monitored_weeks(panel: Panel, num_weeks: int, reference_weeks: int
                    ) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    """The last ``num_weeks`` non-outage panel weeks and the ``reference_weeks``
    non-outage weeks before them. Raises when the panel is too short to fit a model
    before the reference window as well."""
    outages = set(panel.outage_weeks())
    usable = [w for w in panel.weeks if w not in outages]
    needed = num_weeks + reference_weeks + 13
    if len(usable) < needed:
        raise ValueError(f"panel has {len(usable)} usable weeks; monitoring {num_weeks} weeks "
                         f"with a {reference_weeks}-week reference window needs at least "
                         f"{needed} (13 weeks of history to fit on)")
    return usable[-num_weeks:], usable[-(num_weeks + reference_weeks):-num_weeks]


def champion_version() -> tuple[str | None, str]:
    """The registry's ``@champion`` version (None when there is none) and why not.

    An embedded SQLite store that does not exist yet means no champion; it is not created
    just to ask (monitoring only reads the registry).
    """
    from crimecast.lifecycle.store import TrackingSettings, store_exists

    tracking = TrackingSettings.load()
    if not store_exists(tracking):
        return None, f"no tracking store at {tracking.resolved_tracking_uri()}"
    try:
        from crimecast.lifecycle import registry

        version = registry.resolve_alias("champion")
    # An unreachable tracking server must not stop monitoring.
    except Exception as exc:  # noqa: BLE001
        return None, f"registry unavailable: {exc}"
    return version, "" if version else "no @champion registered"


def forecaster_factory(name: str) -> tuple[Callable[[], Any], str]:
    """Builder of an unfitted crimecast model, and a label saying which model it is.

    ``name`` is a ``crimecast.forecast.models`` name, or ``"champion"``: the model class and
    hyperparameters of the registry's ``@champion`` version, refitted here (falls back to
    ``historical_average`` when no champion is registered yet).
    """
    from crimecast.forecast.models import get_model

    if name == "champion":
        version, reason = champion_version()
        if version is None:
            return (lambda: get_model("historical_average")), f"historical_average ({reason})"
        from crimecast.lifecycle import registry

        try:
            model_name, params = registry.model_spec(version)
        except Exception as exc:  # noqa: BLE001  (e.g. a version without model_params.json)
            return ((lambda: get_model("historical_average")),
                    f"historical_average (champion v{version} not refittable: {exc})")
        return (lambda: get_model(model_name, **params)), f"champion v{version} ({model_name})"
    get_model(name)  # fail fast on an unknown name
    return (lambda: get_model(name)), name


def build_frames(panel: Panel, graph: AreaGraph, settings: MonitoringSettings,
                 num_weeks: int, source: str, model: str,
                 progress: Callable[[int, int], None] | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    """Monitoring frames ``(current, reference, source_used, model_label)``.

    ``source``: ``"predlog"`` (served forecasts and outcomes from the prediction log),
    ``"replay"`` (last ``num_weeks`` panel weeks scored by ``model``), or ``"auto"``
    (the prediction log when it holds served forecasts, else replay). The reference
    window is always a replay by ``model`` of the weeks before the monitored ones.
    """
    factory, label = forecaster_factory(model)
    if source in ("auto", "predlog"):
        served, outcomes = read_prediction_log(settings.predlog_url)
        if not served.empty:
            return (*_predlog_frames(panel, graph, settings, served, outcomes, factory,
                                     progress), "predlog", label)
        if source == "predlog":
            raise ValueError(f"prediction log {settings.predlog_url}: no served forecasts yet; "
                             "use --source replay to monitor the panel's last weeks")
    weeks, reference = monitored_weeks(panel, num_weeks, settings.reference_weeks)
    frame = replay_frames(panel, graph, reference + weeks, factory, progress,
                          settings.history_weeks)
    current = frame[frame["week"].isin(weeks)].reset_index(drop=True)
    ref = frame[frame["week"].isin(reference)].reset_index(drop=True)
    return current, ref, "replay", label


def _predlog_frames(panel: Panel, graph: AreaGraph, settings: MonitoringSettings,
                    served: pd.DataFrame, outcomes: pd.DataFrame,
                    factory: Callable[[], Any],
                    progress: Callable[[int, int], None] | None
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    served = served.assign(week=pd.to_datetime(served["week"]),
                           area_id=served["area_id"].astype(str))
    # The newest model version's one-week-ahead forecast for each target week.
    served = (served[served["horizon"] == 1]
              .sort_values(["week", "model_version"])
              .drop_duplicates(["week", "area_id", "category"], keep="last"))
    last_input_week = panel.last_week + pd.Timedelta(weeks=1)
    served = served[served["week"] <= last_input_week]
    if served.empty:
        raise ValueError("prediction log: no horizon-1 forecasts for weeks the panel covers")
    # Outcomes posted to the API win over the panel's counts for the same week.
    panel_outcomes = panel.counts[["week", "area_id", "category", "count"]]
    combined = pd.concat([panel_outcomes, outcomes.assign(week=pd.to_datetime(outcomes["week"]))]
                         if not outcomes.empty else [panel_outcomes], ignore_index=True)
    combined = combined.drop_duplicates(["week", "area_id", "category"], keep="last")
    current = assemble(panel, graph, served, combined)
    first = current["week"].min()
    usable = [w for w in panel.weeks if w < first and w not in set(panel.outage_weeks())]
    reference = usable[-settings.reference_weeks:]
    ref = replay_frames(panel, graph, reference, factory, progress, settings.history_weeks)
    return current, ref


def monitor(panel: Panel, graph: AreaGraph, settings: MonitoringSettings, *,
            num_weeks: int | None = None, source: str = "auto", model: str | None = None,
            workspace: Any | None = None,
            progress: Callable[[str, int, int], None] | None = None) -> MonitoringResult:
    """Monitor the weeks and return the tables (see :class:`MonitoringResult`).

    ``workspace``: an :class:`monitoring.workspace.OversightWorkspace` to store the weekly
    runs in (None: compute only). ``progress(stage, done, total)`` reports progress.
    """
    model = model or settings.replay_model
    num_weeks = num_weeks or settings.replay_weeks
    forecast_progress = (lambda d, t: progress("forecasting", d, t)) if progress else None
    current, reference, source_used, model = build_frames(panel, graph, settings, num_weeks, source,
                                                   model, forecast_progress)
    reference_sample = drift.sample_reference(reference, settings.reference_max_rows,
                                              settings.seed)
    weeks = sorted(current["week"].unique())
    exposure = logged_exposure(settings, graph)
    exempt = disparity.exempt_groups()
    weekly_rows, group_rows = [], []
    for done, (week, snapshots, row, table) in enumerate(
            _report_weeks(current, reference_sample, settings, weeks, exposure, exempt),
            start=1):
        weekly_rows.append(row)
        group_rows.append(table.assign(week=week))
        if workspace is not None:
            workspace.replace_week(week, snapshots)
        if progress:
            progress("reporting", done, len(weeks))
    weekly = pd.DataFrame(weekly_rows)
    groups = pd.concat(group_rows, ignore_index=True)
    window_groups = disparity.group_table(current, settings.disparity)
    if workspace is not None:
        workspace.save(sorted(window_groups["group"].astype(str)), input_columns(current),
                       exempt)
    summary = _summary(weekly, window_groups, current, reference, settings, source_used, model)
    snapshot = None
    if settings.html_report:
        # A full (preset) Evidently report of the latest week, for humans to read as HTML.
        latest = current[current["week"] == weeks[-1]]
        snapshot, _ = drift.drift_report(latest, reference_sample, settings.drift,
                                         timestamp=pd.Timestamp(weeks[-1]).to_pydatetime(),
                                         full=True)
    return MonitoringResult(weekly, groups, window_groups, current, summary, snapshot, exposure)


def logged_exposure(settings: MonitoringSettings, graph: AreaGraph) -> pd.DataFrame:
    """Exposure of the ``/allocate`` answers in the prediction log (empty without any)."""
    from monitoring.exposure import allocation_exposure, read_allocations

    allocations = read_allocations(settings.predlog_url)
    if allocations.empty:
        return allocation_exposure(allocations, pd.DataFrame(), graph.areas)
    served, _ = read_prediction_log(settings.predlog_url)
    return allocation_exposure(allocations, served, graph.areas)


def _with_exposure(table: pd.DataFrame, exposure: pd.DataFrame, week: pd.Timestamp
                   ) -> pd.DataFrame:
    """The week's group table plus ``patrol_units_share`` / ``outreach_units_share``."""
    if exposure.empty:
        return table
    rows = exposure[pd.to_datetime(exposure["week"]) == week]
    shares = rows.pivot_table(index="group", columns="kind", values="units_share")
    shares.columns = [f"{kind}_units_share" for kind in shares.columns]
    return table.merge(shares, left_on="group", right_index=True, how="left")


# Worker-process state: the reference sample and settings, sent once per worker rather
# than with every week.
_WORKER: dict[str, Any] = {}


def _init_worker(reference: pd.DataFrame, settings: MonitoringSettings,
                 exposure: pd.DataFrame, exempt: list[str]) -> None:
    _WORKER.update(reference=reference, settings=settings, exposure=exposure, exempt=exempt)


def _report_week(week_frame: pd.DataFrame) -> tuple[pd.Timestamp, list[Any], dict[str, Any],
                                                      pd.DataFrame]:
    """One week's Evidently snapshots (drift + groups), weekly row and group table."""
    from monitoring.workspace import groups_snapshot

    reference, settings = _WORKER["reference"], _WORKER["settings"]
    week = pd.Timestamp(week_frame["week"].iloc[0])
    timestamp = week.to_pydatetime()
    snapshot, result = drift.drift_report(week_frame, reference, settings.drift,
                                          timestamp=timestamp, tags=["drift"],
                                          name=f"Week of {week.date()}: drift and accuracy")
    table = disparity.group_table(week_frame, settings.disparity)
    groups = groups_snapshot(_with_exposure(table, _WORKER["exposure"], week),
                             settings.disparity.band, timestamp,
                             (settings.drift.drift_share, settings.drift.prediction_threshold),
                             _WORKER["exempt"], settings.disparity.min_group_areas)
    row = {**result.as_row(), **_performance(week_frame, settings)}
    return week, [snapshot, groups], row, table


def _report_weeks(current: pd.DataFrame, reference: pd.DataFrame, settings: MonitoringSettings,
                  weeks: list[Any], exposure: pd.DataFrame, exempt: list[str]):
    """Yield :func:`_report_week` results in week order, over ``settings.workers``
    processes (Evidently renders every metric as it computes it, which dominates the run
    time, and weeks are independent)."""
    frames = [current[current["week"] == week] for week in weeks]
    if settings.workers <= 1 or len(frames) < 4:
        _init_worker(reference, settings, exposure, exempt)
        yield from map(_report_week, frames)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import evidently.metrics  # noqa: F401  (imported once here, inherited by the workers)

    # fork: workers inherit the already-imported Evidently instead of importing it again.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=settings.workers, mp_context=context,
                             initializer=_init_worker,
                             initargs=(reference, settings, exposure, exempt)) as pool:
        yield from pool.map(_report_week, frames)


def _performance(frame: pd.DataFrame, settings: MonitoringSettings) -> dict[str, float]:
    """Overall accuracy of one week from crimecast.forecast.metrics (NaN without outcomes)."""
    scored = disparity.scored_frame(frame)
    if scored.empty:
        return {"mae": np.nan, "poisson_deviance": np.nan, "coverage_80": np.nan,
                "pai": np.nan, "outcomes": 0}
    point = metrics.point_metrics(scored)
    land = disparity.areas_table(frame)["land_area_km2"]
    hot = metrics.hotspot_metrics(scored, land, area_shares=(settings.disparity.flag_area_share,),
                                  top_k=())
    share_label = f"{settings.disparity.flag_area_share * 100:g}%"
    return {"mae": point["mae"], "poisson_deviance": point["poisson_deviance"],
            "coverage_80": point.get("coverage_80", np.nan),
            "pai": hot.get(f"pai@{share_label}", np.nan), "outcomes": len(scored)}


def _summary(weekly: pd.DataFrame, window_groups: pd.DataFrame, current: pd.DataFrame,
             reference: pd.DataFrame, settings: MonitoringSettings, source: str,
             model: str) -> dict[str, Any]:
    last = weekly.iloc[-1]
    ref_scored = disparity.scored_frame(reference)
    reference_mae = (metrics.mae(ref_scored["actual"], ref_scored["mean"])
                     if len(ref_scored) else None)
    observed = weekly.dropna(subset=["mae"])
    exempt = disparity.exempt_groups()
    return {
        "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "source": source, "model": model,
        "weeks": [pd.Timestamp(w).date().isoformat() for w in weekly["week"]],
        "reference_weeks": sorted({pd.Timestamp(w).date().isoformat() for w in reference["week"]}),
        "areas": int(current["area_id"].nunique()),
        "latest": {
            "week": pd.Timestamp(last["week"]).date().isoformat(),
            "drift_share": float(last["drift_share"]),
            "drifted_columns": [c for c in str(last["drifted_columns"]).split(",") if c],
            "static_drifted": [c for c in str(last.get("static_drifted", "")).split(",")
                               if c and c != "nan"],
            "dataset_drift": bool(last["dataset_drift"]),
            "prediction_drifted": bool(last["prediction_drifted"]),
            "prediction_drift_score": float(last["prediction_drift_score"]),
        },
        "window": {
            "mae": float(observed["mae"].mean()) if len(observed) else None,
            "coverage_80": float(observed["coverage_80"].mean()) if len(observed) else None,
            "pai": float(observed["pai"].mean()) if len(observed) else None,
            "reference_mae": reference_mae,
            "weeks_with_dataset_drift": int(weekly["dataset_drift"].sum()),
        },
        "groups": _records(window_groups),
        "exempt_groups": exempt,
        "disparity_breaches": disparity.band_breaches(window_groups, settings.disparity,
                                                      exempt=exempt),
        "thresholds": {"drift_share": settings.drift.drift_share,
                       "prediction_threshold": settings.drift.prediction_threshold,
                       "band": list(settings.disparity.band),
                       "mae_ratio_max": settings.errors.mae_ratio_max,
                       "coverage80_min": settings.errors.coverage80_min},
    }


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in table.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                    for k, v in rec.items()})
    return out


def write_outputs(result: MonitoringResult, directory: Path) -> dict[str, Path]:
    """Save the tables (CSV), the frame (parquet), the summary (JSON) and the latest
    week's Evidently HTML report under ``directory``; returns what went where."""
    paths = {
        "weekly": write_csv(directory / "weekly.csv", result.weekly),
        "groups": write_csv(directory / "groups.csv", result.groups),
        "window_groups": write_csv(directory / "window_groups.csv", result.window_groups),
        "frame": write_parquet(directory / "frame.parquet", result.frame),
        "exposure": write_csv(directory / "exposure.csv", result.exposure),
        "summary": write_json(directory / SUMMARY_FILE, result.summary),
    }
    if result.last_snapshot is not None:
        from crimecast.io import atomic_path

        target = directory / "latest_report.html"
        with atomic_path(target) as tmp:
            result.last_snapshot.save_html(str(tmp))
        paths["html"] = target
    return paths
