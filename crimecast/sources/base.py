"""The ``Source`` interface: where a city's raw data comes from, behind one narrow adapter.

A source does two things:

1. ``fetch(raw_dir)`` materialises its raw tables into ``raw_dir`` (the project's ``data/``
   folder, tracked by DVC as ``data.dvc``). Fetch is deterministic: the same input gives
   byte-identical files (gzip with ``mtime=0``, parquet written from the same frame), so the
   committed ``data.dvc`` hash matches on a fresh clone.
2. ``read_incidents`` / ``read_areas`` / ``read_demographics`` read those files back as *raw
   frames* in the common shape below. Ingest validates and cleans them; a source does not.

Raw frames (column names are the contract; values may still be dirty):

- incidents (:data:`RAW_INCIDENT_COLUMNS`): ``source_key`` (str, the source's record id;
  hashed by ingest and never written out), ``occurred_local`` (str, local wall-clock time
  ``YYYY-MM-DD HH:MM:SS`` or ``YYYY-MM-DD``; unparseable text is quarantined),
  ``offense_code`` (str or number; the city's offense code, mapped to a category by
  ``DataSettings.offense_categories``), ``lon``, ``lat`` (float, WGS84, NaN when missing).
  Optional ``category`` (str): when present and not null, it is used instead of the code
  map (the synthetic city sets it directly).
- areas (:data:`RAW_AREA_COLUMNS`): GeoDataFrame in EPSG:4326 with ``area_id`` (str),
  ``geometry`` (polygons; points when only centroids are known) and optional
  ``aland_m2`` (land area in square metres, NaN when unknown).
- demographics (:data:`RAW_DEMOGRAPHIC_COLUMNS`): ``area_id`` (str), ``population``,
  ``pct_black``, ``pct_white``, ``pct_asian``, ``pct_hispanic`` (0-100), ``median_income``,
  ``pct_poverty``; NaN when unknown (sentinels already turned into NaN by the source).

Sources are chosen by name in ``configs/data.yaml`` (``source: philadelphia|synthetic|csv``)
and built by :func:`get_source`. Built-in names are imported lazily from
:data:`_BUILTIN_SOURCES`; other code can add one with :func:`register_source`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from crimecast.config import ConcernSettings, ConfigError
from crimecast.contracts import ContractError

RAW_INCIDENT_COLUMNS: tuple[str, ...] = ("source_key", "occurred_local", "offense_code", "lon", "lat")
RAW_AREA_COLUMNS: tuple[str, ...] = ("area_id", "geometry")
RAW_DEMOGRAPHIC_COLUMNS: tuple[str, ...] = (
    "area_id", "population", "pct_black", "pct_white", "pct_asian", "pct_hispanic",
    "median_income", "pct_poverty",
)

# Philadelphia UCR "hundreds" codes (ucr_general). Part I violent + other assaults (800):
# simple assaults are interpersonal violence and are the bulk of violent calls for service.
# Property = Part I property (burglary, theft, motor-vehicle theft, arson) plus vandalism
# (1400), which is damage to property. Fraud/forgery/embezzlement (1000-1200) and
# everything else (drugs, DUI, disorderly, weapons, "all other") are "other".
DEFAULT_OFFENSE_CATEGORIES: dict[str, list[int]] = {
    "violent": [100, 200, 300, 400, 800],
    "property": [500, 600, 700, 900, 1400],
    "other": [1000, 1100, 1200, 1300, 1500, 1600, 1700, 1800, 1900, 2000, 2100, 2200, 2300,
              2400, 2500, 2600],
}


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


class AreaGroupSettings(_Strict):
    """How each area's fairness group is labelled (see crimecast.areas)."""

    rule: Literal["majority", "income_tercile"] = "majority"
    majority_threshold_pct: float = 50.0
    population_floor: int = 100


