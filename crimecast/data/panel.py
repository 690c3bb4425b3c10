"""The weekly panel: counts per (area, week, category), zero rows included.

Weeks start on Monday (``incidents.week``). The panel spans the *full* weeks of the data:
from the first Monday on or after the first incident's local date (or ``period_start``
of the ingest report when the source knows its coverage) to the last week whose Sunday
is on or before the last local date (or ``period_end``). A partial first or last week
would look like a crime drop. Weeks the ingest report lists in ``outage_weeks`` (the
source's volume collapsed) are flagged ``outage``; with ``mask_outages: true`` models
and evaluation skip them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crimecast.contracts import (
    CATEGORIES,
    PANEL_COLUMNS,
    AreaGraph,
    ContractError,
    Panel,
    order_categories,
    validate_panel,
)
from crimecast.data.settings import DataSettings


def full_weeks(first_day: pd.Timestamp, last_day: pd.Timestamp) -> pd.DatetimeIndex:
    """Mondays of the complete weeks between two local dates (inclusive)."""
    first_day, last_day = pd.Timestamp(first_day).normalize(), pd.Timestamp(last_day).normalize()
    start = first_day + pd.Timedelta(days=(7 - first_day.dayofweek) % 7)
    # The last full week ends on the last Sunday on or before last_day.
    end_sunday = last_day - pd.Timedelta(days=(last_day.dayofweek + 1) % 7)
    end = end_sunday - pd.Timedelta(days=6)
    if end < start:
        return pd.DatetimeIndex([], name="week")
    return pd.date_range(start, end, freq="7D", name="week")


def build_panel(incidents: pd.DataFrame, area_ids: Iterable[str],
                weeks: pd.DatetimeIndex | None = None,
                outage_weeks: Iterable[str | pd.Timestamp] = (),
                categories: Iterable[str] | None = None) -> pd.DataFrame:
    """Panel rows from incidents.

    Inputs: ``incidents`` with ``area_id``, ``week`` (Monday, tz-naive), ``category`` and
    ``occurred_at`` (used only when ``weeks`` is None, to find the full weeks);
    ``area_ids`` in node order; ``outage_weeks`` (Mondays); ``categories`` (default: those
    the incidents have, in :func:`~crimecast.contracts.order_categories` order).
    Returns a frame with :data:`PANEL_COLUMNS`, one row per (area, week, category) in
    (area order, week, category order); incidents outside ``weeks`` or with an unknown
    area/category are not counted.
    """
    missing = [c for c in ("area_id", "week", "category") if c not in incidents.columns]
    if missing:
        raise ContractError(f"incidents.parquet: missing column(s) {missing}")
    area_ids = [str(a) for a in area_ids]
    categories = (order_categories(incidents["category"].unique()) if categories is None
                  else list(categories))
    if weeks is None:
        if incidents.empty:
            raise ContractError("incidents.parquet: no incidents, so no weeks for the panel")
        local = pd.to_datetime(incidents["occurred_at"])
        if getattr(local.dt, "tz", None) is not None:
            local = local.dt.tz_localize(None)
        weeks = full_weeks(local.min(), local.max())
    if len(weeks) == 0:
        raise ContractError("incidents.parquet: the data do not span a single full week")
    week_values = pd.to_datetime(incidents["week"])
    if getattr(week_values.dt, "tz", None) is not None:
        week_values = week_values.dt.tz_localize(None)
    area_code = pd.Categorical(incidents["area_id"].astype(str), categories=area_ids).codes
    week_code = pd.Categorical(week_values.dt.normalize(), categories=weeks).codes
    cat_code = pd.Categorical(incidents["category"], categories=list(categories)).codes
    keep = (area_code >= 0) & (week_code >= 0) & (cat_code >= 0)
    shape = (len(area_ids), len(weeks), len(categories))
    flat = np.ravel_multi_index((area_code[keep], week_code[keep], cat_code[keep]), shape)
    counts = np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)
    return panel_from_array(counts, area_ids, weeks, categories, outage_weeks)


def panel_from_array(counts: np.ndarray, area_ids: Iterable[str], weeks: pd.DatetimeIndex,
                     categories: Iterable[str] = CATEGORIES,
                     outage_weeks: Iterable[str | pd.Timestamp] = ()) -> pd.DataFrame:
    """Long panel frame (:data:`PANEL_COLUMNS`) from a dense ``[areas, weeks, categories]``
    count array (the inverse of :func:`panel_arrays`)."""
    area_ids, categories = np.asarray(list(area_ids), dtype=str), list(categories)
    n_areas, n_weeks, n_cats = counts.shape
    if (n_areas, n_weeks, n_cats) != (len(area_ids), len(weeks), len(categories)):
        raise ValueError(f"counts shape {counts.shape} does not match {len(area_ids)} areas, "
                         f"{len(weeks)} weeks, {len(categories)} categories")
    outages = pd.DatetimeIndex(pd.to_datetime(list(outage_weeks)))
    week_values = pd.DatetimeIndex(weeks).values.astype("datetime64[ns]")
    # area_id and category as categoricals: one code per row instead of one string object
    # (an H3 r10 panel of 14k cells x 521 weeks x 3 categories: 2.5 GiB instead of 12.9).
    frame = pd.DataFrame({
        "area_id": pd.Categorical.from_codes(
            np.repeat(np.arange(n_areas, dtype=np.int32), n_weeks * n_cats),
            categories=pd.Index(area_ids, dtype=object)),
        "week": np.tile(np.repeat(week_values, n_cats), n_areas),
        "category": pd.Categorical.from_codes(
            np.tile(np.arange(n_cats, dtype=np.int16), n_areas * n_weeks),
            categories=pd.Index(categories, dtype=object)),
        "count": counts.reshape(-1).astype(np.int64),
    })
    frame["outage"] = frame["week"].isin(outages)
    return validate_panel(frame[list(PANEL_COLUMNS)], "panel")


def target_panel(panel: Panel, excluded: Iterable[str] | None = None) -> Panel:
    """The panel the patrol model learns from: ``panel`` without the ``excluded``
    categories (default: ``enforcement_categories`` of configs/data.yaml, offences recorded
    mostly where police look). ``panel.parquet`` keeps every category."""
    if excluded is None:
        excluded = DataSettings.load().enforcement_categories
    excluded = set(excluded)
    if not excluded & set(panel.counts["category"].unique()):
        return panel
    return Panel(panel.counts[~panel.counts["category"].isin(excluded)].reset_index(drop=True))


@dataclass(frozen=True)
class PanelArrays:
    """A panel as dense arrays in the graph's node order.

    ``counts``: float32 ``[A, W, C]``; ``outage``: bool ``[W]`` (weeks to mask);
    ``weeks``: the ``W`` Mondays; ``categories``: the ``C`` category names.
    """

    counts: np.ndarray
    outage: np.ndarray
    weeks: pd.DatetimeIndex
    categories: list[str]

    @property
    def last_week(self) -> pd.Timestamp:
        return pd.Timestamp(self.weeks[-1])

    def until(self, index: int) -> PanelArrays:
        """The weeks ``0..index`` (inclusive), like :meth:`Panel.until` on arrays."""
        stop = index + 1
        return PanelArrays(self.counts[:, :stop], self.outage[:stop], self.weeks[:stop],
                           self.categories)

    def without_outages(self) -> PanelArrays:
        """The same arrays with no week masked (for models with ``mask_outages=False``)."""
        return PanelArrays(self.counts, np.zeros_like(self.outage), self.weeks,
                           self.categories)


def _positions(index: pd.Index, values: pd.Series) -> np.ndarray:
    """``index.get_indexer(values)``; for a categorical column, through its categories
    (one lookup per distinct value, no string array of every row: an H3 r10 panel has
    40 M rows)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        lookup = np.append(index.get_indexer(values.cat.categories.astype(str)), -1)
        return lookup[np.where(codes < 0, len(lookup) - 1, codes)]
    return index.get_indexer(values)


