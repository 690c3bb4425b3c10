"""The public transparency report: ``reports/index.html`` and its glossary, offline.

What it shows (all place-based: the city's areas and weeks, never persons; the city,
its data source, licence and contact, and what one area is called come from
configs/data.yaml ``city``):

- the forecast's target week, and a banner when the data are older than
  ``stale_after_days`` (the "next week" forecast of old data is not about next week);
- an interactive map (:mod:`monitoring.areamap`): forecast risk class or recorded crime,
  by category, hover text per area with small counts suppressed;
- accuracy and drift from the latest monitoring run, each number with a sentence that
  says what it means;
- by group: hotspot-flag disparity against the fair band (a chart with the band shaded
  and breaches marked), with areas without residents shown as not applicable, and where
  patrol units and outreach slots handed out by ``/allocate`` went (exposure);
- the alerts with their status, who and when, and what happens next;
- the promotion history with the gate's policy and every check (numbers, 95 %
  intervals) in plain words; public exceptions and changes made outside the gate;
- the feedback-loop simulation when ``reports/simulation/`` exists (else not linked);
- "Did it work?": the impact estimates of ``crimecast impact`` (``impact.json``) in plain
  words with their intervals, or "no interventions recorded yet";
- a model card. Every table can be downloaded as CSV (``tables/*.csv``); every term links
  to ``glossary.html``. The layout reflows to a phone's width.

Privacy rules: no exact count below ``suppress_below`` (5) appears anywhere — the map's
hover text and the GeoJSON export use ``<5`` and classes, per-group tables show shares
and ratios, not counts; forecasts are published as classes; no configuration value is
printed except thresholds (a webhook URL may hold a token).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crimecast.contracts import ARTIFACTS, AreaGraph, Panel
from crimecast.data.settings import DataSettings
from crimecast.paths import resolve
from monitoring.areamap import count_class_index, count_labels, map_figure, risk_classes, suppress
from monitoring.glossary import GLOSSARY_FILE, glossary_page, group_words, term
from monitoring.impact import did_it_work_html, read_impact
from monitoring.settings import MonitoringSettings

__all__ = ["build_report", "count_class", "map_layers", "risk_classes", "suppress"]

RISK_CLASSES: tuple[str, ...] = ("1 lowest", "2", "3", "4", "5 highest")
#: Fixed colours per group, the same in every chart of the report (sorted group order
#: picks from this palette; "unknown" is always grey).
PALETTE: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                            "#17becf", "#bcbd22")


def count_class(count: float, floor: int = 5) -> str:
    """The class of a count on the public map: ``<5``, ``5–9``, ``10–19``, ``20–49``, ``50+``."""
    return count_labels(floor)[count_class_index(count, floor)]


def group_colours(groups: list[str]) -> dict[str, str]:
    ordered = sorted(g for g in groups if g != "unknown")
    colours = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(ordered)}
    colours["unknown"] = "#999999"
    return colours


def next_week_forecast(panel: Panel, graph: AreaGraph) -> tuple[str, pd.DataFrame]:
    """Next week's forecast (horizon 1, all areas × categories) and which model made it.

    The registry's ``@champion`` (its MLflow pyfunc, as served) when one exists, else a
    historical average fitted on the panel, labelled as such.
    """
    from monitoring.run import champion_version

    version, _ = champion_version()
    if version is not None:
        try:
            import mlflow.pyfunc

            from crimecast.lifecycle.store import TrackingSettings, mlflow_client

            tracking = TrackingSettings.load()
            mlflow_client(tracking)
            name = tracking.registered_model
            model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
            frame = model.predict(pd.DataFrame({"horizon": [1]}))
            return f"the model in service (version {version})", frame
        except Exception as exc:  # noqa: BLE001  (any load failure: publish the baseline)
            why = f"the model in service, version {version}, could not be loaded: {type(exc).__name__}"
    else:
        why = "no model has been put in service yet"
    from crimecast.forecast.models import get_model

    model = get_model("historical_average").fit(panel, graph)
    return (f"a simple average of past weeks ({why})",
            model.predict(panel, graph, (1,)))


def map_layers(areas: Any, panel: Panel, forecast: pd.DataFrame, floor: int) -> Any:
    """GeoDataFrame of the public map layers, one row per area: ``area_id``, ``group``,
    ``recent_count_class`` (last 4 weeks, all categories), ``risk_class`` and geometry."""
    last = panel.weeks[-4:]
    recent = (panel.counts[panel.counts["week"].isin(last)]
              .groupby("area_id", observed=True)["count"].sum())
    risk = forecast[forecast["horizon"] == 1].groupby("area_id", observed=True)["mean"].sum()
    layers = areas[["area_id", "group", "land_area_km2", "geometry"]].copy()
    layers["area_id"] = layers["area_id"].astype(str)
    recent.index = recent.index.astype(str)
    risk.index = risk.index.astype(str)
    counts = recent.reindex(layers["area_id"]).fillna(0).to_numpy(float)
    density = risk.reindex(layers["area_id"]).fillna(0).to_numpy(float) / np.maximum(
        layers["land_area_km2"].to_numpy(float), 1e-6)
    layers["recent_count_class"] = [count_class(c, floor) for c in counts]
    layers["risk_class"] = [RISK_CLASSES[i] for i in risk_classes(density)]
    layers["geometry"] = layers.geometry.simplify(0.0002, preserve_topology=True)
    return layers.drop(columns="land_area_km2")


# --------------------------------------------------------------------------- page parts
CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0;color:#222;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:0 1em 3em}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
nav{display:flex;flex-wrap:wrap;gap:.3em .9em}nav a{white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
img,.chart{max-width:100%}.chart{overflow:hidden}
.ok{color:#1a7f37;font-weight:bold}.alert{color:#c62828;font-weight:bold}
.note{background:#f7f7f2;border-left:4px solid #bbb;padding:.5em 1em}
.stale{background:#fff3cd;border:2px solid #c98a00;padding:.7em 1em;font-weight:bold}
.reading{color:#333;font-style:italic}
a.term{color:inherit;text-decoration:underline dotted}
.csv{font-size:.85em}
dl.glossary dt{font-weight:bold;margin-top:.8em}
@media (max-width:600px){body{font-size:15px}table{font-size:.8em}h1{font-size:1.25em}}
"""


