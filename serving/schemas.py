"""Request and response bodies of the prediction API (pydantic, published in /docs.json).

Field-level rules (types, ranges) live here; rules that depend on the loaded model (known
tract ids and categories) and on configured limits are checked by
:func:`serving.store.ForecastStore.problems`. Both kinds of failure answer 422 with a body
``{"error": "invalid request", "problems": [{"field": ..., "problem": ...}, ...]}``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    # Unknown fields are mistakes (a typo'd "horizen" must not silently mean the default),
    # and so are values of the wrong JSON type: "1" or true is not a horizon.
    model_config = ConfigDict(extra="forbid", strict=True)


Horizon = Field(1, ge=1, le=4, description="Weeks ahead of the last observed week (1-4).")
CategoryField = Field(None, description="Crime category; null means all categories "
                                        "(summed for hotspots and allocation).")


# ---- requests --------------------------------------------------------------------------
class ForecastRequest(_Strict):
    area_ids: list[str] | None = Field(
        None, description="Census tract ids; null means every tract.")
    horizon: int = Horizon
    category: str | None = CategoryField


class HotspotsRequest(_Strict):
    horizon: int = Horizon
    category: str | None = CategoryField
    k: int | None = Field(None, ge=1, description="Return the k tracts with the highest "
                                                  "expected count.")
    area_share: float | None = Field(
        None, ge=1e-6, le=1.0,  # ge, not gt: BentoML's OpenAPI 3.0 needs a boolean exclusiveMinimum
        description="Return the densest tracts (expected count per km²) covering this share "
                    "of the city's land area. If neither k nor area_share is given, the "
                    "configured default share is used.")
    format: Literal["json", "geojson"] = Field(
        "json", description="'geojson' returns a FeatureCollection of simplified tract "
                            "polygons for map layers.")


class AllocateRequest(_Strict):
    units: int = Field(..., ge=1, description="Number of patrol units or outreach slots.")
    kind: Literal["patrol", "outreach"] = Field(
        "patrol", description="patrol: units follow forecast risk. outreach: units follow "
                              "risk weighted by the tract's poverty share.")
    horizon: int = Horizon
    category: str | None = CategoryField
    cap: bool = Field(True, description="Keep every demographic group's share of units "
                                        "within cap_ratio of its share of forecast risk.")
    cap_ratio: float | None = Field(
        None, ge=1.0, le=100.0,
        description="Allowed ratio (>= 1); null means the configured default.")
    trial_seed: int | None = Field(
        None, ge=0, le=2**63 - 1,
        description="Trial mode only (serving.yaml allocation.trial_share > 0): the seed "
                    "of the random assignment, to reproduce a recorded one; null draws one.")


class OutcomeRow(_Strict):
    week: date = Field(..., description="Monday of a finished week, not before the data's "
                                        "first week.")
    area_id: str
    category: str
    count: int = Field(..., ge=0, le=1_000_000)


class OutcomesRequest(_Strict):
    outcomes: list[OutcomeRow] = Field(..., min_length=1)


class DosageRow(_Strict):
    week: date = Field(..., description="Monday of the week the dosage was delivered "
                                        "(not in the future).")
    area_id: str
    kind: Literal["patrol_minutes", "outreach_contacts", "programme_enrolments"]
    amount: float = Field(..., ge=0, le=10_000_000, description="In the kind's unit.")
    source: str = Field(..., min_length=1, max_length=64,
                        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$",
                        description="Short label of who reports it (e.g. cad-export), never "
                                    "a name.")


class DosageRequest(_Strict):
    dosage: list[DosageRow] = Field(..., min_length=1)


class EmptyRequest(_Strict):
    """No parameters."""


# ---- responses -------------------------------------------------------------------------
class ForecastRow(BaseModel):
    area_id: str
    category: str
    week: date
    horizon: int
    mean: float = Field(description="Expected count.")
    lower_80: float
    upper_80: float
    lower_95: float
    upper_95: float


class ForecastResponse(BaseModel):
    model_version: str
    data_week: date = Field(description="Last observed week the model saw.")
    target_week: date
    horizon: int
    forecasts: list[ForecastRow]


class Hotspot(BaseModel):
    rank: int
    area_id: str
    expected_count: float
    density_per_km2: float | None
    land_area_km2: float | None
    group: str | None


class Feature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: dict[str, Any] | None
    properties: Hotspot


class HotspotsResponse(BaseModel):
    """Hotspots as a list (``format: json``) or, for ``format: geojson``, as a GeoJSON
    FeatureCollection (``type`` + ``features``, the other fields being foreign members)
    of simplified tract polygons. Fields of the other format are null."""

    type: Literal["FeatureCollection"] | None = None
    features: list[Feature] | None = None
    model_version: str
    data_week: date
    target_week: date
    horizon: int
    category: str = Field(description="The category, or 'all'.")
    selection: Literal["k", "area_share"]
    area_share_covered: float
    expected_share_captured: float = Field(
        description="Share of the city's expected count inside the hotspots.")
    hotspots: list[Hotspot] | None = None


class AreaUnits(BaseModel):
    area_id: str
    group: str
    expected_count: float
    weight: float
    units: int


class GroupShare(BaseModel):
    group: str
    risk_share: float
    units: int
    unit_share: float
    ratio: float | None = Field(description="unit_share / risk_share.")
    capped: bool


class TrialInfo(BaseModel):
    """Trial mode's random assignment, reproducible from ``seed``."""

    seed: int
    share: float = Field(description="Configured share of the units assigned at random.")
    tolerance: float = Field(description="Relative distance from the cut-off of the band.")
    cutoff_risk: float = Field(description="Lowest weight that got a unit in the plan (the "
                                           "expected count for patrol).")
    trial_units: int = Field(description="Units assigned at random.")
    band: list[str] = Field(description="Areas near the cut-off the draw was among.")
    randomised: list[str] = Field(description="Areas that got a trial unit (one entry "
                                              "per unit).")


