"""The public transparency report: ``reports/index.html``, static and self-contained.

What it shows (all place-based: the city's areas and weeks, never persons; the city and
what one area is called come from configs/data.yaml ``city``):

- maps of next week's forecast risk (as quintile classes) and of the last four weeks'
  recorded counts (in classes whose lowest is "<5");
- shared metrics from the latest monitoring run: accuracy (MAE, PAI, interval coverage),
  drift status, and by demographic group the error, hotspot-flag disparity ratios and
  exposure shares;
- the promotion history with the reason for every decision (``state/audit.jsonl``);
- a model card: data, intended use, limits;
- the feedback-loop simulation results when ``reports/simulation/`` exists;
- "Did it work?": the impact estimates of ``crimecast impact`` (``impact.json``), or
  "no interventions recorded yet".

Privacy rules: no exact count below ``suppress_below`` (5) appears anywhere — maps and the
GeoJSON export use classes, per-group tables show shares and ratios, not counts; forecasts
are published as classes (a historical average of four weeks times four *is* a count);
no configuration value is printed except thresholds (a webhook URL may hold a token).
"""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crimecast.contracts import ARTIFACTS, AreaGraph, Panel
from crimecast.data.settings import DataSettings
from crimecast.paths import resolve
from monitoring.impact import did_it_work_html, read_impact
from monitoring.settings import MonitoringSettings

COUNT_BINS: tuple[int, ...] = (5, 10, 20, 50)
RISK_CLASSES: tuple[str, ...] = ("1 lowest", "2", "3", "4", "5 highest")


def suppress(count: float, floor: int = 5) -> str:
    """A count as published: ``"<floor>"`` below the floor, else the integer."""
    if not np.isfinite(count):
        return "n/a"
    return f"<{floor}" if count < floor else str(round(count))


def count_class(count: float, floor: int = 5) -> str:
    """The class of a count on the public map: ``<5``, ``5–9``, ``10–19``, ``20–49``, ``50+``
    (the first bin edge is ``floor``)."""
    edges = (floor, *[b for b in COUNT_BINS if b > floor])
    if count < edges[0]:
        return f"<{edges[0]}"
    for low, high in pairwise(edges):
        if count < high:
            return f"{low}–{high - 1}"
    return f"{edges[-1]}+"


def risk_classes(risk_per_km2: np.ndarray) -> np.ndarray:
    """Quintile class (1 lowest … 5 highest) of forecast risk density, per area."""
    ranks = pd.Series(risk_per_km2).rank(method="first", pct=True).to_numpy()
    return np.minimum((ranks * 5).astype(int), 4)


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
            return f"champion v{version}", frame
        except Exception as exc:  # noqa: BLE001  (any load failure: publish the baseline)
            why = f"champion v{version} could not be loaded: {type(exc).__name__}"
    else:
        why = "no champion registered"
    from crimecast.forecast.models import get_model

    model = get_model("historical_average").fit(panel, graph)
    return f"historical_average baseline ({why})", model.predict(panel, graph, (1,))


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def map_layers(areas: Any, panel: Panel, forecast: pd.DataFrame, floor: int) -> Any:
    """GeoDataFrame of the public map layers, one row per area: ``area_id``, ``group``,
    ``recent_count_class`` (last 4 weeks, all categories), ``risk_class`` and geometry."""
    last = panel.weeks[-4:]
    recent = (panel.counts[panel.counts["week"].isin(last)]
              .groupby("area_id")["count"].sum())
    risk = forecast[forecast["horizon"] == 1].groupby("area_id")["mean"].sum()
    layers = areas[["area_id", "group", "land_area_km2", "geometry"]].copy()
    layers["area_id"] = layers["area_id"].astype(str)
    counts = recent.reindex(layers["area_id"]).fillna(0).to_numpy(float)
    density = risk.reindex(layers["area_id"]).fillna(0).to_numpy(float) / np.maximum(
        layers["land_area_km2"].to_numpy(float), 1e-6)
    layers["recent_count_class"] = [count_class(c, floor) for c in counts]
    layers["risk_class"] = [RISK_CLASSES[i] for i in risk_classes(density)]
    layers["geometry"] = layers.geometry.simplify(0.0002, preserve_topology=True)
    return layers.drop(columns="land_area_km2")


