"""Typed settings of the oversight concern, loaded from ``configs/monitoring.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crimecast.config import ConcernSettings
from crimecast.paths import resolve


class FeatureTest(BaseModel):
    """One column's drift test: an Evidently stattest name and its threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    method: str
    threshold: float = Field(gt=0)


class DriftSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    drift_share: float = Field(0.5, gt=0, le=1)
    method: str = "wasserstein"
    threshold: float = Field(0.1, gt=0)
    per_feature: dict[str, FeatureTest] = Field(default_factory=dict)
    prediction_method: str = "wasserstein"
    prediction_threshold: float = Field(0.1, gt=0)


class DisparitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    band: tuple[float, float] = (0.8, 1.25)
    flag_area_share: float = Field(0.05, gt=0, le=1)
    min_group_areas: int = Field(3, ge=1)

    @field_validator("band")
    @classmethod
    def _ordered(cls, band: tuple[float, float]) -> tuple[float, float]:
        low, high = band
        if not 0 < low <= 1 <= high:
            raise ValueError(f"band must satisfy 0 < low <= 1 <= high, got {list(band)}")
        return band


class ErrorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    mae_ratio_max: float = Field(1.5, gt=1)
    coverage80_min: float = Field(0.6, ge=0, le=1)


class ImpactSettings(BaseModel):
    """``crimecast impact``: how treated areas are found and compared (crimecast.impact)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pre_weeks: int = Field(52, ge=4, description="weeks before the start for matching")
    controls_per_area: int = Field(5, ge=1, description="matched controls per treated area")
    min_treated_areas: int = Field(5, ge=1, description="smallest group that is estimated")
    risk_weeks: int = Field(13, ge=1, description="weeks of the historical-average risk")
    dosage_kind: str = Field("patrol_minutes", description="dosage that marks treatment")
    dosage_min_amount: float = Field(
        60.0, ge=0, description="mean weekly amount over the period that counts as treated")
    output: str = "state/monitoring/impact.json"


class MonitoringSettings(ConcernSettings):
    """Thresholds and locations for drift/disparity monitoring, alerts and the report."""

    concern: ClassVar[str] = "monitoring"

    workspace_dir: str = "workspace"
    project_name: str = "crimecast oversight"
    output_dir: str = "state/monitoring"
    alerts_path: str = "state/alerts.jsonl"
    alert_status_path: str = "state/alert_status.jsonl"
    audit_path: str = "state/audit.jsonl"
    predlog_url: str = "sqlite:///state/predlog.db"
    reference_weeks: int = Field(13, ge=2)
    reference_max_rows: int = Field(20000, ge=100)
    replay_weeks: int = Field(12, ge=1)
    replay_model: str = "champion"
    history_weeks: int = Field(160, ge=13)
    seed: int = 0
    workers: int = Field(2, ge=1)
    html_report: bool = True
    drift: DriftSettings = DriftSettings()
    disparity: DisparitySettings = DisparitySettings()
    errors: ErrorSettings = ErrorSettings()
    impact: ImpactSettings = ImpactSettings()
    webhook_url: str | None = None
    webhook_timeout_s: float = Field(5.0, gt=0)
    suppress_below: int = Field(5, ge=1)
    report_dir: str = "reports"
    stale_after_days: int = Field(21, ge=1)

    @model_validator(mode="after")
    def _webhook_scheme(self) -> MonitoringSettings:
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError("webhook_url must start with http:// or https://, "
                             f"got {self.webhook_url!r}")
        return self

    def path(self, key: str) -> Path:
        """A location setting (``workspace_dir``, ``output_dir``, ...) resolved against the
        project home."""
        return resolve(getattr(self, key))
