"""Settings of the data concern: ``configs/data.yaml``, typed.

One :class:`DataSettings` holds everything that shapes the data stages (ingest, areas,
graph, panel): which source, where its raw snapshot lives, the city's time zone, the
offense-code map, the outage detector, how areas are grouped for fairness checks and how
the adjacency graph is built. Override any key with ``CRIMECAST_DATA__<KEY>`` (nested keys
joined with ``__``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crimecast.config import ConcernSettings

# Philadelphia UCR "hundreds" codes (ucr_general). Part I violent + other assaults (800):
# simple assaults are interpersonal violence and are the bulk of violent calls for service.
# Property = Part I property (burglary, theft, motor-vehicle theft, arson) plus vandalism
# (1400), which is damage to property. Enforcement-driven offences (why: below) are their
# own category; fraud/forgery/embezzlement, stolen property, other sex offences,
# offences against the family and "all other" are "other".
DEFAULT_CATEGORIES: dict[str, list[str | int]] = {
    "violent": [100, 200, 300, 400, 800],
    "property": [500, 600, 700, 900, 1400],
    "other": [1000, 1100, 1200, 1300, 1700, 2000, 2600],
    "enforcement": [1500, 1600, 1800, 1900, 2100, 2200, 2300, 2400, 2500],
}
# Why weapons (1500), prostitution (1600), narcotics (1800), gambling (1900), DUI (2100),
# liquor laws (2200), public drunkenness (2300), disorderly conduct (2400) and vagrancy /
# loitering (2500) are "enforcement-driven": they have no complaining victim, so a record
# exists mostly when police look (proactive mobilisation, Black 1970, "Production of crime
# rates", Am. Sociol. Rev. 35(4)); drug arrests follow where police patrol, not where drugs
# are used (Lum & Isaac 2016, "To predict and serve?", Significance 13(5)); a model trained
# on what patrols discover sends patrols back to where they were (Ensign et al. 2018,
# "Runaway feedback loops in predictive policing", FAT* 2018); and records shaped by
# enforcement practice are "dirty data" for prediction (Richardson, Schultz & Crawford
# 2019, NYU Law Review Online 94). Weapons possession and DUI are found by stops and
# checkpoints; disorderly conduct and vagrancy are discretionary order-maintenance charges.

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PhiladelphiaSettings(_Strict):
    """Philadelphia: the committed snapshot, and the city's open-data SQL API for refresh."""

    snapshot_dir: str = "snapshot/philadelphia"
    api_url: str = "https://phl.carto.com/api/v2/sql"
    api_table: str = "incidents_part1_part2"
    api_timeout_s: float = 120.0


class CsvColumns(_Strict):
    """Which column of the city's incidents CSV holds each raw field."""

    source_key: str = "id"
    occurred_local: str = "occurred_at"
    offense_code: str = "offense_code"
    lon: str = "lon"
    lat: str = "lat"
    category: str | None = None
    # The incidents' own area label (matched to the areas file's area_id); when set it is
    # used instead of point-in-polygon / nearest-centroid, and unknown labels are quarantined.
    area_id: str | None = None


class CsvAreaColumns(_Strict):
    """Areas file columns: GeoJSON properties, or CSV columns of centroids (lon/lat)."""

    area_id: str = "GEOID"
    aland_m2: str | None = "ALAND"
    lon: str = "lon"
    lat: str = "lat"


class CsvDemographicColumns(_Strict):
    """Demographics CSV columns for each raw demographic field (None: not available)."""

    area_id: str = "GEOID"
    population: str | None = "population"
    pct_black: str | None = "pct_black"
    pct_white: str | None = "pct_white"
    pct_asian: str | None = "pct_asian"
    pct_hispanic: str | None = "pct_hispanic"
    median_income: str | None = "median_income"
    pct_poverty: str | None = "pct_poverty"


