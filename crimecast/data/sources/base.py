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
  ``offense_code`` (str or number; the city's offense code or label, mapped to a category
  by ``DataSettings.categories``), ``lon``, ``lat`` (float, WGS84, NaN when missing).
  Optional ``category`` (str): when present and not null, it is mapped instead of the
  code (a category name or a label of the map; the synthetic city sets it directly).
  Optional ``area_id`` (str): the incidents' own area label, used instead of the spatial
  join (``csv.columns.area_id``).
- areas (:data:`RAW_AREA_COLUMNS`): GeoDataFrame in EPSG:4326 with ``area_id`` (str),
  ``geometry`` (polygons; points when only centroids are known) and optional
  ``aland_m2`` (land area in square metres, NaN when unknown).
- demographics (:data:`RAW_DEMOGRAPHIC_COLUMNS`): ``area_id`` (str), ``population``,
  ``pct_black``, ``pct_white``, ``pct_asian``, ``pct_hispanic`` (0-100, or 0-1 with
  ``share_scale: fraction``), ``median_income``,
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
from typing import Any, ClassVar

import pandas as pd

from crimecast.config import ConfigError
from crimecast.contracts import ContractError
from crimecast.data.settings import DataSettings

RAW_INCIDENT_COLUMNS: tuple[str, ...] = ("source_key", "occurred_local", "offense_code", "lon", "lat")
RAW_AREA_COLUMNS: tuple[str, ...] = ("area_id", "geometry")
RAW_DEMOGRAPHIC_COLUMNS: tuple[str, ...] = (
    "area_id", "population", "pct_black", "pct_white", "pct_asian", "pct_hispanic",
    "median_income", "pct_poverty",
)

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

    def read_outline(self, raw_dir: Path) -> Any:
        """The city's outline (one shapely geometry, EPSG:4326) that centroid cells are
        clipped to, or None when the source has none (the default)."""
        return None


def require_columns(frame: pd.DataFrame, required: Any, file: str | Path) -> None:
    """Raise :class:`ContractError` naming ``file`` and every missing column of ``required``."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ContractError(
            f"{file}: missing column(s) {missing}; found {sorted(map(str, frame.columns))}")


SourceFactory = Callable[[DataSettings], Source]

# name -> "module:Class", imported only when that source is chosen.
_BUILTIN_SOURCES: dict[str, str] = {
    "philadelphia": "crimecast.data.sources.philadelphia:PhiladelphiaSource",
    "csv": "crimecast.data.sources.csvsource:CsvSource",
    "synthetic": "crimecast.data.sources.synthetic:SyntheticSource",
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