#: Plotly's geo charts fetch a world outline (topojson) from its CDN before drawing, even
#: with the base map hidden; an empty outline, given up front, keeps the map offline.
OFFLINE_GEO = ("window.PlotlyGeoAssets={topojson:{world_110m:{type:'Topology',arcs:[],"
               "objects:{" + ",".join(f"{layer}:{{type:'GeometryCollection',geometries:[]}}"
                                      for layer in ("coastlines", "land", "ocean", "lakes",
                                                    "rivers", "countries", "subunits"))
               + "}}}};")


class Page:
    """The report being written: HTML parts and the tables to publish as CSV."""

    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context
        self.parts: list[str] = []
        self.csv: dict[str, pd.DataFrame] = {}

    def add(self, *parts: str) -> None:
        self.parts.extend(parts)

    def term(self, slug: str, text: str | None = None) -> str:
        return term(slug, text, self.context)

    def table(self, name: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]],
              caption: str = "", folded: str = "") -> None:
        """An HTML table (header titles may hold glossary links) and its CSV download;
        ``folded``: show it collapsed under this summary line (long tables)."""
        head = "".join(f"<th>{title}</th>" for _, title in columns)
        body = []
        for row in rows:
            cells = "".join(f"<td>{_cell(row.get(key))}</td>" for key, _ in columns)
            body.append(f"<tr>{cells}</tr>")
        self.csv[name] = pd.DataFrame([{_plain(title): _plain(v) if isinstance(v := row.get(key),
                                                                               _Html) else v
                                        for key, title in columns}
                                       for row in rows], columns=[_plain(t) for _, t in columns])
        table = (f"<div class='scroll'><table>{caption}<thead><tr>{head}</tr></thead>"
                 f"<tbody>{''.join(body)}</tbody></table></div>")
        if folded:
            table = f"<details><summary>{folded}</summary>{table}</details>"
        self.add(table,
                 f"<p class='csv'><a href='tables/{name}.csv' download>Download this table "
                 f"(CSV)</a></p>")

    def reading(self, sentence: str) -> None:
        self.add(f"<p class='reading'>{sentence}</p>")


def _plain(title: str) -> str:
    """A header without its HTML (for CSV column names)."""
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", title))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if not np.isfinite(value) else f"{value:.3g}"
    if isinstance(value, _Html):
        return str(value)
    return "" if value is None else html.escape(str(value))


class _Html(str):
    """A table cell that is already HTML."""


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.0%}"


def _actor(actor: Any) -> str:
    text = str(actor or "unknown")
    if text == "root":
        return "an operator (the machine's administrator account, root)"
    return text


def _week(value: Any) -> str:
    return pd.Timestamp(value).date().isoformat()


