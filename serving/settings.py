"""Typed settings of the prediction service, loaded from ``configs/serving.yaml``.

Every key can be overridden by an environment variable ``CRIMECAST_SERVING__<KEY>``
(nested keys joined by ``__``), which is how a container or a test changes the port, the
prediction-log URL or the poll interval without editing files.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from crimecast.config import ConcernSettings
from crimecast.paths import resolve


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySettings(_Section):
    file: str = "state/api_keys.json"
    env: str = "CRIMECAST_API_KEYS"
    open_paths: tuple[str, ...] = ("/healthz", "/readyz", "/livez", "/docs.json", "/")


class LimitSettings(_Section):
    max_body_bytes: int = Field(262_144, ge=1024)
    max_area_ids: int = Field(1000, ge=1)
    max_outcomes: int = Field(5000, ge=1)
    max_units: int = Field(100_000, ge=1)
    max_hotspots: int = Field(1000, ge=1)


class PredlogSettings(_Section):
    url: str = "sqlite:///state/predlog.db"
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    batch_max: int = Field(512, ge=1)
    db_schema: str | None = None
    checkpoint_seconds: float = Field(2.0, gt=0.0)


class AllocationSettings(_Section):
    group_cap_ratio: float | None = Field(1.25, ge=1.0)
    group_column: str = "group"
    vulnerability_column: str = "pct_poverty"
    trial_share: float = Field(0.0, ge=0.0, le=1.0)
    trial_tolerance: float = Field(0.25, ge=0.0)


class HotspotSettings(_Section):
    default_area_share: float = Field(0.05, gt=0.0, le=1.0)
    simplify_tolerance: float = Field(0.0002, ge=0.0)


class ServingSettings(ConcernSettings):
    """Everything ``crimecast serve`` and ``serving.service`` read."""

    concern: ClassVar[str] = "serving"

    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    alias: str = "champion"
    alias_poll_seconds: float = Field(30.0, ge=0.0)
    areas_path: str = "artifacts/areas.parquet"
    access_log: bool = False
    metrics: bool = False
    tracing: bool = False
    keys: KeySettings = KeySettings()
    limits: LimitSettings = LimitSettings()
    predlog: PredlogSettings = PredlogSettings()
    allocation: AllocationSettings = AllocationSettings()
    hotspots: HotspotSettings = HotspotSettings()

    @property
    def keys_file(self) -> Path:
        return resolve(self.keys.file)

    @property
    def areas_file(self) -> Path:
        return resolve(self.areas_path)

    def predlog_url(self) -> str:
        """The prediction-log URL with a relative SQLite path made absolute (project home)."""
        url = self.predlog.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            return prefix + str(resolve(url[len(prefix):]))
        return url
