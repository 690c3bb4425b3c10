"""Planned against delivered dosage, by area group and week.

*Planned*: the allocations the service answered (``/allocate`` responses in the
prediction log's ``predictions`` table: units per area, ``kind`` patrol or outreach, the
target week). *Delivered*: the current dosage values (the ``dosage`` view of the
append-only ledger: the latest value per week, area, kind and source, summed over
sources). Both are
read with plain SQL; the tables' writers are in ``serving/``.

Patrol plans compare with ``patrol_minutes``, outreach plans with ``outreach_contacts``;
units and minutes differ in scale, so the comparison is by share: each group's share of
the planned units against its share of the delivered amount, per week.
"""

from __future__ import annotations

import json

import pandas as pd
import sqlalchemy as sa

PLAN_KIND: dict[str, str] = {"patrol": "patrol_minutes", "outreach": "outreach_contacts"}


def _engine(url: str) -> sa.engine.Engine | None:
    """An engine on the prediction-log database (a relative SQLite path is relative to the
    project home, as in :func:`monitoring.frames.read_prediction_log`); None when the
    SQLite file does not exist yet."""
    from crimecast.paths import resolve

    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        db = resolve(url[len("sqlite:///"):])
        if not db.exists():
            return None
        url = f"sqlite:///{db}"
    return sa.create_engine(url)


def current_dosage(url: str) -> pd.DataFrame:
    """``week, area_id, kind, amount``: the latest value per (week, area, kind, source),
    summed over sources; empty when nothing was recorded."""
    engine = _engine(url)
    if engine is None:
        return pd.DataFrame(columns=["week", "area_id", "kind", "amount"])
    try:
        inspector = sa.inspect(engine)
        if "dosage" not in inspector.get_view_names() + inspector.get_table_names():
            return pd.DataFrame(columns=["week", "area_id", "kind", "amount"])
        # The view holds the current value per (week, area_id, kind, source).
        with engine.connect() as conn:
            rows = pd.read_sql(sa.text("SELECT week, area_id, kind, amount FROM dosage"), conn)
    finally:
        engine.dispose()
    rows["week"] = pd.to_datetime(rows["week"])
    return rows.groupby(["week", "area_id", "kind"], as_index=False)["amount"].sum()


def planned_allocations(url: str) -> pd.DataFrame:
    """``week, area_id, kind, units`` from the logged ``/allocate`` answers (status 200);
    the latest plan per (target week, kind) counts."""
    engine = _engine(url)
    if engine is None:
        return pd.DataFrame(columns=["week", "area_id", "kind", "units"])
    try:
        if not sa.inspect(engine).has_table("predictions"):
            return pd.DataFrame(columns=["week", "area_id", "kind", "units"])
        query = sa.text("SELECT ts, response_summary FROM predictions "
                        "WHERE endpoint = 'allocate' AND status = 200 ORDER BY ts")
        with engine.connect() as conn:
            logged = conn.execute(query).all()
    finally:
        engine.dispose()
    plans: dict[tuple[pd.Timestamp, str], dict[str, int]] = {}
    for ts, summary_text in logged:
        summary = json.loads(summary_text or "{}")
        week = summary.get("target_week")
        if week is None:  # logged before the target week was recorded: the next Monday
            day = pd.Timestamp(ts).tz_localize(None).normalize() if pd.Timestamp(ts).tzinfo \
                else pd.Timestamp(ts).normalize()
            week = day + pd.Timedelta(days=7 - day.dayofweek)
        kind = PLAN_KIND.get(summary.get("kind", "patrol"), "patrol_minutes")
        plans[(pd.Timestamp(week), kind)] = summary.get("units", {})
    rows = [{"week": week, "area_id": area, "kind": kind, "units": int(units)}
            for (week, kind), per_area in plans.items() for area, units in per_area.items()]
    return pd.DataFrame(rows, columns=["week", "area_id", "kind", "units"])


def planned_vs_delivered(planned: pd.DataFrame, delivered: pd.DataFrame,
                         groups: pd.Series) -> pd.DataFrame:
    """One row per (week, kind, group): ``planned_units``, ``planned_share``,
    ``delivered_amount``, ``delivered_share`` and ``delivered_vs_planned``
    (delivered share / planned share; NaN when nothing was planned for the group).
    ``groups``: the group label of each area (indexed by ``area_id``)."""
    labels = groups.astype(str)
    plan = planned.assign(group=planned["area_id"].map(labels)).groupby(
        ["week", "kind", "group"])["units"].sum().rename("planned_units")
    done = delivered.assign(group=delivered["area_id"].map(labels)).groupby(
        ["week", "kind", "group"])["amount"].sum().rename("delivered_amount")
    table = pd.concat([plan, done], axis=1).fillna(0.0).reset_index()
    if table.empty:
        return pd.DataFrame(columns=["week", "kind", "group", "planned_units", "planned_share",
                                     "delivered_amount", "delivered_share",
                                     "delivered_vs_planned"])
    totals = table.groupby(["week", "kind"])
    table["planned_share"] = table["planned_units"] / totals["planned_units"].transform("sum")
    table["delivered_share"] = (table["delivered_amount"]
                                / totals["delivered_amount"].transform("sum"))
    table["delivered_vs_planned"] = table["delivered_share"] / table["planned_share"].where(
        table["planned_share"] > 0)
    return table.sort_values(["week", "kind", "group"]).reset_index(drop=True)