# --------------------------------------------------------------------------- sections
def _header(page: Page) -> None:
    c = page.context
    page.add(
        f"<h1>Crime forecasts for places in {html.escape(c['city'])}: public oversight report</h1>",
        (f"<p>Forecast for the {page.term('target-week', 'week of ' + c['target_week'])} "
         f"(Monday {c['target_week']} to Sunday {c['target_end']}), made from recorded "
         f"crime up to the week of {c['last_week']}. Report built {html.escape(c['generated'])}.</p>"),
    )
    if c["stale_days"] is not None:
        page.add(f"<p class='stale' id='stale-banner'>Out of date: the newest recorded crimes in "
                 f"these data are from the week of {c['last_week']}, {c['stale_days']} days "
                 f"before this report was built (the limit is {c['stale_limit']} days). The "
                 f"forecast below is for the week of {c['target_week']}, which has already "
                 "passed: do not read it as a forecast of the coming week.</p>")
    contact = (html.escape(c["contact"]) if c["contact"]
               else "not configured (set <code>city.contact</code> in configs/data.yaml)")
    page.add(
        "<div class='scroll'><table>"
        f"<tr><th>City</th><td>{html.escape(c['city'])}</td></tr>"
        f"<tr><th>Data source</th><td>{html.escape(c['source'])}</td></tr>"
        f"<tr><th>Licence</th><td>{html.escape(c['licence'])}</td></tr>"
        f"<tr><th>Contact</th><td>{contact}</td></tr>"
        f"<tr><th>Places</th><td>{c['areas']} {page.term('unit', c['units'])}</td></tr>"
        "</table></div>",
        (f"<p class='note'>crimecast forecasts weekly crime counts for <b>places</b> "
         f"({html.escape(c['units'])}) and <b>weeks</b>. It never scores, lists or "
         "predicts individual people. Counts below "
         f"{c['floor']} are never shown exactly (they read "
         f"{page.term('suppression', '“<' + str(c['floor']) + '”')}). Underlined words are "
         f"explained in the <a href='{GLOSSARY_FILE}'>glossary</a>.</p>"),
    )
    links = [("map", "Map"), ("accuracy", "Accuracy and drift"), ("groups", "Fairness by group"),
             ("alerts", "Alerts"), ("history", "Promotion history")]
    if c.get("simulation"):
        links.append(("simulation", "Simulation"))
    links += [("impact", "Did it work?"), ("card", "Model card")]
    page.add("<nav>" + "".join(f"<a href='#{a}'>{t}</a>" for a, t in links)
             + f"<a href='{GLOSSARY_FILE}'>Glossary</a></nav>")


def _map(page: Page) -> None:
    c = page.context
    page.add("<h2 id='map'>Map</h2>",
             (f"<p>Each shape is one {page.term('unit', c['unit'])}. Use the menu to switch "
              f"between {page.term('risk-class', 'forecast risk class')} for the week of "
              f"{c['target_week']} and recorded crime over the last four weeks, for all "
              "categories or one. Hover over a place for its numbers. The two measures "
              "differ: risk is a ranking of expected crimes per km² (five equal classes), "
              "recorded crime is what was reported.</p>"),
             f"<div class='chart' id='area-map'>{c['map_html']}</div>",
             (f"<p>Forecast by {html.escape(c['forecast_model'])}. Map layers as GeoJSON: "
              "<a href='map_layers.geojson'>map_layers.geojson</a> (classes only).</p>"))
    rows = [{**row, "group": group_words(str(row["group"]), c["group_rule"])}
            for row in c["layer_rows"]]
    page.table("map_layers", rows, [
        ("area_id", c["unit"]), ("group", "group"), ("risk_class", "forecast risk class"),
        ("recent_count_class", "recorded crimes, last 4 weeks")],
        folded=f"The map as a table: every {html.escape(c['unit'])} (click to open)")