class AllocateResponse(BaseModel):
    model_version: str
    data_week: date
    target_week: date
    horizon: int
    category: str
    kind: Literal["patrol", "outreach"]
    units: int
    cap_ratio: float | None
    weighting: str
    allocations: list[AreaUnits] = Field(description="Tracts that received units.")
    groups: list[GroupShare]
    trial: TrialInfo | None = Field(None, description="Set in trial mode.")


class OutcomesResponse(BaseModel):
    written: int
    weeks: list[date]


class DosageResponse(BaseModel):
    written: int
    superseded: int = Field(description="Rows that replace an earlier value for the same "
                                        "week, area, kind and source (kept as history).")
    weeks: list[date]


class ModelCard(BaseModel):
    """Who answers: the registered model version and what it was trained on."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    alias: str
    data_version: str | None
    first_observed_week: date | None = Field(
        None, description="First week of the training data; outcomes before it are refused.")
    last_observed_week: date
    trained_at: str | None
    backtest_metrics: dict[str, Any]
    city: dict[str, str] | None = Field(
        None, description="The city the model forecasts: name, unit_label (what one area "
        "is called), source and licence of its data.")
    loaded_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ModelResponse(ModelCard):
    areas: int
    categories: list[str]
    horizons: list[int]
    worker_id: str | None = Field(None, description="The worker process that answered.")


class WorkerVersion(BaseModel):
    worker_id: str
    version: str | None


class ReloadResponse(BaseModel):
    previous_version: str | None
    version: str
    changed: bool = Field(description="Whether the worker that answered swapped.")
    all_swapped: bool = Field(True, description="Every live worker serves `version`.")
    workers: list[WorkerVersion] = Field(default_factory=list,
                                         description="Each live worker's version.")


# ---- error bodies (answered by serving.gateway; documented in /docs.json) ---------------
class ErrorBody(BaseModel):
    error: str = Field(examples=["unauthorized"])


class ForbiddenBody(ErrorBody):
    scope: str = Field(description="The scope the endpoint needs.", examples=["outcomes"])


class TooLargeBody(ErrorBody):
    limit_bytes: int


class HeadersTooLargeBody(ErrorBody):
    limit_headers: int
    limit_header_bytes: int


class Problem(BaseModel):
    field: str = Field(description="Dotted path of the field, or (body).")
    problem: str


class InvalidRequestBody(ErrorBody):
    problems: list[Problem]
