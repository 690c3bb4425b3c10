"""The report's interactive map: one plotly choropleth of the areas, offline.

One feature per area (tracts, H3 cells or any other unit: it draws the areas' own
geometry keyed by ``area_id``), with a menu that switches between forecast risk class
and recorded crime (last four weeks), for all categories or one. Hover text names the
area (its neighbourhood name when the areas carry one), its group, its risk class and
its recorded count, with counts below the suppression floor shown as ``<5``. Plotly's JS
is not embedded in the page: the report writes it once as ``plotly.min.js`` next to it,
so the page works without a network.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from crimecast.contracts import Panel

#: Columns of areas.parquet that hold a human name of the area, first found wins.
NAME_COLUMNS: tuple[str, ...] = ("name", "area_name", "neighbourhood", "neighborhood", "label")
RISK_LABELS: tuple[str, ...] = ("1 lowest", "2", "3", "4", "5 highest")
ALL = "all categories"


def suppress(count: float, floor: int = 5) -> str:
    """A count as published: ``"<floor>"`` below the floor, else the integer."""
    if not np.isfinite(count):
        return "n/a"
    return f"<{floor}" if count < floor else str(round(count))


def count_edges(floor: int) -> tuple[int, ...]:
    return (floor, *[b for b in (5, 10, 20, 50) if b > floor])


def count_class_index(count: float, floor: int = 5) -> int:
    """Index of a count's class: 0 = ``<floor``, then ``floor–9``, ``10–19``, ``20–49``, ``50+``."""
    return int(np.searchsorted(np.asarray(count_edges(floor)), count, side="right"))


def count_labels(floor: int) -> list[str]:
    edges = count_edges(floor)
    return ([f"<{edges[0]}"] + [f"{lo}–{hi - 1}" for lo, hi in pairwise(edges)]
            + [f"{edges[-1]}+"])


def risk_classes(risk_per_km2: np.ndarray) -> np.ndarray:
    """Quintile class (0 lowest … 4 highest) of forecast risk density, per area."""
    ranks = pd.Series(risk_per_km2).rank(method="first", pct=True).to_numpy()
    return np.minimum((ranks * 5).astype(int), 4)


def area_names(areas: pd.DataFrame) -> pd.Series:
    """A display name per area: a name column when the areas have one, else empty."""
    for column in NAME_COLUMNS:
        if column in areas.columns:
            return areas[column].fillna("").astype(str)
    return pd.Series("", index=areas.index)


def measures(areas: pd.DataFrame, panel: Panel, forecast: pd.DataFrame, floor: int
             ) -> dict[str, pd.DataFrame]:
    """Per category (and ``ALL``), one row per area (in ``areas`` order): ``recent``
    (recorded count, last 4 weeks), ``risk_class`` (0–4) and ``count_class`` (0–4)."""
    ids = areas["area_id"].astype(str)
    land = np.maximum(areas["land_area_km2"].to_numpy(float), 1e-6)
    last = panel.weeks[-4:]
    recent = panel.counts[panel.counts["week"].isin(last)].assign(
        area_id=lambda f: f["area_id"].astype(str))
    one_week = forecast[forecast["horizon"] == 1].assign(
        area_id=lambda f: f["area_id"].astype(str))
    out = {}
    for category in [ALL, *panel.categories]:
        counts = recent if category == ALL else recent[recent["category"] == category]
        risk = one_week if category == ALL else one_week[one_week["category"] == category]
        count = counts.groupby("area_id")["count"].sum().reindex(ids).fillna(0).to_numpy(float)
        density = risk.groupby("area_id")["mean"].sum().reindex(ids).fillna(0).to_numpy(float) / land
        out[category] = pd.DataFrame({
            "area_id": ids.to_numpy(), "recent": count,
            "risk_class": risk_classes(density),
            "count_class": [count_class_index(c, floor) for c in count]})
    return out


def hover_texts(areas: pd.DataFrame, table: pd.DataFrame, category: str, unit: str,
                target_week: str, floor: int, group_words: dict[str, str]) -> list[str]:
    """One hover text per area: name, group, risk class, suppressed recorded count."""
    names = area_names(areas).to_numpy()
    groups = areas["group"].astype(str).to_numpy()
    texts = []
    for name, group, row in zip(names, groups, table.itertuples(), strict=True):
        head = f"<b>{name}</b><br>{unit} {row.area_id}" if name else f"<b>{unit} {row.area_id}</b>"
        texts.append(
            f"{head}<br>group: {group_words.get(group, group)}"
            f"<br>forecast risk, week of {target_week} ({category}): class "
            f"{RISK_LABELS[row.risk_class]} of 5"
            f"<br>recorded crimes, last 4 weeks ({category}): {suppress(row.recent, floor)}")
    return texts


def _rounded_geojson(areas: Any) -> dict[str, Any]:
    """GeoJSON of the areas in lon/lat, ``id`` = area_id, coordinates rounded to ~1 m."""
    frame = areas[["area_id", "geometry"]].copy()
    frame["area_id"] = frame["area_id"].astype(str)
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    frame["geometry"] = frame.geometry.simplify(0.00005, preserve_topology=True).set_precision(1e-5)
    return json.loads(frame.to_json())


def map_figure(areas: Any, panel: Panel, forecast: pd.DataFrame, *, floor: int, unit: str,
               target_week: str, group_words: dict[str, str]) -> Any:
    """The plotly figure: one choropleth trace (one feature per area) and a menu of
    (measure, category) views that restyle its values, colour scale labels and hover."""
    import plotly.graph_objects as go

    by_category = measures(areas, panel, forecast, floor)
    geojson = _rounded_geojson(areas)
    views = []
    for category, table in by_category.items():
        text = hover_texts(areas, table, category, unit, target_week, floor, group_words)
        views.append((f"Forecast risk, week of {target_week} — {category}",
                      table["risk_class"].to_numpy(), list(RISK_LABELS), text))
        views.append((f"Recorded crimes, last 4 weeks — {category}",
                      table["count_class"].to_numpy(), count_labels(floor), text))
    _, z, ticks, text = views[0]
    trace = go.Choropleth(
        geojson=geojson, locations=by_category[ALL]["area_id"], featureidkey="properties.area_id",
        z=z, zmin=0, zmax=4, colorscale="OrRd", text=text, hovertemplate="%{text}<extra></extra>",
        marker_line_color="#777", marker_line_width=0.3,
        colorbar={"title": {"text": "class"}, "tickvals": list(range(5)), "ticktext": ticks})
    fig = go.Figure(trace)
    buttons = [{"label": label, "method": "restyle",
                "args": [{"z": [values], "text": [hover], "colorbar.ticktext": [labels]}]}
               for label, values, labels, hover in views]
    fig.update_geos(fitbounds="locations", visible=False)
    fig.update_layout(
        height=560, margin={"l": 0, "r": 0, "t": 50, "b": 0},
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 0, "xanchor": "left",
                      "y": 1.0, "yanchor": "bottom", "showactive": True}])
    return fig
