"""Data sources: one ``Source`` interface, several cities (see :mod:`crimecast.data.sources.base`)."""

from crimecast.data.settings import DataSettings
from crimecast.data.sources.base import (
    RAW_AREA_COLUMNS,
    RAW_DEMOGRAPHIC_COLUMNS,
    RAW_INCIDENT_COLUMNS,
    Source,
    available_sources,
    get_source,
    register_source,
)

__all__ = [
    "RAW_AREA_COLUMNS", "RAW_DEMOGRAPHIC_COLUMNS", "RAW_INCIDENT_COLUMNS", "DataSettings",
    "Source", "available_sources", "get_source", "register_source",
]
