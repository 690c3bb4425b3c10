"""The served forecast: one model version's full table, indexed for constant-time answers.

A :class:`ForecastStore` is built once per model version (the model is called once, for
all horizons) and is immutable afterwards; the service swaps the whole store when the
champion changes, so a request sees one consistent version from start to end.

Requests never call the model: ``forecast`` picks pre-built rows, ``hotspots`` and
``allocate`` work on a ``[areas]`` risk vector per (horizon, category).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crimecast.contracts import FORECAST_COLUMNS, validate_forecast
from crimecast.dosage import validate_dosage
from crimecast.forecast.allocation import (
    allocate_units,
    outreach_weights,
    randomise_near_cutoff,
    select_hotspots,
)
from serving.schemas import (
    AllocateRequest,
    AllocateResponse,
    AreaUnits,
    DosageRequest,
    Feature,
    ForecastRequest,
    ForecastResponse,
    ForecastRow,
    GroupShare,
    Hotspot,
    HotspotsRequest,
    HotspotsResponse,
    ModelCard,
    ModelResponse,
    OutcomesRequest,
    TrialInfo,
)
from serving.settings import ServingSettings

VALUE_COLUMNS = ("mean", "lower_80", "upper_80", "lower_95", "upper_95")
ALL = "all"
# Listing every unknown id in a 422 could echo a huge request back; the count is enough.
_MAX_LISTED = 20


@dataclass(frozen=True)
class AreaInfo:
    """Per-area attributes aligned with the store's area order."""

    land_area_km2: np.ndarray  # float [A], NaN when unknown
    pct_poverty: np.ndarray  # float [A], 0-100, NaN when unknown
    group: np.ndarray  # str [A]
    geometry: list[dict[str, Any] | None]  # GeoJSON geometry per area (simplified)


def area_info(area_ids: list[str], areas: pd.DataFrame, settings: ServingSettings,
              geometry: dict[str, dict[str, Any]] | None = None) -> AreaInfo:
    """Align demographic columns of ``areas`` (index ``area_id``) with ``area_ids``;
    areas missing from the table get NaN values and group ``"unknown"``."""
    table = areas.reindex(area_ids)
    group_col = settings.allocation.group_column
    vuln_col = settings.allocation.vulnerability_column

    def numeric(column: str) -> np.ndarray:
        if column not in table.columns:
            return np.full(len(area_ids), np.nan)
        return pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)

    groups = (table[group_col].astype("string").fillna("unknown").to_numpy(dtype=str)
              if group_col in table.columns else np.full(len(area_ids), "unknown"))
    geometry = geometry or {}
    return AreaInfo(land_area_km2=numeric("land_area_km2"), pct_poverty=numeric(vuln_col),
                    group=groups, geometry=[geometry.get(a) for a in area_ids])


def read_areas(path: Path, tolerance: float) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """``areas.parquet`` as (attributes indexed by area_id, simplified GeoJSON geometry
    per area). Simplification keeps topology and drops detail below ``tolerance`` degrees."""
    import geopandas as gpd
    import shapely

    frame = gpd.read_parquet(path)
    if "area_id" not in frame.columns:
        raise ValueError(f"{path}: missing column 'area_id'")
    frame["area_id"] = frame["area_id"].astype(str)
    geometry: dict[str, dict[str, Any]] = {}
    if "geometry" in frame.columns:
        shapes = frame.geometry.to_crs(4326) if frame.crs is not None else frame.geometry
        if tolerance > 0:
            shapes = shapes.simplify(tolerance, preserve_topology=True)
        shapes = shapely.set_precision(shapes.to_numpy(), 1e-6)
        for area_id, shape in zip(frame["area_id"], shapes, strict=True):
            if shape is not None and not shape.is_empty:
                geometry[area_id] = json.loads(shapely.to_geojson(shape))
    attributes = pd.DataFrame(frame.drop(columns="geometry", errors="ignore"))
    return attributes.set_index("area_id"), geometry


