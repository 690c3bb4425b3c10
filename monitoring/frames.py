"""The monitored data, as one tidy frame per week: model inputs, forecast and outcome.

Every monitoring step (drift, performance, disparity, exposure) reads a *monitoring
frame*: one row per (week, area_id, category) with

- ``week`` (target week, Monday), ``area_id``, ``category``, ``group`` (demographic
  group of the area), ``land_area_km2``, ``population``;
- model inputs: ``lag_1`` (count the week before), ``mean_4`` / ``mean_13`` (mean of
  the last 4 / 13 weeks before the target week) and the area covariates of
  :data:`COVARIATES` present in ``areas.parquet``;
- the forecast: ``prediction`` (expected count), ``lower_80``, ``upper_80``,
  ``lower_95``, ``upper_95``;
- ``target``: the observed count (NaN while no outcome has arrived).

Two sources fill it: the serving API's prediction log (``served_forecasts`` joined with
``outcomes``, read with plain SQL so monitoring never imports serving), or, right after a
pipeline run with no traffic yet, a *replay* of the last weeks of the panel scored by a
forecaster fitted on the weeks before them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from crimecast.contracts import AreaGraph, Panel
from crimecast.data.panel import panel_arrays
from crimecast.forecast.models.base import recent_mean

COVARIATES: tuple[str, ...] = ("population", "median_income", "pct_poverty")
LAG_INPUTS: tuple[str, ...] = ("lag_1", "mean_4", "mean_13")
FRAME_KEYS: tuple[str, ...] = ("week", "area_id", "category")
INTERVALS: tuple[str, ...] = ("mean", "lower_80", "upper_80", "lower_95", "upper_95")


def input_columns(frame: pd.DataFrame) -> list[str]:
    """Model-input columns present in a monitoring frame (lags first, then covariates)."""
    return [c for c in (*LAG_INPUTS, *COVARIATES) if c in frame.columns]


def changing_inputs(frame: pd.DataFrame) -> list[str]:
    """The inputs that change week to week (the lags): the drift share counts only these.
    The census covariates are the same every week for the same areas, so they drift
    only when the area data are replaced; they are tested and reported separately."""
    return [c for c in LAG_INPUTS if c in frame.columns]


def model_inputs(panel: Panel, graph: AreaGraph, weeks: Sequence[pd.Timestamp]) -> pd.DataFrame:
    """Inputs a forecaster sees when it forecasts each of ``weeks`` one week ahead.

    ``panel`` must hold at least the weeks before ``weeks``; lags only look backwards, so
    the target week's own count never leaks into its inputs. Returns one row per
    (week, area_id, category) with :data:`LAG_INPUTS`, the area covariates, ``group``,
    ``land_area_km2`` and ``population``.
    """
    data = panel_arrays(panel, graph)  # the models' view: a weekly grid, gaps as outages
    panel_weeks, categories = data.weeks, data.categories
    position = {pd.Timestamp(w): i for i, w in enumerate(panel_weeks)}
    blocks = []
    for week in weeks:
        week = pd.Timestamp(week)
        # Index of the target week in the panel, or one past the end when it is the
        # week right after the last observed one (a true forecast).
        end = position.get(week)
        if end is None:
            if week != panel_weeks[-1] + pd.Timedelta(weeks=1):
                raise ValueError(f"week {week.date()} is not in the panel nor the week after "
                                 f"its last week {panel_weeks[-1].date()}")
            end = len(panel_weeks)
        if end < 1:
            raise ValueError(f"week {week.date()} has no earlier panel week to build inputs from")
        # Outage weeks are skipped, as the models skip them: a feed gap is not a crime drop.
        past, outage = data.counts[:, :end, :], data.outage[:end]
        block = {
            "lag_1": recent_mean(past, outage, 1),
            "mean_4": recent_mean(past, outage, 4),
            "mean_13": recent_mean(past, outage, 13),
        }
        num_areas, num_cats = block["lag_1"].shape
        blocks.append(pd.DataFrame({
            "week": np.repeat(week, num_areas * num_cats),
            "area_id": np.repeat(np.asarray(graph.area_ids, dtype=str), num_cats),
            "category": np.tile(np.asarray(categories, dtype=object), num_areas),
            **{name: values.ravel().astype(np.float64) for name, values in block.items()},
        }))
    frame = pd.concat(blocks, ignore_index=True)
    return frame.merge(area_attributes(graph), on="area_id", how="left", validate="many_to_one")


def area_attributes(graph: AreaGraph) -> pd.DataFrame:
    """Per-area ``group``, ``land_area_km2`` and the covariates present, keyed by area_id."""
    areas = graph.areas
    if "group" not in areas.columns:
        raise ValueError("areas.parquet: column 'group' (demographic group for fairness "
                         "checks) is missing")
    keep = ["group"] + [c for c in ("land_area_km2", *COVARIATES) if c in areas.columns]
    out = areas[keep].copy()
    out["group"] = out["group"].astype(str)
    if "land_area_km2" not in out.columns:
        # Without land areas every area counts equally when flagging by area share.
        out["land_area_km2"] = 1.0
    out.index = out.index.astype(str)
    return out.rename_axis("area_id").reset_index()


def attach_outcomes(frame: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """Add ``target`` (observed count) from an (week, area_id, category, count) table;
    rows without an outcome get NaN."""
    observed = outcomes[list(FRAME_KEYS) + ["count"]].rename(columns={"count": "target"})
    observed = observed.assign(week=pd.to_datetime(observed["week"]),
                               area_id=observed["area_id"].astype(str))
    observed = observed.groupby(list(FRAME_KEYS), as_index=False, observed=True)["target"].sum()
    merged = frame.drop(columns=["target"], errors="ignore").merge(
        observed, on=list(FRAME_KEYS), how="left")
    merged["target"] = merged["target"].astype(np.float64)
    return merged


def replay_frames(panel: Panel, graph: AreaGraph, weeks: Sequence[pd.Timestamp],
                  forecaster_factory: Callable[[], object],
                  progress: Callable[[int, int], None] | None = None,
                  history_weeks: int | None = 104) -> pd.DataFrame:
    """Replay ``weeks`` as if each were served one week ahead, then observed.

    The forecaster (``forecaster_factory()`` builds an unfitted crimecast model) is fitted
    once on every panel week before ``weeks[0]`` — a champion is trained once and then
    fed fresh history — and asked each week for the horizon-1 forecast from the panel
    truncated to the week before. Returns the monitoring frame for all ``weeks`` with
    ``target`` = the panel's count. ``progress(done, total)`` is called per week.

    Each weekly forecast sees only the last ``history_weeks`` weeks (None: all): every
    crimecast model conditions on at most a year of lags, and re-pivoting ten years of
    panel for each of 52 weeks would dominate the run time.
    """
    weeks = [pd.Timestamp(w) for w in weeks]
    if not weeks:
        raise ValueError("no weeks to replay")
    first = min(weeks)
    history = panel.until(first - pd.Timedelta(days=1))
    if history.counts.empty:
        raise ValueError(f"no panel weeks before {first.date()} to fit the replay model on")
    model = forecaster_factory()
    model.fit(history, graph)  # type: ignore[attr-defined]
    recent = panel
    if history_weeks is not None:
        start = first - pd.Timedelta(weeks=history_weeks)
        recent = Panel(panel.counts[panel.counts["week"] >= start].reset_index(drop=True))
    forecasts = []
    for done, week in enumerate(sorted(weeks), start=1):
        past = recent.until(week - pd.Timedelta(days=1))
        forecast = model.predict(past, graph, (1,))  # type: ignore[attr-defined]
        forecasts.append(forecast.assign(week=week))
        if progress:
            progress(done, len(weeks))
    predicted = pd.concat(forecasts, ignore_index=True)
    return assemble(recent, graph, predicted, recent.counts)


def assemble(panel: Panel, graph: AreaGraph, forecasts: pd.DataFrame,
             outcomes: pd.DataFrame | None) -> pd.DataFrame:
    """Join horizon-1 forecasts (FORECAST_COLUMNS) with their inputs and outcomes into
    the monitoring frame, sorted by week, area and category."""
    one_step = forecasts[forecasts["horizon"] == 1] if "horizon" in forecasts else forecasts
    one_step = one_step.assign(week=pd.to_datetime(one_step["week"]),
                               area_id=one_step["area_id"].astype(str))
    weeks = sorted(one_step["week"].unique())
    inputs = model_inputs(panel, graph, weeks)
    frame = inputs.merge(
        one_step[list(FRAME_KEYS) + list(INTERVALS)]
        .rename(columns={"mean": "prediction"}),
        on=list(FRAME_KEYS), how="inner", validate="one_to_one")
    if outcomes is not None:
        frame = attach_outcomes(frame, outcomes)
    else:
        frame["target"] = np.nan
    return frame.sort_values(list(FRAME_KEYS)).reset_index(drop=True)


def read_prediction_log(url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read ``served_forecasts`` and ``outcomes`` from the serving prediction log.

    ``url`` is an SQLAlchemy URL (``sqlite:///state/predlog.db`` relative to the project
    home, or PostgreSQL). Returns two (possibly empty) frames; a missing database or
    missing tables read as empty, since monitoring must work before any traffic.
    """
    import sqlalchemy as sa

    from crimecast.paths import resolve

    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        db = resolve(url[len("sqlite:///"):])
        if not db.exists():
            return pd.DataFrame(), pd.DataFrame()
        url = f"sqlite:///{db}"
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        # outcomes is a view (latest value per key) over outcomes_history
        tables = set(inspector.get_table_names()) | set(inspector.get_view_names())
        served = outcomes = pd.DataFrame()
        with engine.connect() as conn:
            if "served_forecasts" in tables:
                served = pd.read_sql(sa.text(
                    "SELECT model_version, data_week, area_id, week, category, horizon, mean, "
                    "lower_80, upper_80, lower_95, upper_95 FROM served_forecasts"), conn)
            if "outcomes" in tables:
                outcomes = pd.read_sql(sa.text(
                    "SELECT week, area_id, category, count FROM outcomes"), conn)
    finally:
        engine.dispose()
    return served, outcomes