class CsvSettings(_Strict):
    """Any city: an incidents CSV, an areas file (GeoJSON polygons or CSV centroids) and a
    demographics CSV, with column mappings. Paths are relative to the project home."""

    incidents: str = ""
    areas: str = ""
    demographics: str = ""
    columns: CsvColumns = Field(default_factory=CsvColumns)
    area_columns: CsvAreaColumns = Field(default_factory=CsvAreaColumns)
    demographic_columns: CsvDemographicColumns = Field(default_factory=CsvDemographicColumns)
    # Values meaning "unknown" in demographics (Census uses -666666666 for suppressed income).
    na_sentinels: list[float] = Field(default_factory=lambda: [-666666666.0])
    # Timestamps without an offset are the city's local time ("local") or UTC ("utc");
    # text with an offset ("Z", "+00:00") is converted to ``timezone`` either way.
    timestamps: Literal["local", "utc"] = "local"
    # Optional GeoJSON outline of the city: centroid areas get Voronoi cells clipped to it.
    outline: str = ""


class CentroidSettings(_Strict):
    """Areas given only as points (a CSV of centroids): how each gets a cell and land area."""

    cells: Literal["voronoi", "none"] = Field(
        "voronoi", description="voronoi: Voronoi cells clipped to csv.outline (or to the "
        "convex hull buffered by hull_buffer_m); none: aland_m2 must be given")
    hull_buffer_m: float | None = Field(
        None, ge=0, description="buffer (metres) around the centroids' convex hull when "
        "there is no outline; null = the median distance between neighbouring centroids")


class AreaGroupSettings(_Strict):
    """How each area's fairness group is labelled (see crimecast.data.areas)."""

    rule: Literal["majority", "income_tercile"] = "majority"
    majority_threshold_pct: float = 50.0
    population_floor: int = 100


class QualitySettings(_Strict):
    """Outage detector (crimecast.data.quality). A day is an outage day when its count is below
    ``day_ratio`` x the median of the same weekday in the ``window_weeks`` weeks before and
    after it, and that shortfall is also improbable under a Poisson law with that median
    (p < ``alpha``, which keeps sparse cities from being flagged on noise). A week is an
    outage week when it holds an outage day, its total is below ``week_ratio`` x the median
    of its neighbouring weeks (same Poisson guard), or the data cover only part of it."""

    window_weeks: int = Field(4, ge=1)
    day_ratio: float = Field(0.35, gt=0, lt=1)
    week_ratio: float = Field(0.7, gt=0, lt=1)
    alpha: float = Field(1e-4, gt=0, lt=1)


class GraphSettings(_Strict):
    """``configs/data.yaml`` key ``graph``: how the adjacency graph is built."""

    method: Literal["auto", "h3", "queen", "knn"] = Field(
        "auto", description="auto: h3 grid rings for H3 cells, queen for polygons, knn "
        "for points")
    knn_k: int = Field(6, ge=1, description="neighbours per area for the knn method")
    tolerance_deg: float = Field(
        1e-6, ge=0, description="boundaries closer than this (degrees, ~0.1 m) touch")


class UnitSettings(_Strict):
    """``configs/data.yaml`` key ``units``: the spatial unit every stage works on.

    ``tract``: the source's own areas (census tracts for Philadelphia; a city's polygons
    or centroids); ``centroid``: the same, but the areas file must give points;
    ``h3``: H3 cells at ``resolution`` covering the city, with demographics interpolated
    from the source's areas (:mod:`crimecast.data.units`)."""

    kind: Literal["tract", "h3", "centroid"] = "tract"
    resolution: int = Field(9, ge=5, le=12, description="H3 resolution (9 ~ 0.1 km², "
                            "10 ~ 0.015 km²); used only when kind is h3")
    group_from: Literal["shares", "tract"] = Field(
        "shares", description="h3 cells: group by the tract rule on the interpolated "
        "shares (shares), or inherit the group of the tract holding most of the cell's "
        "population (tract)")

    @property
    def tag(self) -> str:
        """Short name of the unit: ``tract``, ``centroid`` or ``h3r<resolution>``. It
        names the artifacts, the registered model and the study of this unit."""
        return f"h3r{self.resolution}" if self.kind == "h3" else self.kind