def _h3_resolution(area_ids: list[str]) -> int | None:
    """The resolution shared by ``area_ids`` when every one is an H3 cell, else None."""
    import h3

    from crimecast.data.units import is_h3_cell

    if not area_ids or not all(is_h3_cell(a) for a in area_ids):
        return None
    resolutions = {h3.get_resolution(a) for a in area_ids}
    return resolutions.pop() if len(resolutions) == 1 else None


class ForecastStore:
    """One model version's forecasts, indexed by (horizon, category, area).

    ``forecast``: the model's full table (:data:`FORECAST_COLUMNS`, every area x category x
    horizon). ``areas``: attributes per area (index ``area_id``; ``land_area_km2``, the
    vulnerability and group columns named in settings). ``geometry``: GeoJSON per area.
    """

    def __init__(self, forecast: pd.DataFrame, card: ModelCard, areas: pd.DataFrame,
                 settings: ServingSettings,
                 geometry: dict[str, dict[str, Any]] | None = None) -> None:
        forecast = validate_forecast(forecast, f"model {card.model_name} v{card.version}")
        forecast = forecast[list(FORECAST_COLUMNS)].copy()
        forecast["area_id"] = forecast["area_id"].astype(str)
        forecast["category"] = forecast["category"].astype(str)
        forecast["horizon"] = forecast["horizon"].astype(int)
        forecast["week"] = pd.to_datetime(forecast["week"])
        self.card = card
        self.settings = settings
        self.table = forecast.reset_index(drop=True)
        self.area_ids: list[str] = sorted(forecast["area_id"].unique())
        self.area_index = {a: i for i, a in enumerate(self.area_ids)}
        self.categories: list[str] = sorted(forecast["category"].unique())
        self.horizons: list[int] = sorted(int(h) for h in forecast["horizon"].unique())
        self.target_week: dict[int, date] = {
            int(h): pd.Timestamp(w).date()
            for h, w in forecast.groupby("horizon")["week"].first().items()}

        # values[h, c, a, :] = (mean, lower_80, upper_80, lower_95, upper_95)
        full = pd.MultiIndex.from_product([self.horizons, self.categories, self.area_ids],
                                          names=["horizon", "category", "area_id"])
        dense = forecast.set_index(["horizon", "category", "area_id"])[list(VALUE_COLUMNS)]
        if dense.index.duplicated().any():
            raise ValueError(f"model v{card.version}: duplicate (horizon, category, area_id) rows")
        dense = dense.reindex(full)
        if dense.isna().any().any():
            missing = dense.index[dense.isna().any(axis=1)][:3].tolist()
            raise ValueError(f"model v{card.version}: forecast table is not complete "
                             f"(every horizon x category x area), e.g. missing {missing}")
        self.values = dense.to_numpy(np.float64).reshape(
            len(self.horizons), len(self.categories), len(self.area_ids), len(VALUE_COLUMNS))

        # Pre-built response rows: a request only gathers references.
        self._rows: dict[tuple[int, str], list[ForecastRow]] = {}
        for hi, h in enumerate(self.horizons):
            for ci, c in enumerate(self.categories):
                v = self.values[hi, ci]
                self._rows[(h, c)] = [
                    ForecastRow.model_construct(
                        area_id=a, category=c, week=self.target_week[h], horizon=h,
                        mean=float(v[ai, 0]), lower_80=float(v[ai, 1]), upper_80=float(v[ai, 2]),
                        lower_95=float(v[ai, 3]), upper_95=float(v[ai, 4]))
                    for ai, a in enumerate(self.area_ids)]
        self.info = area_info(self.area_ids, areas, settings, geometry)
        # The H3 resolution when the areas are H3 cells (None for tracts and the like).
        self.h3_resolution: int | None = _h3_resolution(self.area_ids)

    # -- validation that depends on the model and the limits -----------------------------
    def problems(self, endpoint: str, request: Any) -> list[dict[str, str]]:
        """What is wrong with an already schema-valid request (empty list = fine)."""
        limits = self.settings.limits
        found: list[dict[str, str]] = []
        horizon = getattr(request, "horizon", None)
        if horizon is not None and horizon not in self.horizons:
            found.append({"field": "horizon",
                          "problem": f"horizon {horizon} not served; known: {self.horizons}"})
        category = getattr(request, "category", None)
        if category is not None and category not in self.categories:
            found.append({"field": "category", "problem": f"unknown category {category!r}; "
                                                          f"known: {self.categories}"})
        if isinstance(request, ForecastRequest) and request.area_ids is not None:
            if len(request.area_ids) > limits.max_area_ids:
                found.append({"field": "area_ids", "problem": f"{len(request.area_ids)} ids; "
                              f"at most {limits.max_area_ids} per request"})
            else:
                unknown = [a for a in request.area_ids if a not in self.area_index]
                if unknown:
                    found.append({"field": "area_ids", "problem": f"{len(unknown)} unknown "
                                  f"area id(s): {unknown[:_MAX_LISTED]}"
                                  f"{self._why_unknown(unknown)}"})
        if isinstance(request, HotspotsRequest):
            if request.k is not None and request.area_share is not None:
                found.append({"field": "k", "problem": "give k or area_share, not both"})
            if request.k is not None and request.k > limits.max_hotspots:
                found.append({"field": "k", "problem": f"at most {limits.max_hotspots}"})
        if isinstance(request, AllocateRequest) and request.units > limits.max_units:
            found.append({"field": "units", "problem": f"at most {limits.max_units} units"})
        if isinstance(request, OutcomesRequest):
            found.extend(self._outcome_problems(request))
        if isinstance(request, DosageRequest):
            found.extend(self._dosage_problems(request))
        return found

    def _why_unknown(self, unknown: list[str]) -> str:
        """For a model of H3 cells: which unknown ids are not H3 cells at the model's
        resolution at all, and which are cells outside the city ('' for other units)."""
        from crimecast.data.units import is_h3_cell

        if not self.h3_resolution:
            return ""
        malformed = [a for a in unknown if not is_h3_cell(a, self.h3_resolution)]
        outside = [a for a in unknown if a not in set(malformed)]
        parts = []
        if malformed:
            parts.append(f"not H3 cells at resolution {self.h3_resolution}: "
                         f"{malformed[:_MAX_LISTED]}")
        if outside:
            parts.append(f"H3 cells outside the city: {outside[:_MAX_LISTED]}")
        return " (" + "; ".join(parts) + ")"

    def _dosage_problems(self, request: DosageRequest) -> list[dict[str, str]]:
        """The dosage contract (crimecast.dosage) on the posted rows: every problem with
        its row, e.g. ``dosage[2].week``."""
        limits = self.settings.limits
        if len(request.dosage) > limits.max_outcomes:
            return [{"field": "dosage", "problem": f"{len(request.dosage)} rows; at most "
                                                   f"{limits.max_outcomes} per request"}]
        frame = pd.DataFrame([r.model_dump() for r in request.dosage])
        _, problems = validate_dosage(frame, self.area_ids)
        return [{"field": f"dosage[{p.row}].{p.column}", "problem": p.message}
                for p in problems[:_MAX_LISTED * 5]]

    def _outcome_problems(self, request: OutcomesRequest) -> list[dict[str, str]]:
        limits = self.settings.limits
        if len(request.outcomes) > limits.max_outcomes:
            return [{"field": "outcomes", "problem": f"{len(request.outcomes)} rows; at most "
                                                     f"{limits.max_outcomes} per request"}]
        found: list[dict[str, str]] = []
        # A week (Monday to Sunday) is finished once its Sunday is over everywhere.
        last_finished = datetime.now(UTC).date() - timedelta(days=8)
        first = self.card.first_observed_week
        for i, row in enumerate(request.outcomes):
            where = f"outcomes[{i}]"
            if row.week.weekday() != 0:
                found.append({"field": f"{where}.week", "problem": f"{row.week} is not a Monday"})
            elif row.week > last_finished:
                found.append({"field": f"{where}.week", "problem": f"the week of {row.week} "
                              "is not finished yet (or is in the future)"})
            elif first is not None and row.week < first:
                found.append({"field": f"{where}.week", "problem": f"{row.week} is before the "
                              f"data's first week {first}"})
            if row.area_id not in self.area_index:
                found.append({"field": f"{where}.area_id",
                              "problem": f"unknown area id {row.area_id!r}"
                                         f"{self._why_unknown([row.area_id])}"})
            if row.category not in self.categories:
                found.append({"field": f"{where}.category",
                              "problem": f"unknown category {row.category!r}"})
            if len(found) >= _MAX_LISTED:
                found.append({"field": "outcomes", "problem": "more problems not listed"})
                break
        keys = [(r.week, r.area_id, r.category) for r in request.outcomes]
        if len(set(keys)) != len(keys):
            found.append({"field": "outcomes",
                          "problem": "duplicate (week, area_id, category) rows in one request"})
        return found

    # -- answers ---------------------------------------------------------------------------
    def risk(self, horizon: int, category: str | None) -> np.ndarray:
        """Expected counts ``[areas]`` for one category, or summed over all (None)."""
        hi = self.horizons.index(horizon)
        if category is None:
            return self.values[hi, :, :, 0].sum(axis=0)
        return self.values[hi, self.categories.index(category), :, 0]

    def forecast(self, request: ForecastRequest) -> ForecastResponse:
        categories = [request.category] if request.category else self.categories
        rows: list[ForecastRow] = []
        for c in categories:
            table = self._rows[(request.horizon, c)]
            if request.area_ids is None:
                rows.extend(table)
            else:
                rows.extend(table[self.area_index[a]] for a in request.area_ids)
        return ForecastResponse.model_construct(
            model_version=self.card.version, data_week=self.card.last_observed_week,
            target_week=self.target_week[request.horizon], horizon=request.horizon,
            forecasts=rows)

    def hotspots(self, request: HotspotsRequest) -> HotspotsResponse:
        risk = self.risk(request.horizon, request.category)
        land = self.info.land_area_km2
        area_share = request.area_share
        if request.k is None and area_share is None:
            area_share = self.settings.hotspots.default_area_share
        chosen = select_hotspots(risk, land, k=request.k,
                                 area_share=None if request.k is not None else area_share)
        total_land = float(np.nansum(land))
        total_risk = float(risk.sum())
        spots = []
        for rank, i in enumerate(chosen, start=1):
            area_km2 = float(land[i]) if np.isfinite(land[i]) else None
            spots.append(Hotspot(
                rank=rank, area_id=self.area_ids[i], expected_count=float(risk[i]),
                density_per_km2=float(risk[i] / land[i]) if area_km2 else None,
                land_area_km2=area_km2, group=str(self.info.group[i])))
        covered = float(np.nansum(land[chosen]) / total_land) if total_land > 0 else 0.0
        captured = float(risk[chosen].sum() / total_risk) if total_risk > 0 else 0.0
        meta: dict[str, Any] = {
            "model_version": self.card.version, "data_week": self.card.last_observed_week,
            "target_week": self.target_week[request.horizon], "horizon": request.horizon,
            "category": request.category or ALL,
            "selection": "k" if request.k is not None else "area_share",
            "area_share_covered": covered, "expected_share_captured": captured}
        if request.format == "geojson":
            features = [Feature(id=s.area_id, geometry=self.info.geometry[i], properties=s)
                        for s, i in zip(spots, chosen, strict=True)]
            return HotspotsResponse(type="FeatureCollection", features=features, **meta)
        return HotspotsResponse(hotspots=spots, **meta)

    def allocate(self, request: AllocateRequest) -> AllocateResponse:
        risk = self.risk(request.horizon, request.category)
        if request.kind == "outreach":
            weight = outreach_weights(risk, self.info.pct_poverty)
            weighting = (f"expected count x {self.settings.allocation.vulnerability_column} "
                         "(share of residents below the poverty line; unknown = city median). "
                         "Youth share is not in the Philadelphia data, so it is not used.")
        else:
            weight = risk
            weighting = "expected count"
        cap_ratio = None
        if request.cap:
            cap_ratio = request.cap_ratio or self.settings.allocation.group_cap_ratio
        result = allocate_units(np.asarray(self.area_ids), risk, weight, self.info.group,
                                request.units, cap_ratio)
        trial = None
        config = self.settings.allocation
        if config.trial_share > 0:
            seed = (request.trial_seed if request.trial_seed is not None
                    else secrets.randbelow(2**63))
            drawn = randomise_near_cutoff(result.by_area["units"].to_numpy(), weight,
                                          config.trial_share, config.trial_tolerance, seed)
            result = result.with_units(drawn.units)
            ids = np.asarray(self.area_ids).astype(str)
            trial = TrialInfo(seed=drawn.seed, share=config.trial_share,
                              tolerance=config.trial_tolerance,
                              cutoff_risk=float(np.nan_to_num(drawn.cutoff)),
                              trial_units=drawn.trial_units, band=ids[drawn.band].tolist(),
                              randomised=ids[drawn.randomised].tolist())
        given = result.by_area[result.by_area["units"] > 0].sort_values(
            ["units", "risk"], ascending=False)
        allocations = [AreaUnits(area_id=r.area_id, group=r.group, expected_count=r.risk,
                                 weight=r.weight, units=int(r.units))
                       for r in given.itertuples(index=False)]
        groups = [GroupShare(group=r.group, risk_share=r.risk_share, units=int(r.units),
                             unit_share=r.unit_share,
                             ratio=None if pd.isna(r.ratio) else float(r.ratio),
                             capped=bool(r.capped))
                  for r in result.by_group.itertuples(index=False)]
        return AllocateResponse(
            model_version=self.card.version, data_week=self.card.last_observed_week,
            target_week=self.target_week[request.horizon], horizon=request.horizon,
            category=request.category or ALL, kind=request.kind, units=request.units,
            cap_ratio=cap_ratio, weighting=weighting, allocations=allocations, groups=groups,
            trial=trial)

    def model_response(self) -> ModelResponse:
        return ModelResponse(**self.card.model_dump(), areas=len(self.area_ids),
                             categories=self.categories, horizons=self.horizons)


def card_from_metadata(metadata: dict[str, Any], version: str, alias: str,
                       forecast: pd.DataFrame, first_week: date | None = None) -> ModelCard:
    """A :class:`ModelCard` from the pyfunc's ``metadata`` dict (written by
    crimecast.lifecycle.tracking); the last observed week falls back to one week before the
    earliest target week, the first observed week to ``first_week`` (models trained before
    it was recorded: the panel artifact's first week, when there is one)."""
    last = metadata.get("last_observed_week")
    if last:
        last_week = pd.Timestamp(last).date()
    else:
        first_target = pd.to_datetime(forecast["week"]).min()
        last_week = (first_target - pd.Timedelta(weeks=1)).date()
    first = metadata.get("first_observed_week")
    return ModelCard(
        model_name=str(metadata.get("model_name", "unknown")), version=str(version),
        alias=alias, data_version=metadata.get("data_version"),
        first_observed_week=pd.Timestamp(first).date() if first else first_week,
        last_observed_week=last_week,
        trained_at=metadata.get("trained_at"),
        backtest_metrics=dict(metadata.get("backtest_metrics") or {}),
        city=metadata.get("city"))
