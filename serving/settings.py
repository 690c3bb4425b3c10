"""Typed settings of the prediction service, loaded from ``configs/serving.yaml``.

Every key can be overridden by an environment variable ``CRIMECAST_SERVING__<KEY>``
(nested keys joined by ``__``), which is how a container or a test changes the port, the
prediction-log URL or the poll interval without editing files.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crimecast.config import ConcernSettings
from crimecast.paths import resolve


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySettings(_Section):
    file: str = "state/api_keys.json"
    env: str = "CRIMECAST_API_KEYS"
    open_paths: tuple[str, ...] = ("/healthz", "/readyz", "/livez", "/docs.json", "/")


#: Bytes one outcome row takes in a request body, generously: ``{"week": "2024-01-01",
#: "area_id": "42101000100", "category": "property", "count": 12},`` is ~80; H3 ids and
#: pretty-printing add some. ``max_outcomes`` rows must fit in ``max_body_bytes``.
OUTCOME_ROW_BYTES = 120


class LimitSettings(_Section):
    max_body_bytes: int = Field(262_144, ge=1024)
    max_header_bytes: int = Field(16_384, ge=1024)
    max_headers: int = Field(64, ge=8)
    max_area_ids: int = Field(1000, ge=1)
    max_outcomes: int = Field(2000, ge=1)
    max_units: int = Field(100_000, ge=1)
    max_hotspots: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _outcomes_fit_in_a_body(self) -> LimitSettings:
        if self.max_outcomes * OUTCOME_ROW_BYTES > self.max_body_bytes:
            raise ValueError(
                f"max_outcomes={self.max_outcomes} rows of ~{OUTCOME_ROW_BYTES} bytes cannot "
                f"fit in max_body_bytes={self.max_body_bytes}: lower max_outcomes to "
                f"{self.max_body_bytes // OUTCOME_ROW_BYTES} or raise max_body_bytes")
        return self


class PredlogSettings(_Section):
    url: str = "sqlite:///state/predlog.db"
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    batch_max: int = Field(512, ge=1)
    db_schema: str | None = None
    checkpoint_seconds: float = Field(2.0, gt=0.0)
    wal_limit_bytes: int = Field(16 * 1024 * 1024, ge=65_536)


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
    version_watch_seconds: float = Field(0.5, gt=0.0)
    reload_wait_seconds: float = Field(60.0, gt=0.0)
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