def panel_arrays(panel: Panel, graph: AreaGraph) -> PanelArrays:
    """Turn a panel into dense ``[A, W, C]`` counts in ``graph.area_ids`` order.

    Weeks run on a regular 7-day grid from the first to the last week of the panel; a week
    with no rows at all is a gap, filled with zeros and treated as an outage, as is any
    week with a row flagged ``outage``. Categories follow :attr:`Panel.categories`.
    Scatters rows straight into the array (no pivot table), so a 100k-area panel costs
    little more than the array itself. Raises :class:`ContractError` when the panel is empty
    or has areas the graph lacks.
    """
    frame = panel.counts
    if frame.empty:
        raise ContractError("panel is empty: no (area_id, week, category) rows to learn from")
    area_pos = _positions(pd.Index(np.asarray(graph.area_ids, dtype=str)), frame["area_id"])
    if (area_pos < 0).any():
        unknown = sorted(set(frame["area_id"][area_pos < 0].astype(str)))
        raise ContractError(f"panel has {len(unknown)} area_id(s) missing from the graph, "
                         f"e.g. {unknown[:3]}")
    cats = panel.categories
    # factorize first: a lookup per distinct week, not per row
    week_codes, week_uniques = pd.factorize(frame["week"])
    week_uniques = pd.DatetimeIndex(week_uniques)
    weeks = pd.date_range(week_uniques.min(), week_uniques.max(), freq="7D")
    unique_pos = weeks.get_indexer(week_uniques)
    if (unique_pos < 0).any():
        odd = week_uniques[unique_pos < 0][0]
        raise ContractError(f"panel week {odd} is not on the weekly grid starting {weeks[0]}")
    week_pos = unique_pos[week_codes]
    cat_pos = _positions(pd.Index(cats), frame["category"])
    shape = (graph.num_nodes, len(weeks), len(cats))
    flat = np.ravel_multi_index((area_pos, week_pos, cat_pos), shape)
    counts = np.bincount(flat, weights=frame["count"].to_numpy(np.float64),
                         minlength=int(np.prod(shape))).reshape(shape).astype(np.float32)
    present = np.zeros(len(weeks), dtype=bool)
    present[np.unique(week_pos)] = True
    outage = ~present
    flagged = frame["outage"].to_numpy(dtype=bool)
    outage[np.unique(week_pos[flagged])] = True
    return PanelArrays(counts=counts, outage=outage, weeks=weeks, categories=cats)
