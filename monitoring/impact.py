"""Impact evaluation: did the intervention in some areas change their recorded crime?

Wires :mod:`crimecast.impact` (the pure estimators) to the pipeline's artifacts: the
panel, the graph (the buffer is the treated areas' neighbours), the areas' groups and a
forecast risk for matching (the historical-average forecast of the first treated week
from the weeks before it). Treated areas come from a file (:func:`treated_from_file`) or
from recorded dosage above a threshold (:func:`treated_from_dosage`).

Writes ``state/monitoring/impact.json`` (``impact.output``) through :func:`write_impact`;
the public report reads it back with :func:`read_impact` and shows
:func:`did_it_work_html`.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crimecast.contracts import AreaGraph, Panel
from crimecast.data.panel import panel_arrays
from crimecast.errors import CrimecastError
from crimecast.forecast.models.base import recent_mean
from crimecast.forecast.settings import EvaluationSettings
from crimecast.impact import ImpactDesign, buffer_mask, impact_by_subset
from crimecast.io import write_json
from monitoring.settings import ImpactSettings


def treated_from_file(path: Path, area_ids: np.ndarray) -> list[str]:
    """Treated ``area_id`` values from a CSV with an ``area_id`` column. Raises
    :class:`CrimecastError` naming the file when the column is missing, the file is
    empty or an id is not an area of the graph."""
    path = Path(path)
    if not path.exists():
        raise CrimecastError(f"{path}: file not found", file=path,
                             hint="give a CSV with an area_id column")
    frame = pd.read_csv(path, dtype=str)
    if "area_id" not in frame.columns:
        raise CrimecastError(f"{path}: no 'area_id' column (columns: {list(frame.columns)})",
                             file=path, key="area_id",
                             hint="name the column of treated areas area_id")
    ids = sorted(set(frame["area_id"].dropna().str.strip()) - {""})
    if not ids:
        raise CrimecastError(f"{path}: no treated areas listed", file=path, key="area_id")
    unknown = sorted(set(ids) - set(np.asarray(area_ids, str)))
    if unknown:
        raise CrimecastError(f"{path}: {len(unknown)} area_id(s) are not areas of this city, "
                             f"e.g. {unknown[:3]}", file=path, key="area_id",
                             hint="use the area_id values of artifacts/areas.parquet")
    return ids


def treated_from_dosage(dosage: pd.DataFrame, kind: str, min_amount: float
                        ) -> tuple[list[str], pd.Timestamp | None, int]:
    """Treated areas from dosage rows (``week, area_id, kind, amount``): the areas whose
    mean weekly ``amount`` of ``kind`` over the weeks with any such dosage reaches
    ``min_amount``. Returns (area ids, first week, number of weeks); no ids and
    ``None`` when there is no such dosage."""
    rows = dosage[dosage["kind"] == kind]
    if rows.empty:
        return [], None, 0
    weeks = pd.DatetimeIndex(pd.to_datetime(rows["week"]).unique()).sort_values()
    span = pd.date_range(weeks[0], weeks[-1], freq="7D")
    per_area = rows.groupby(rows["area_id"].astype(str))["amount"].sum() / len(span)
    return sorted(per_area[per_area >= min_amount].index), span[0], len(span)


def run_impact(panel: Panel, graph: AreaGraph, treated_ids: list[str], start_week: str,
               weeks: int, settings: ImpactSettings,
               evaluation: EvaluationSettings | None = None) -> dict[str, Any]:
    """Both estimators overall, by category and by group for ``treated_ids`` treated for
    ``weeks`` weeks from the Monday ``start_week``. Returns the ``impact.json`` payload:
    the design (start, end, areas treated / in the buffer / controls) and the estimates
    of :func:`crimecast.impact.impact_by_subset`."""
    evaluation = evaluation or EvaluationSettings.load()
    data = panel_arrays(panel, graph)
    start = pd.Timestamp(start_week)
    if start not in data.weeks:
        raise CrimecastError(f"treatment start {start.date()} is not a week of the panel "
                             f"({data.weeks[0].date()} to {data.weeks[-1].date()})",
                             key="--start", hint="give the Monday of the first treated week")
    start_index = int(data.weeks.get_loc(start))
    if start_index + weeks > len(data.weeks):
        raise CrimecastError(f"the panel ends {data.weeks[-1].date()}, before the {weeks} "
                             f"treated weeks from {start.date()} are over", key="--weeks",
                             hint="shorten --weeks or refresh the data")
    if start_index < weeks + 4:
        raise CrimecastError(f"only {start_index} weeks of data before {start.date()}; the "
                             f"estimators need at least {weeks + 4}", key="--start")
    index = graph.node_index()
    treated = np.zeros(graph.num_nodes, bool)
    treated[[index[a] for a in treated_ids]] = True
    buffer = buffer_mask(treated, graph.edge_index)
    design = ImpactDesign(treated=treated, buffer=buffer, start=start_index, weeks=weeks,
                          pre_weeks=settings.pre_weeks, valid=~data.outage)
    history = data.until(start_index - 1)
    risk = recent_mean(history.counts, history.outage, settings.risk_weeks).sum(axis=1)
    groups = graph.areas["group"].astype(str).to_numpy()
    try:
        estimates = impact_by_subset(
            data.counts.astype(float), data.categories, groups, design, graph.edge_index,
            risk=risk, min_treated=settings.min_treated_areas,
            controls_per_area=settings.controls_per_area, draws=evaluation.bootstrap_draws,
            seed=evaluation.bootstrap_seed, level=evaluation.bootstrap_level,
            lag=evaluation.bootstrap_block_weeks - 1)
    except ValueError as exc:
        raise CrimecastError(f"impact: {exc}", file="configs/monitoring.yaml",
                             key="impact") from None
    end = data.weeks[start_index + weeks - 1]
    return {"design": {"start_week": str(start.date()), "end_week": str(end.date()),
                       "weeks": weeks, "treated_areas": int(treated.sum()),
                       "buffer_areas": int(buffer.sum()),
                       "control_pool": int(design.controls_pool.sum()),
                       "pre_weeks": settings.pre_weeks, "level": evaluation.bootstrap_level},
            **estimates}


def write_impact(result: dict[str, Any], path: Path) -> Path:
    """Write ``impact.json`` atomically (the one writer; :func:`read_impact` reads it)."""
    return write_json(path, result)


def read_impact(path: Path) -> dict[str, Any] | None:
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.0%}".replace("+-", "−").replace("-", "−")


def _ci(ci: list[float | None]) -> str:
    if ci is None or None in ci:
        return "n/a"
    return f"{_pct(ci[0])} to {_pct(ci[1])}"


def verdict(effect: float | None, ci: list[float | None]) -> str:
    """Plain words for a relative effect and its CI."""
    if effect is None or ci is None or None in ci:
        return "cannot tell (too little data)"
    if ci[1] < 0:
        return "crime fell, beyond chance"
    if ci[0] > 0:
        return "crime rose, beyond chance"
    return "no change we can tell from chance"


def did_it_work_html(result: dict[str, Any] | None, floor: int = 5) -> str:
    """The report's "Did it work?" section (an ``<h2>`` and what follows) from an
    ``impact.json`` payload; "no interventions recorded yet" when ``result`` is None.
    Only relative effects, CIs and numbers of areas appear; the WDD's net change in
    crimes is shown only when at least ``floor`` in size."""
    parts = ["<h2 id='impact'>Did it work?</h2>"]
    if result is None:
        parts.append("<p>No interventions recorded yet: once dosage is reported "
                     "(<code>/dosage</code> or <code>crimecast dosage import</code>) or a list "
                     "of treated areas is given, <code>crimecast impact</code> estimates the "
                     "effect here.</p>")
        return "\n".join(parts)
    design, overall = result["design"], result["all"]
    did, wdd = overall["did"], overall["wdd"]
    level = f"{design.get('level', 0.95):.0%}"
    net = wdd["wdd"]
    net_words = (f"about {abs(round(net))} {'fewer' if net < 0 else 'more'} crimes"
                 if abs(net) >= floor else f"fewer than {floor} crimes either way")
    parts += [
        (f"<p>{design['treated_areas']} areas were treated for {design['weeks']} weeks "
         f"({html.escape(design['start_week'])} to {html.escape(design['end_week'])}). "
         f"Two methods compare their recorded crime with what it would have been "
         f"({level} confidence intervals in brackets):</p>"),
        "<ul>",
        (f"<li><b>Matched comparison</b> (difference-in-differences against "
         f"{did['controls_per_area']} similar areas per treated area): "
         f"{_pct(did['effect'])} [{_ci(did['ci'])}] — {verdict(did['effect'], did['ci'])}."
         "</li>"),
        (f"<li><b>Weighted displacement difference</b> (against the rest of the city, equal "
         f"windows before and after): treated areas {_pct(wdd['treated']['effect'])} "
         f"[{_ci(wdd['treated']['ci'])}]; the {wdd['buffer']['areas']} neighbouring areas "
         f"{_pct(wdd['buffer']['effect'])} [{_ci(wdd['buffer']['ci'])}] — "
         f"{html.escape(wdd['displacement'])}. Net over both: {net_words}.</li>"),
        "</ul>",
    ]
    rows = [(name, est) for name, est in result.get("by_category", {}).items()]
    if rows:
        parts.append("<table><tr><th>category</th><th>matched comparison</th>"
                     "<th>displacement difference, treated</th><th>neighbours</th></tr>")
        for name, est in rows:
            parts.append(
                f"<tr><td>{html.escape(name)}</td>"
                f"<td>{_pct(est['did']['effect'])} [{_ci(est['did']['ci'])}]</td>"
                f"<td>{_pct(est['wdd']['treated']['effect'])} "
                f"[{_ci(est['wdd']['treated']['ci'])}]</td>"
                f"<td>{_pct(est['wdd']['buffer']['effect'])} "
                f"[{_ci(est['wdd']['buffer']['ci'])}]</td></tr>")
        parts.append("</table>")
    groups = result.get("by_group", {})
    if groups:
        parts.append("<table><tr><th>group of treated areas</th><th>matched comparison</th>"
                     "<th>displacement difference, treated</th></tr>")
        for label, est in groups.items():
            if "skipped" in est:
                parts.append(f"<tr><td>{html.escape(label)}</td><td colspan='2'>not estimated: "
                             f"{html.escape(est['skipped'])}</td></tr>")
                continue
            parts.append(f"<tr><td>{html.escape(label)}</td>"
                         f"<td>{_pct(est['did']['effect'])} [{_ci(est['did']['ci'])}]</td>"
                         f"<td>{_pct(est['wdd']['treated']['effect'])} "
                         f"[{_ci(est['wdd']['treated']['ci'])}]</td></tr>")
        parts.append("</table>")
    parts.append("<p class='note'>Recorded crime, not all crime: where patrols increase, more "
                 "may be recorded, which hides part of a real reduction.</p>")
    return "\n".join(parts)