def _accuracy(page: Page) -> None:
    c, summary = page.context, page.context["summary"]
    page.add("<h2 id='accuracy'>Accuracy and drift</h2>")
    if summary is None:
        page.add("<p>No monitoring run yet: run <code>crimecast monitor run</code>.</p>")
        return
    window, latest, thresholds = summary["window"], summary["latest"], summary["thresholds"]
    source = (page.term("replay", "replayed past weeks") if summary["source"] == "replay"
              else "forecasts the service actually answered with")
    page.add(f"<p>Monitored weeks {summary['weeks'][0]} to {summary['weeks'][-1]} "
             f"({len(summary['weeks'])} weeks, {source}), compared with the "
             f"{page.term('reference')} before them.</p>")
    mae, ref = window.get("mae"), window.get("reference_mae")
    pai, coverage = window.get("pai"), window.get("coverage_80")
    unit = c["unit"]
    rows = [
        {"measure": _Html(page.term("mae")), "value": mae,
         "reading": (f"On average the forecast was off by {mae:.2f} crimes per {unit} and week"
                     + (f", against {ref:.2f} in the reference weeks" if ref else "") + "."
                     if mae is not None else "No recorded outcomes yet.")},
        {"measure": _Html(page.term("pai")), "value": pai,
         "reading": (f"The flagged hotspots held {pai:.1f} times the crime their share of the "
                     "city's land would suggest (1 would be no better than chance)."
                     if pai is not None else "No recorded outcomes yet.")},
        {"measure": _Html(page.term("coverage")), "value": coverage,
         "reading": (f"{_pct(coverage)} of recorded counts fell inside the forecast's 80 % "
                     f"range (about 80 % is right; an alert is raised below "
                     f"{_pct(thresholds['coverage80_min'])})."
                     if coverage is not None else "No recorded outcomes yet.")},
        {"measure": _Html(page.term("drift-share")), "value": latest["drift_share"],
         "reading": (f"In the week of {latest['week']}, {_pct(latest['drift_share'])} of the "
                     "recent-crime figures the model reads changed markedly from the reference "
                     f"weeks (an alert is raised at {_pct(thresholds['drift_share'])}).")},
        {"measure": _Html(page.term("forecast-drift")), "value": latest["prediction_drift_score"],
         "reading": ("The forecasts moved away from those of the reference weeks."
                     if latest["prediction_drifted"] else
                     "The forecasts stayed close to those of the reference weeks.")},
    ]
    page.table("accuracy", rows, [("measure", "measure"), ("value", "value"),
                                  ("reading", "what it means")])
    page.add(f"<div class='chart'>{c['drift_chart']}</div>",
             f"<div class='chart'>{c['error_chart']}</div>")


def _groups(page: Page) -> None:
    c, summary = page.context, page.context["summary"]
    page.add("<h2 id='groups'>Fairness by group</h2>")
    if summary is None:
        page.add("<p>No monitoring run yet.</p>")
        return
    low, high = summary["thresholds"]["band"]
    exempt = summary.get("exempt_groups", c["exempt"])
    page.add(f"<p>Each {html.escape(c['unit'])} carries one {page.term('group')} label. "
             f"{page.term('disparity', 'Flags per recorded crime')} compares where "
             f"{page.term('hotspot', 'hotspot flags')} went with where crime was recorded: "
             f"1.0 is a fair share, and the {page.term('band', f'fair band {low:g}–{high:g}')} "
             f"is the alert limit. {page.term('mixed', 'Mixed')} means no majority; "
             f"{page.term('unknown', 'no residents (unknown)')} places are not a group of "
             "residents, so no disparity is computed for them.</p>")
    rows = []
    for g in summary["groups"]:
        group = str(g["group"])
        words = group_words(group, c["group_rule"])
        ratio = g.get("flag_rate_per_incident_ratio")
        if group in exempt:
            reading = (f"Nobody lives in these {c['units']} (parks, airport, industrial "
                       "land), so fairness between residents does not apply.")
            ratio_cell: Any = "not applicable"
            resident_cell: Any = "not applicable"
        elif ratio is None:
            reading, ratio_cell = "No recorded crime here in these weeks.", None
            resident_cell = g.get("flag_rate_per_resident_ratio")
        else:
            inside = low <= ratio <= high
            reading = (f"{words} {c['units']} received {ratio:.1f}× the hotspot flags their "
                       "share of recorded crime would suggest "
                       + ("(inside the fair band)." if inside else
                          f"(<b>outside</b> the fair band {low:g}–{high:g}).")
                       + (f" Only {int(g['areas'])} {c['units']}: too few to alert on."
                          if g.get("areas", 99) < c["min_group_areas"] else ""))
            ratio_cell, resident_cell = ratio, g.get("flag_rate_per_resident_ratio")
        rows.append({"group": words, "areas": g.get("areas"), "ratio": ratio_cell,
                     "per_resident": resident_cell, "flagged": _pct(g.get("flagged_share")),
                     "risk": _pct(g.get("risk_share")), "crime": _pct(g.get("crime_share")),
                     "mae": g.get("mae"), "reading": _Html(reading)})
    page.table("groups", rows, [
        ("group", page.term("group")), ("areas", c["units"]),
        ("ratio", page.term("disparity", "flags per recorded crime vs city")),
        ("per_resident", page.term("per-resident", "flags per resident vs city")),
        ("flagged", "share of hotspot flags"), ("risk", "share of forecast risk"),
        ("crime", "share of recorded crime"), ("mae", page.term("mae", "average miss")),
        ("reading", "what it means")])
    breaches = [b for b in summary.get("disparity_breaches", []) if b["group"] not in exempt]
    page.add("<p class='ok'>Every group of residents is inside the fair band.</p>" if not breaches
             else "<p class='alert'>Outside the fair band: " + html.escape("; ".join(
                 f"{group_words(b['group'], c['group_rule'])} ({b['value']:.2f}×)"
                 for b in breaches)) + "</p>")
    if c["disparity_chart"]:
        page.add(f"<div class='chart' id='disparity'>{c['disparity_chart']}</div>",
                 "<p class='reading'>The green area is the fair band; a red cross marks a "
                 "week in which a group fell outside it.</p>")
    _exposure(page)