def _maps(layers: Any, floor: int) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = []
    for column, title, order in (
        ("risk_class", "Forecast risk next week (expected crimes per km², quintiles)",
         list(RISK_CLASSES)),
        ("recent_count_class", ("Recorded crimes, last 4 weeks (counts below "
         f"{floor} shown as <{floor})"), None),
    ):
        values = layers[column]
        categories = order or sorted(values.unique(), key=_class_key)
        frame = layers.assign(**{column: pd.Categorical(values, categories=categories,
                                                        ordered=True)})
        fig, ax = plt.subplots(figsize=(6.5, 6.5))
        frame.plot(column=column, ax=ax, cmap="OrRd", legend=True, categorical=True,
                   edgecolor="#999999", linewidth=0.2,
                   legend_kwds={"loc": "lower right", "fontsize": 8})
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
        images.append(_png(fig))
    return images[0], images[1]


def _class_key(label: str) -> int:
    digits = "".join(ch if ch.isdigit() else " " for ch in label).split()
    return int(digits[0]) - (1 if label.startswith("<") else 0) if digits else 0


def _history_plot(weekly: pd.DataFrame, drift_share: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax1 = plt.subplots(figsize=(7, 3))
    weeks = pd.to_datetime(weekly["week"])
    ax1.plot(weeks, weekly["drift_share"], marker="o", label="share of drifted inputs")
    ax1.axhline(drift_share, color="red", linestyle=":", label="alert threshold")
    ax1.set_ylim(0, 1)
    ax1.set_ylabel("drift share")
    if weekly["mae"].notna().any():
        ax2 = ax1.twinx()
        ax2.plot(weeks, weekly["mae"], color="grey", marker="s", label="MAE")
        ax2.set_ylabel("MAE (crimes per area-week)")
    ax1.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    return _png(fig)


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = []
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key)
            if isinstance(value, float):
                text = "n/a" if not np.isfinite(value) else f"{value:.3g}"
            else:
                text = "" if value is None else str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _audit_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for rec in records:
        rows.append({
            "at": str(rec.get("at", ""))[:19].replace("T", " "),
            "event": rec.get("event", ""),
            "decision": rec.get("decision", rec.get("alias", "")),
            "versions": " → ".join(
                str(v) for v in (rec.get("champion_version") or rec.get("from"),
                                 rec.get("challenger_version") or rec.get("to")) if v),
            "actor": rec.get("actor", ""),
            "reason": rec.get("reason", ""),
        })
    return rows


CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}.maps{display:flex;flex-wrap:wrap;gap:1em}.maps img{max-width:520px}
.ok{color:#1a7f37;font-weight:bold}.alert{color:#c62828;font-weight:bold}
.note{background:#f7f7f2;border-left:4px solid #bbb;padding:.5em 1em}
"""


def render_html(context: dict[str, Any]) -> str:
    """The report page from the prepared context (see :func:`build_report`)."""
    summary = context.get("summary")
    floor = context["floor"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>crimecast — public transparency report</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>crimecast — public transparency report: {html.escape(context['city'])}</h1>",
        (f"<p>Generated {html.escape(context['generated'])}. Data through the week of "
        f"{html.escape(context['last_week'])}; {context['areas']} "
        f"{html.escape(context['units'])}. Source: {html.escape(context['source'])} "
        f"({html.escape(context['licence'])}).</p>"),
        ("<p class='note'>crimecast forecasts weekly crime counts for <b>places</b> "
        f"({html.escape(context['units'])}) and <b>weeks</b>. It never scores, lists or "
        "predicts individual people. "
        f"Counts below {floor} are never shown exactly (they read “&lt;{floor}”).</p>"),
        "<h2>Maps</h2><div class='maps'>",
        f"<img alt='forecast risk map' src='data:image/png;base64,{context['risk_map']}'>",
        f"<img alt='recent recorded crime map' src='data:image/png;base64,{context['count_map']}'>",
        "</div>",
        (f"<p>Forecast by: {html.escape(context['forecast_model'])}. Map layers as GeoJSON: "
        "<a href='map_layers.geojson'>map_layers.geojson</a> (classes only).</p>"),
        "<h2>Accuracy, drift and fairness</h2>",
    ]
    if summary is None:
        parts.append("<p>No monitoring run yet: run <code>crimecast monitor run</code>.</p>")
    else:
        window, latest = summary["window"], summary["latest"]
        drift_ok = not latest["dataset_drift"]
        breaches = summary.get("disparity_breaches", [])
        parts += [
            (f"<p>Monitored weeks {summary['weeks'][0]} to {summary['weeks'][-1]} "
            f"({len(summary['weeks'])} weeks, {html.escape(summary['source'])}, model "
            f"{html.escape(str(summary['model']))}).</p>"),
            _table([{
                "mae": window.get("mae"), "reference_mae": window.get("reference_mae"),
                "pai": window.get("pai"), "coverage": window.get("coverage_80"),
            }], [("mae", f"MAE (crimes per {context['unit']}-week)"),
                 ("reference_mae", "MAE, reference window"),
                 ("pai", "PAI, top 5 % of land area"), ("coverage", "80 % interval coverage")]),
            (f"<p>Data drift in the latest week ({latest['week']}): "
            f"<span class='{'ok' if drift_ok else 'alert'}'>"
            f"{'no' if drift_ok else 'yes'}</span> — {latest['drift_share']:.0%} of model inputs "
            f"drifted (alert at {summary['thresholds']['drift_share']:.0%}); forecasts "
            f"{'drifted' if latest['prediction_drifted'] else 'stable'}.</p>"),
            ("<img alt='drift and error over time' "
             f"src='data:image/png;base64,{context['history']}'>"),
            "<h3>By demographic group</h3>",
            (f"<p>Each {html.escape(context['unit'])} is labelled with one group (its majority "
            "race/ethnicity). <i>Flags per incident vs city</i>: how often the group's "
            f"{html.escape(context['units'])} are flagged as "
            "hotspots for each recorded crime, relative to the whole city (1.0 = parity; the "
            f"band {summary['thresholds']['band'][0]}–{summary['thresholds']['band'][1]} "
            "is the alert threshold). Shares compare where hotspot flags went with where "
            "forecast risk and recorded crime are.</p>"),
            _table(summary["groups"], [
                ("group", "group"), ("areas", context["units"]), ("mae", "MAE"),
                ("flag_rate_per_incident_ratio", "flags per incident vs city"),
                ("flag_rate_per_resident_ratio", "flags per resident vs city"),
                ("flagged_share", "share of hotspot flags"),
                ("risk_share", "share of forecast risk"),
                ("crime_share", "share of recorded crime")]),
            ("<p class='ok'>All groups inside the disparity band.</p>" if not breaches else
             "<p class='alert'>Outside the disparity band: " + html.escape("; ".join(
                 f"{b['group']} ({b['value']:.2f}, {b['direction']})" for b in breaches))
             + "</p>"),
        ]
    parts.append("<h2>Promotion history</h2>")
    if context["audit"]:
        parts.append("<p>Every decision about which model serves forecasts, with its reason "
                     "(newest last).</p>")
        parts.append(_table(context["audit"], [("at", "when (UTC)"), ("event", "event"),
                                               ("decision", "decision"), ("versions", "versions"),
                                               ("actor", "who"), ("reason", "reason")]))
    else:
        parts.append("<p>No promotion decisions recorded yet.</p>")
    if context.get("simulation"):
        sim = context["simulation"]
        rows = [{"policy": k, **v} for k, v in sim["policies"].items()]
        parts += [
            "<h2>Feedback-loop simulation</h2>",
            ("<p>On a synthetic city with known true crime rates, patrols follow the forecast "
            "and find crimes where they patrol; the model is retrained weekly on what was "
            "recorded. The gap is ½ Σ |patrol share − true crime share| over groups.</p>"),
            _table(rows, [("policy", "training policy"), ("gap_first_week", "gap, first week"),
                          ("gap_mean_last_quarter", "gap, last quarter (mean)"),
                          ("most_overpatrolled_group", "most over-patrolled group")]),
        ]
        if context.get("simulation_plot"):
            parts.append(f"<img alt='feedback loop gap' src='data:image/png;base64,"
                         f"{context['simulation_plot']}'>")
    parts.append(did_it_work_html(context.get("impact"), floor))
    parts += [
        "<h2>Model card</h2>",
        _table([
            {"k": "What it predicts", "v": "Expected number of recorded crimes next week (and up "
             f"to 4 weeks ahead) per {context['unit']} and category "
             f"({', '.join(context['categories'])}), with 80 % and 95 % intervals."},
            {"k": "Data", "v": context["data_note"]},
            {"k": "Intended use", "v": "Planning services and patrol coverage for places; "
             "oversight of where resources go. Early intervention means directing services to "
             "neighbourhoods."},
            {"k": "Not for", "v": "Any decision about an individual person. Stops, searches, "
             f"arrests or suspicion must never be based on a {context['unit']}'s forecast."},
            {"k": "Limits", "v": "Recorded crime is not all crime: reporting differs between "
             "communities, and patrols find more where they patrol, so forecasts can feed back "
             f"into the data (see the simulation). Small {context['units']} have noisy "
             "numbers. Forecasts "
             "assume the near future resembles the recent past; drift monitoring checks that."},
            {"k": "Fairness checks", "v": "Accuracy and hotspot-flag rates are compared across "
             "demographic groups every week; a new model is promoted only if no group's "
             "disparity grows past the configured band."},
        ], [("k", ""), ("v", "")]),
        "</body></html>",
    ]
    return "\n".join(parts)


def build_report(settings: MonitoringSettings, directory: Path) -> dict[str, Path]:
    """Write ``index.html`` and ``map_layers.geojson`` into ``directory``; returns paths."""
    import geopandas as gpd

    from crimecast.io import write_text
    from crimecast.lifecycle.audit import read_audit

    panel, graph = Panel.load(), AreaGraph.load()
    areas = gpd.read_parquet(ARTIFACTS.areas)
    label, forecast = next_week_forecast(panel, graph)
    layers = map_layers(areas, panel, forecast, settings.suppress_below)
    risk_map, count_map = _maps(layers, settings.suppress_below)
    out_dir = settings.path("output_dir")
    summary_path = out_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    history = ""
    if summary is not None and (out_dir / "weekly.csv").exists():
        history = _history_plot(pd.read_csv(out_dir / "weekly.csv"), settings.drift.drift_share)
    simulation = None
    sim_dir = directory / "simulation"
    if (sim_dir / "feedback.json").exists():
        simulation = json.loads((sim_dir / "feedback.json").read_text())
    simulation_plot = (base64.b64encode((sim_dir / "gap.png").read_bytes()).decode("ascii")
                       if (sim_dir / "gap.png").exists() else "")
    first, last = panel.weeks[0], panel.weeks[-1]
    city = DataSettings.load().city
    unit, units = city.unit_label, f"{city.unit_label}s"
    context = {
        "city": city.name, "unit": unit, "units": units, "source": city.source,
        "licence": city.licence, "categories": panel.categories,
        "generated": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "last_week": last.date().isoformat(), "areas": graph.num_nodes,
        "floor": settings.suppress_below, "risk_map": risk_map, "count_map": count_map,
        "forecast_model": label, "summary": summary, "history": history,
        "audit": _audit_rows(read_audit(settings.path("audit_path"))),
        "simulation": simulation, "simulation_plot": simulation_plot,
        "impact": read_impact(resolve(settings.impact.output)),
        "data_note": (f"Weekly recorded incidents per {unit} from {first.date()} to "
                      f"{last.date()} ({len(panel.weeks)} weeks), {unit} demographics. "
                      f"Incident locations are aggregated to {units}; no addresses, names or "
                      "incident identifiers are used in or published by this report."),
    }
    paths = {"html": write_text(directory / "index.html", render_html(context))}
    paths["geojson"] = write_text(directory / "map_layers.geojson", layers.to_json())
    return paths