class QualitySettings(_Strict):
    """Outage detector (crimecast.quality). A day is an outage day when its count is below
    ``day_ratio`` x the median of the same weekday in the ``window_weeks`` weeks before and
    after it, and that shortfall is also improbable under a Poisson law with that median
    (p < ``alpha``, which keeps sparse cities from being flagged on noise). A week is an
    outage week when it holds an outage day, its total is below ``week_ratio`` x the median
    of its neighbouring weeks (same Poisson guard), or the data cover only part of it."""

    window_weeks: int = Field(4, ge=1)
    day_ratio: float = Field(0.35, gt=0, lt=1)
    week_ratio: float = Field(0.7, gt=0, lt=1)
    alpha: float = Field(1e-4, gt=0, lt=1)


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
    offense_categories: dict[str, list[int]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_OFFENSE_CATEGORIES.items()})
    philadelphia: PhiladelphiaSettings = Field(default_factory=PhiladelphiaSettings)
    csv: CsvSettings = Field(default_factory=CsvSettings)
    # Free-form settings for the synthetic city; validated by crimecast.sources.synthetic.
    synthetic: dict[str, Any] = Field(default_factory=dict)
    groups: AreaGroupSettings = Field(default_factory=AreaGroupSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)

    def raw_path(self) -> Path:
        """Absolute path of the raw snapshot folder (``data/``)."""
        from crimecast.paths import resolve

        return resolve(self.raw_dir)


class Source(ABC):
    """A city's raw data. Subclasses set ``name`` and implement the four methods."""

    name: ClassVar[str] = ""

    def __init__(self, settings: DataSettings) -> None:
        self.settings = settings

    @abstractmethod
    def fetch(self, raw_dir: Path) -> list[Path]:
        """Write the raw tables into ``raw_dir`` (deterministically); return the files written."""

    @abstractmethod
    def read_incidents(self, raw_dir: Path) -> pd.DataFrame:
        """Raw incidents with at least :data:`RAW_INCIDENT_COLUMNS` (see module docstring)."""

    @abstractmethod
    def read_areas(self, raw_dir: Path) -> Any:
        """Raw areas: a GeoDataFrame (EPSG:4326) with ``area_id``, ``geometry``, and
        optionally ``aland_m2``."""

    @abstractmethod
    def read_demographics(self, raw_dir: Path) -> pd.DataFrame:
        """Raw demographics with :data:`RAW_DEMOGRAPHIC_COLUMNS` (NaN when unknown)."""

    def incidents_file(self, raw_dir: Path) -> Path:
        """The raw incidents file, named in error messages; default ``raw_dir``/incidents."""
        return raw_dir / "incidents"


def require_columns(frame: pd.DataFrame, required: Any, file: str | Path) -> None:
    """Raise :class:`ContractError` naming ``file`` and every missing column of ``required``."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ContractError(
            f"{file}: missing column(s) {missing}; found {sorted(map(str, frame.columns))}")


SourceFactory = Callable[[DataSettings], Source]

# name -> "module:Class", imported only when that source is chosen.
_BUILTIN_SOURCES: dict[str, str] = {
    "philadelphia": "crimecast.sources.philadelphia:PhiladelphiaSource",
    "csv": "crimecast.sources.csvsource:CsvSource",
    "synthetic": "crimecast.sources.synthetic:SyntheticSource",
}
_REGISTERED: dict[str, SourceFactory] = {}


def register_source(name: str, factory: SourceFactory) -> None:
    """Make ``source: <name>`` in configs/data.yaml build a source with ``factory(settings)``."""
    _REGISTERED[name] = factory


def available_sources() -> list[str]:
    return sorted(set(_BUILTIN_SOURCES) | set(_REGISTERED))


def get_source(settings: DataSettings | None = None) -> Source:
    """Build the source named by ``settings.source`` (settings default: configs/data.yaml)."""
    settings = settings or DataSettings.load()
    name = settings.source
    if name in _REGISTERED:
        return _REGISTERED[name](settings)
    target = _BUILTIN_SOURCES.get(name)
    if target is None:
        raise ConfigError(
            f"configs/data.yaml: key 'source' is {name!r}; expected one of {available_sources()}")
    module_name, class_name = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(settings)