def _exposure(page: Page) -> None:
    c = page.context
    page.add(f"<h3 id='exposure'>Where patrols and outreach went ({page.term('exposure')})</h3>")
    exposure = c.get("exposure")
    if exposure is None or exposure.empty:
        page.add("<p>The allocation service has not handed out patrol units or outreach "
                 "slots yet, so there is nothing to show.</p>")
        return
    rows = []
    for rec in exposure.to_dict(orient="records"):
        group = str(rec["group"])
        words = group_words(group, c["group_rule"])
        what = "patrol units" if rec["kind"] == "patrol" else "outreach slots"
        rows.append({"week": _week(rec["week"]), "kind": what, "group": words,
                     "units": _pct(rec["units_share"]), "risk": _pct(rec["risk_share"]),
                     "residents": _pct(rec["resident_share"]),
                     "reading": (f"{words} {c['units']} got {_pct(rec['units_share'])} of the "
                                 f"{what}, with {_pct(rec['risk_share'])} of the forecast risk "
                                 f"and {_pct(rec['resident_share'])} of the residents.")})
    page.table("exposure", rows, [("week", "week"), ("kind", "what"), ("group", "group"),
                                  ("units", "share handed out"), ("risk", "share of risk"),
                                  ("residents", "share of residents"),
                                  ("reading", "what it means")])


def _alerts(page: Page) -> None:
    statuses = page.context["alerts"]
    page.add(f"<h2 id='alerts'>Alerts</h2><p>Every alert with its "
             f"{page.term('alert', 'status')}, who acted and when.</p>")
    if not statuses:
        page.add("<p class='ok'>No alerts have been raised.</p>")
        return
    rows = [{"status": s["status"], "what": s.get("message", s["id"]),
             "next": s.get("next_step", ""), "who": _actor(s.get("actor")),
             "when": str(s.get("at", ""))[:16].replace("T", " "), "note": s.get("note", "")}
            for s in statuses.values()]
    page.table("alerts", rows, [("status", page.term("alert", "status")), ("what", "what"),
                                ("next", "what happens next"), ("who", "who"),
                                ("when", "when (UTC)"), ("note", "note")])


def _decision_words(record: dict[str, Any]) -> str:
    event, decision = record.get("event"), record.get("decision")
    challenger, champion = record.get("challenger_version"), record.get("champion_version")
    if event == "manual":
        return "; ".join(
            f"the @{ch['alias']} label moved from version {ch.get('from') or 'none'} to "
            f"{ch.get('to') or 'none'} outside crimecast: the gate did not check it"
            for ch in record.get("alias_changes") or [])
    if event == "register":
        role = ("model in service" if champion else "candidate")
        return f"version {challenger or champion} was trained and registered as the {role}"
    if event == "promote" and decision == "promoted":
        return (f"version {challenger} passed the gate and became the model in service"
                + (f", replacing version {champion}" if champion else ""))
    if event == "promote":
        return f"version {challenger} was refused by the gate"
    if event == "rollback":
        return f"the model in service went back from version {challenger} to version {champion}"
    return f"{event}: {decision}"


