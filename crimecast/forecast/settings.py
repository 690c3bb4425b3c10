"""Settings shared by everything that forecasts or judges forecasts."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from crimecast.config import ConcernSettings
from crimecast.contracts import HORIZONS


class EvaluationSettings(ConcernSettings):
    """``configs/evaluation.yaml``: the weeks that judge models, in one place.

    The backtest (train, evaluate, promote, benchmarks) forecasts ``horizons`` from every
    ``step``-th origin over the last ``backtest_weeks`` weeks; tuning scores its trials on
    the ``validation_weeks`` weeks right before them, so nothing that chooses a model sees
    the weeks that judge it. (Each model's own ``validation_weeks`` hyperparameter is a
    different thing: an early-stopping or selection window inside whatever training data
    the model is given.)
    """

    concern: ClassVar[str] = "evaluation"
    horizons: list[int] = Field(default_factory=lambda: list(HORIZONS),
                                description="weeks ahead that are forecast and scored")
    backtest_weeks: int = Field(26, ge=1, description="origins span the last N weeks")
    validation_weeks: int = Field(8, ge=1, description="weeks before the backtest for tuning")
    step: int = Field(1, ge=1, description="weeks between consecutive origins")
    refit_every: int = Field(0, ge=0, description="refit every N origins; 0 = fit once")
    area_shares: list[float] = Field(default_factory=lambda: [0.01, 0.05, 0.10],
                                     description="land-area shares for hit rate, PAI, PEI*")
    top_k: list[int] = Field(default_factory=lambda: [10])
    flag_share: float = Field(0.05, gt=0, le=1, description="area share flagged for disparity")

    @field_validator("horizons")
    @classmethod
    def _known_horizons(cls, value: list[int]) -> list[int]:
        if not value or any(h not in HORIZONS for h in value):
            raise ValueError(f"horizons must be a non-empty subset of {list(HORIZONS)}")
        return sorted(set(value))
