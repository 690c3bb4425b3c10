"""Exposure: where the patrol units and outreach slots that ``/allocate`` actually
returned went, by group and week, against each group's share of risk and of residents.

Read from the prediction log with plain SQL (monitoring never imports serving): every
answered ``/allocate`` request (``predictions`` rows with ``endpoint = 'allocate'`` and
status 200) holds its request (``request_json``: ``kind``, ``horizon``, ``category``) and
the units it handed out per area (``response_summary``: ``{"kind", "units": {area_id:
units}}``). The target week of a request is its model version's last observed week
(``served_forecasts.data_week``) plus the horizon; the group's *risk share* is its share
of the forecast the request was answered from (that version, week and category, or
every category when none was asked), summed over the week's requests; the *resident
share* is its share of the areas' population.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

EXPOSURE_COLUMNS: tuple[str, ...] = ("week", "kind", "group", "requests", "units",
                                     "units_share", "risk_share", "resident_share",
                                     "units_vs_risk")


def read_allocations(url: str) -> pd.DataFrame:
    """One row per (answered ``/allocate`` request, area that received units): ``request_id``,
    ``ts``, ``model_version``, ``kind``, ``horizon``, ``category`` (None = all),
    ``area_id``, ``units``. Empty when the log or its table does not exist yet."""
    import sqlalchemy as sa

    from crimecast.paths import resolve

    columns = ["request_id", "ts", "model_version", "kind", "horizon", "category", "area_id",
               "units"]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        db = resolve(url[len("sqlite:///"):])
        if not db.exists():
            return pd.DataFrame(columns=columns)
        url = f"sqlite:///{db}"
    engine = sa.create_engine(url)
    try:
        if "predictions" not in set(sa.inspect(engine).get_table_names()):
            return pd.DataFrame(columns=columns)
        with engine.connect() as conn:
            logged = pd.read_sql(sa.text(
                "SELECT request_id, ts, model_version, request_json, response_summary "
                "FROM predictions WHERE endpoint = 'allocate' AND status = 200"), conn)
    finally:
        engine.dispose()
    rows = []
    for rec in logged.itertuples():
        request = json.loads(rec.request_json or "{}")
        summary = json.loads(rec.response_summary or "{}")
        for area_id, units in (summary.get("units") or {}).items():
            rows.append({"request_id": rec.request_id, "ts": rec.ts,
                         "model_version": str(rec.model_version),
                         "kind": summary.get("kind") or request.get("kind", "patrol"),
                         "horizon": int(request.get("horizon", 1)),
                         "category": request.get("category"), "area_id": str(area_id),
                         "units": float(units)})
    return pd.DataFrame(rows, columns=columns)


def allocation_exposure(allocations: pd.DataFrame, served: pd.DataFrame,
                        areas: pd.DataFrame) -> pd.DataFrame:
    """Per (week, kind, group): ``requests``, ``units`` handed out, ``units_share`` (of the
    week's units of that kind), ``risk_share`` and ``resident_share`` (see the module
    docstring) and ``units_vs_risk`` (units share / risk share; 1 = in proportion).

    ``allocations``: :func:`read_allocations`; ``served``: the ``served_forecasts`` table
    (``model_version, data_week, area_id, week, category, horizon, mean``); ``areas``:
    per-area ``group`` and ``population`` indexed by ``area_id``.
    """
    if allocations.empty:
        return pd.DataFrame(columns=EXPOSURE_COLUMNS)
    group_of = areas["group"].astype(str)
    group_of.index = group_of.index.astype(str)
    population = areas["population"].fillna(0).astype(float).groupby(group_of).sum()
    resident_share = population / population.sum() if population.sum() > 0 else population * np.nan
    served = served.assign(model_version=served["model_version"].astype(str),
                           area_id=served["area_id"].astype(str),
                           week=pd.to_datetime(served["week"]),
                           data_week=pd.to_datetime(served["data_week"]))
    data_weeks = served.groupby("model_version")["data_week"].max()
    requests = allocations.drop_duplicates("request_id").set_index("request_id")
    weeks = {}
    risk_rows = []
    for request_id, req in requests.iterrows():
        if req["model_version"] in data_weeks.index:
            week = data_weeks[req["model_version"]] + pd.Timedelta(weeks=int(req["horizon"]))
        else:  # a version whose forecast table is missing: the Monday of the request
            ts = pd.Timestamp(req["ts"]).tz_localize(None) if pd.Timestamp(req["ts"]).tzinfo \
                else pd.Timestamp(req["ts"])
            week = (ts - pd.Timedelta(days=ts.weekday())).normalize()
        weeks[request_id] = week
        forecast = served[(served["model_version"] == req["model_version"])
                          & (served["horizon"] == req["horizon"]) & (served["week"] == week)]
        if req["category"] is not None and not pd.isna(req["category"]):
            forecast = forecast[forecast["category"] == req["category"]]
        risk = forecast.groupby(forecast["area_id"].map(group_of))["mean"].sum()
        risk_rows.append(pd.DataFrame({"week": week, "kind": req["kind"], "group": risk.index,
                                       "risk": risk.to_numpy()}))
    given = allocations.assign(week=allocations["request_id"].map(weeks),
                               group=allocations["area_id"].map(group_of).fillna("unknown"))
    groups = sorted(set(group_of.unique()) | set(given["group"]))
    keys = ["week", "kind"]
    units = (given.groupby([*keys, "group"])["units"].sum().unstack("group", fill_value=0.0)
             .reindex(columns=groups, fill_value=0.0))
    risk = (pd.concat(risk_rows).groupby([*keys, "group"])["risk"].sum()
            .unstack("group", fill_value=0.0).reindex(index=units.index, columns=groups,
                                                      fill_value=0.0))
    units_share = units.div(units.sum(axis=1).replace(0, np.nan), axis=0)
    risk_share = risk.div(risk.sum(axis=1).replace(0, np.nan), axis=0)
    requests_per_week = given.groupby(keys)["request_id"].nunique()
    out = []
    for key in units.index:
        for group in groups:
            u_share, r_share = units_share.at[key, group], risk_share.at[key, group]
            out.append({"week": key[0], "kind": key[1], "group": group,
                        "requests": int(requests_per_week[key]), "units": units.at[key, group],
                        "units_share": u_share, "risk_share": r_share,
                        "resident_share": float(resident_share.get(group, 0.0)),
                        "units_vs_risk": u_share / r_share if r_share > 0 else np.nan})
    return pd.DataFrame(out, columns=EXPOSURE_COLUMNS).sort_values(
        ["week", "kind", "group"]).reset_index(drop=True)