def _history(page: Page) -> None:
    c = page.context
    page.add(f"<h2 id='history'>Promotion history</h2>"
             f"<p>Every decision about which model answers forecasts, newest last. The "
             f"{page.term('gate')}'s policy, in its own words:</p>"
             f"<p class='note'>{html.escape(c['policy'])}</p>")
    records = c["audit"]
    if not records:
        page.add("<p>No promotion decisions recorded yet.</p>")
        return
    rows = []
    for rec in records:
        details = [html.escape(ch["plain"]) for ch in rec.get("checks") or [] if ch.get("plain")]
        exception = (rec.get("exception") or {}).get("reason")
        if exception:
            details.append(f"<b>{term('exception', 'Public exception', c)}:</b> "
                           f"{html.escape(exception)}")
        reason = html.escape(str(rec.get("reason", "")))
        if details:
            reason += ("<details><summary>every check, with its 95 % interval</summary><ul>"
                       + "".join(f"<li>{d}</li>" for d in details) + "</ul></details>")
        manual = rec.get("event") == "manual"
        rows.append({"at": str(rec.get("at", ""))[:16].replace("T", " "),
                     "what": _Html(("<b class='alert'>" + term('manual', 'Gate bypass', c)
                                    + ":</b> " if manual else "")
                                   + html.escape(_decision_words(rec))),
                     "who": _actor(rec.get("actor")), "why": _Html(reason)})
    page.table("promotion_history", rows, [("at", "when (UTC)"), ("what", "what happened"),
                                           ("who", page.term("operator", "who")),
                                           ("why", "why")])


def _simulation(page: Page) -> None:
    sim = page.context.get("simulation")
    if not sim:
        return
    rows = [{"policy": k, **v} for k, v in sim["policies"].items()]
    page.add("<h2 id='simulation'>Feedback-loop simulation</h2>",
             ("<p>On a synthetic city with known true crime rates, patrols follow the forecast "
              "and find crimes where they patrol; the model is retrained weekly on what was "
              "recorded. The gap is half the sum over groups of |patrol share − true crime "
              "share|: 0 means patrols follow true crime exactly.</p>"))
    page.table("simulation", rows, [("policy", "training policy"),
                                    ("gap_first_week", "gap, first week"),
                                    ("gap_mean_last_quarter", "gap, last quarter (mean)"),
                                    ("most_overpatrolled_group", "most over-patrolled group")])
    worst = max(rows, key=lambda r: r.get("gap_mean_last_quarter") or 0)
    page.reading(f"Training on raw recorded crime ({worst['policy']}) ends with the largest "
                 f"gap, {worst['gap_mean_last_quarter']:.2f}: patrols drift towards where they "
                 "already patrol.")
    if page.context.get("simulation_plot"):
        page.add(f"<img alt='feedback loop gap' src='data:image/png;base64,"
                 f"{page.context['simulation_plot']}'>")


def _did_it_work(page: Page) -> None:
    page.add(did_it_work_html(page.context.get("impact"), page.context["floor"]))


def _model_card(page: Page) -> None:
    c = page.context
    see_sim = (" (see the <a href='#simulation'>simulation</a>)" if c.get("simulation") else "")
    page.add("<h2 id='card'>Model card</h2>")
    page.table("model_card", [
        {"k": "What it predicts", "v": "Expected number of recorded crimes next week (and up "
         f"to 4 weeks ahead) per {c['unit']} and category "
         f"({', '.join(c['categories'])}), with 80 % and 95 % ranges."},
        {"k": "Data", "v": c["data_note"]},
        {"k": "Intended use", "v": "Planning services and patrol coverage for places; "
         "oversight of where resources go. Early intervention means directing services to "
         "neighbourhoods."},
        {"k": "Not for", "v": "Any decision about an individual person. Stops, searches, "
         f"arrests or suspicion must never be based on a {c['unit']}'s forecast."},
        {"k": "Limits", "v": _Html(html.escape(
            "Recorded crime is not all crime: reporting differs between communities, and "
            "patrols find more where they patrol, so forecasts can feed back into the data")
            + see_sim + html.escape(
            f". Small {c['units']} have noisy numbers. Forecasts assume the near future "
            "resembles the recent past; drift monitoring checks that."))},
        {"k": "Fairness checks", "v": "Accuracy and hotspot-flag rates are compared across "
         "groups every week; a new model is put in service only through the promotion gate "
         "(its policy is quoted under Promotion history)."},
    ], [("k", ""), ("v", "")])