class CitySettings(_Strict):
    """Words for the city that outputs use (report, CLI summary, the API's ``/model``):
    never "census tract" unless the areas are tracts."""

    name: str = "Philadelphia"
    unit_label: str = Field("tract", description="what one area is called: tract, "
                            "neighbourhood, cell, ... (singular)")
    source: str = ("City of Philadelphia / Philadelphia Police Department, Crime Incidents "
                   "(OpenDataPhilly)")
    licence: str = "City of Philadelphia open-data terms (OpenDataPhilly)"
    contact: str = ""


class DataSettings(ConcernSettings):
    """Settings of the data concern (``configs/data.yaml``)."""

    concern: ClassVar[str] = "data"

    source: str = "philadelphia"
    raw_dir: str = "data"
    timezone: str = "America/New_York"
    # Salt (key) of incident_id = SipHash-2-4(source_key); override with CRIMECAST_DATA__SALT.
    salt: str = "crimecast-2026-public-salt"
    # Incidents after this many days past "now" are quarantined as future timestamps.
    future_tolerance_days: int = 1
    # Category name -> the city's codes or labels (int or text) that belong to it. Order
    # is the panel's category order; values in no list are quarantined with the value shown.
    categories: dict[str, list[str | int]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_CATEGORIES.items()})
    # Categories whose records mostly reflect police activity rather than victimisation
    # (why: the comment under DEFAULT_CATEGORIES). Their counts stay in the panel and in
    # monitoring, but the patrol model never learns from or forecasts them
    # (crimecast.data.panel.target_panel). Names missing from `categories` are ignored
    # unless this key is set explicitly.
    enforcement_categories: list[str] = Field(default_factory=lambda: ["enforcement"])
    # Ingest and `data validate` fail when more than this share of rows is quarantined.
    max_quarantine_share: float = Field(0.5, ge=0, le=1)
    # Demographic shares in the raw file: 0-100 (percent) or 0-1 (fraction); null = detect
    # from the data and warn.
    share_scale: Literal["percent", "fraction"] | None = None
    philadelphia: PhiladelphiaSettings = Field(default_factory=PhiladelphiaSettings)
    csv: CsvSettings = Field(default_factory=CsvSettings)
    # Free-form settings for the synthetic city; validated by crimecast.data.sources.synthetic.
    synthetic: dict[str, Any] = Field(default_factory=dict)
    groups: AreaGroupSettings = Field(default_factory=AreaGroupSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    city: CitySettings = Field(default_factory=CitySettings)
    centroids: CentroidSettings = Field(default_factory=CentroidSettings)
    units: UnitSettings = Field(default_factory=UnitSettings)

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "offense_categories" in data:
            raise ValueError("key 'offense_categories' is now 'categories' (category name -> "
                             "list of codes or labels); rename it")
        return data

    @field_validator("categories")
    @classmethod
    def _categories_not_empty(cls, value: dict[str, list[str | int]]) -> dict[str, list[str | int]]:
        if not value:
            raise ValueError("needs at least one category with its codes or labels")
        empty = [name for name, labels in value.items() if not labels]
        if empty:
            raise ValueError(f"categories {empty} list no codes or labels")
        return value

    @model_validator(mode="after")
    def _enforcement_known(self) -> DataSettings:
        unknown = [c for c in self.enforcement_categories if c not in self.categories]
        if unknown and "enforcement_categories" in self.model_fields_set:
            raise ValueError(f"enforcement_categories {unknown} are not keys of 'categories' "
                             f"({list(self.categories)})")
        if not set(self.categories) - set(self.enforcement_categories):
            raise ValueError("enforcement_categories leaves no category for the model to learn")
        return self

    @property
    def target_categories(self) -> list[str]:
        """The categories the patrol model learns: all but ``enforcement_categories``."""
        return [c for c in self.categories if c not in self.enforcement_categories]

    @property
    def area_label(self) -> str:
        """What one area is called in outputs: ``H3 cell`` at the h3 unit, else
        ``city.unit_label`` (tract, neighbourhood, ...)."""
        return "H3 cell" if self.units.kind == "h3" else self.city.unit_label

    @property
    def category_names(self) -> list[str]:
        """The configured category names, in config order (the panel's order)."""
        return list(self.categories)

    def raw_path(self) -> Path:
        """Absolute path of the raw snapshot folder (``data/``)."""
        from crimecast.paths import resolve

        return resolve(self.raw_dir)