# --------------------------------------------------------------------------- charts
def _chart(fig: Any, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def drift_chart(weekly: pd.DataFrame, drift_share: float) -> str:
    import plotly.graph_objects as go

    weeks = pd.to_datetime(weekly["week"])
    fig = go.Figure(go.Scatter(x=weeks, y=weekly["drift_share"], mode="lines+markers",
                               name="share of recent-crime inputs that drifted"))
    fig.add_hline(y=drift_share, line_dash="dot", line_color="#c62828",
                  annotation_text=f"alert at {drift_share:.0%}")
    fig.update_layout(title="Share of the model's recent-crime inputs<br>that drifted, by week",
                      xaxis_title="week", yaxis_title="share of inputs that drifted",
                      yaxis_tickformat=".0%", yaxis_range=[0, 1], height=320,
                      margin={"l": 50, "r": 10, "t": 50, "b": 40})
    return _chart(fig, "drift-chart")


def error_chart(weekly: pd.DataFrame, reference_mae: float | None, unit: str) -> str:
    import plotly.graph_objects as go

    weeks = pd.to_datetime(weekly["week"])
    fig = go.Figure(go.Scatter(x=weeks, y=weekly["mae"], mode="lines+markers",
                               name="average miss"))
    if reference_mae:
        fig.add_hline(y=reference_mae, line_dash="dot", line_color="#555",
                      annotation_text="reference weeks")
    fig.update_layout(title="Average miss of the forecast, by week",
                      xaxis_title="week", yaxis_title=f"crimes per {unit} and week",
                      height=320, margin={"l": 50, "r": 10, "t": 50, "b": 40})
    return _chart(fig, "error-chart")


def disparity_chart(groups: pd.DataFrame, band: tuple[float, float], exempt: list[str],
                    rule: str) -> str:
    """Weekly flags-per-crime ratio by group: the fair band shaded, breaches marked with
    red crosses, one fixed colour per group."""
    import plotly.graph_objects as go

    frame = groups[~groups["group"].astype(str).isin(exempt)].dropna(
        subset=["flag_rate_per_incident_ratio"])
    if frame.empty:
        return ""
    low, high = band
    colours = group_colours(sorted(groups["group"].astype(str).unique()))
    fig = go.Figure()
    fig.add_hrect(y0=low, y1=high, fillcolor="#2ca02c", opacity=0.15, line_width=0,
                  layer="below", annotation_text=f"fair band {low:g}–{high:g}",
                  annotation_position="top left")
    for group, rows in frame.groupby(frame["group"].astype(str)):
        weeks = pd.to_datetime(rows["week"])
        ratio = rows["flag_rate_per_incident_ratio"]
        fig.add_trace(go.Scatter(x=weeks, y=ratio, mode="lines+markers",
                                 name=group_words(group, rule),
                                 line={"color": colours[group]}, marker={"color": colours[group]}))
        outside = (ratio < low) | (ratio > high)
        if outside.any():
            fig.add_trace(go.Scatter(x=weeks[outside], y=ratio[outside], mode="markers",
                                     name=f"{group_words(group, rule)}: outside the band",
                                     marker={"symbol": "x", "size": 12, "color": "#c62828"},
                                     showlegend=False))
    fig.update_layout(title="Hotspot flags per recorded crime,<br>relative to the city, by week",
                      xaxis_title="week",
                      yaxis_title="flags per recorded crime (1 = fair share)", height=380,
                      margin={"l": 50, "r": 10, "t": 50, "b": 40})
    return _chart(fig, "disparity-chart")


# --------------------------------------------------------------------------- assembly
SECTIONS: list[Callable[[Page], None]] = [_header, _map, _accuracy, _groups, _alerts,
                                          _history, _simulation, _did_it_work,
                                          _model_card]


def render_html(context: dict[str, Any]) -> tuple[str, dict[str, pd.DataFrame]]:
    """The report page and its CSV tables from the prepared context (see
    :func:`build_report`)."""
    page = Page(context)
    for section in SECTIONS:
        section(page)
    head = ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(context['city'])} — crime forecast oversight report</title>"
            f"<script>{OFFLINE_GEO}</script><script src='plotly.min.js'></script>"
            f"<style>{CSS}</style></head><body><main>")
    return head + "\n".join(page.parts) + "</main></body></html>", page.csv


def _current_alerts(settings: MonitoringSettings) -> dict[str, dict[str, Any]]:
    """Every alert's latest status, with the wording of the latest check that raised it
    (numbers change from check to check; the status keeps who and when)."""
    from monitoring.alerts import read_statuses

    statuses = read_statuses(settings.path("alert_status_path"))
    log = settings.path("alerts_path")
    if log.exists():
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        try:
            latest = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            latest = {}
        for alert in latest.get("alerts", []):
            if alert.get("id") in statuses:
                statuses[alert["id"]] = {**statuses[alert["id"]], "message": alert["message"]}
    return statuses


def _stale_days(last_week: pd.Timestamp, today: date, limit: int) -> int | None:
    """Days since the last recorded week ended, when more than ``limit``; else None."""
    age = (pd.Timestamp(today) - (last_week + pd.Timedelta(days=7))).days
    return age if age > limit else None


def build_report(settings: MonitoringSettings, directory: Path,
                 today: date | None = None) -> dict[str, Path]:
    """Write ``index.html``, ``glossary.html``, ``plotly.min.js``, ``map_layers.geojson``
    and ``tables/*.csv`` into ``directory``; returns what went where."""
    import geopandas as gpd
    import plotly.offline

    from crimecast.io import write_csv, write_text
    from crimecast.lifecycle.audit import read_audit
    from crimecast.lifecycle.gate import PromotionSettings, policy_text
    panel, graph = Panel.load(), AreaGraph.load()
    areas = gpd.read_parquet(ARTIFACTS.areas)
    label, forecast = next_week_forecast(panel, graph)
    floor = settings.suppress_below
    data_settings = DataSettings.load()
    city = data_settings.city
    unit, units = data_settings.area_label, f"{data_settings.area_label}s"
    rule = data_settings.groups.rule
    promotion = PromotionSettings.load()
    first, last = panel.weeks[0], panel.weeks[-1]
    one_week = forecast[forecast["horizon"] == 1]
    target = (pd.Timestamp(one_week["week"].min()) if "week" in one_week and len(one_week)
              else last + pd.Timedelta(weeks=1))
    words = {g: group_words(g, rule) for g in areas["group"].astype(str).unique()}
    layers = map_layers(areas, panel, forecast, floor)
    figure = map_figure(areas, panel, forecast, floor=floor, unit=unit,
                        target_week=_week(target), group_words=words)
    out_dir = settings.path("output_dir")
    summary_path = out_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    weekly = pd.read_csv(out_dir / "weekly.csv") if (out_dir / "weekly.csv").exists() else None
    groups = pd.read_csv(out_dir / "groups.csv") if (out_dir / "groups.csv").exists() else None
    exposure = (pd.read_csv(out_dir / "exposure.csv") if (out_dir / "exposure.csv").exists()
                else None)
    sim_dir = directory / "simulation"
    simulation = (json.loads((sim_dir / "feedback.json").read_text())
                  if (sim_dir / "feedback.json").exists() else None)
    simulation_plot = (base64.b64encode((sim_dir / "gap.png").read_bytes()).decode("ascii")
                       if (sim_dir / "gap.png").exists() else "")
    today = today or date.today()
    exempt = list(promotion.exempt_groups)
    context = {
        "city": city.name, "unit": unit, "units": units, "source": city.source,
        "licence": city.licence, "contact": city.contact, "categories": panel.categories,
        "generated": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "last_week": _week(last), "target_week": _week(target),
        "target_end": _week(target + pd.Timedelta(days=6)),
        "stale_days": _stale_days(last, today, settings.stale_after_days),
        "stale_limit": settings.stale_after_days, "areas": graph.num_nodes, "floor": floor,
        "low": promotion.disparity_band[0], "high": promotion.disparity_band[1],
        "exempt_text": (f"labelled {', '.join(exempt)}: exempt by the gate's exempt_groups "
                        "setting" if exempt else "no label is exempt at present"),
        "map_html": _chart(figure, "area-map-plot"),
        "layer_rows": layers.drop(columns="geometry").to_dict(orient="records"),
        "forecast_model": label, "summary": summary, "group_rule": rule,
        "min_group_areas": settings.disparity.min_group_areas,
        "drift_chart": drift_chart(weekly, settings.drift.drift_share) if weekly is not None else "",
        "error_chart": (error_chart(weekly, (summary or {}).get("window", {}).get("reference_mae"),
                                    unit) if weekly is not None and weekly["mae"].notna().any()
                        else ""),
        "disparity_chart": (disparity_chart(groups, settings.disparity.band, exempt, rule)
                            if groups is not None else ""),
        "exempt": exempt, "exposure": exposure,
        "alerts": _current_alerts(settings),
        "audit": read_audit(settings.path("audit_path")), "policy": policy_text(promotion),
        "simulation": simulation, "simulation_plot": simulation_plot,
        "impact": read_impact(resolve(settings.impact.output)),
        "data_note": (f"Weekly recorded incidents per {unit} from {first.date()} to "
                      f"{last.date()} ({len(panel.weeks)} weeks), {unit} demographics. "
                      f"Incident locations are aggregated to {units}; no addresses, names or "
                      "incident identifiers are used in or published by this report."),
    }
    page, tables = render_html(context)
    paths = {"html": write_text(directory / "index.html", page),
             "glossary": write_text(directory / GLOSSARY_FILE, glossary_page(context, CSS)),
             "plotly": write_text(directory / "plotly.min.js", plotly.offline.get_plotlyjs()),
             "geojson": write_text(directory / "map_layers.geojson", layers.to_json())}
    for name, frame in tables.items():
        paths[f"table:{name}"] = write_csv(directory / "tables" / f"{name}.csv", frame)
    return paths
