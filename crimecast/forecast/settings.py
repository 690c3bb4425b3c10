"""Settings shared by everything that forecasts or judges forecasts."""

from __future__ import annotations

import itertools
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from crimecast.config import ConcernSettings, ConfigError
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
    # Evidence (crimecast/forecast/evidence.py): confidence intervals by a moving-block
    # bootstrap over the backtest's weeks.
    bootstrap_draws: int = Field(2000, ge=100, description="bootstrap resamples of the weeks")
    bootstrap_block_weeks: int = Field(4, ge=1, description="consecutive weeks per block")
    bootstrap_seed: int = Field(0, description="seed of the bootstrap (and the randomised PIT)")
    bootstrap_level: float = Field(0.95, gt=0.5, lt=1, description="confidence level")
    # Ceilings and the reference of "gap closed" (crimecast/forecast/backtest.py).
    ceiling_halfwidth: int = Field(8, ge=1, description="two-sided smoother: mean of ±k weeks")
    reference_window: int = Field(52, ge=1, description="weeks of the reference mean")
    # Interval calibration on the validation weeks (crimecast/forecast/calibration.py).
    calibration_tolerance: float = Field(0.03, ge=0, lt=1,
                                         description="recalibrate when coverage is off by more")
    calibration_bins: list[float] = Field(
        default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
        description="expected counts that cut the ranges calibrated separately")
    calibration_min_rows: int = Field(100, ge=1,
                                      description="validation rows a range needs of its own")

    @field_validator("calibration_bins")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if not value or any(b <= a for a, b in itertools.pairwise(value)) or value[0] <= 0:
            raise ValueError("calibration_bins must be positive and increasing, e.g. [0.5, 1, 2]")
        return value
    min_train_weeks: int = Field(13, ge=1, description="weeks the earliest fit (tuning's) "
                                 "needs before the validation window")
    short_history: Literal["stop", "adapt"] = Field(
        "stop", description="history shorter than the windows: stop naming the keys, or "
        "shrink backtest_weeks and validation_weeks to fit (saying so)")

    def minimum_weeks(self) -> int:
        """Weeks of history the windows need: tuning fits on the weeks before its
        validation window, which sits right before the backtest window."""
        return self.backtest_weeks + self.validation_weeks + self.min_train_weeks

    def for_history(self, num_weeks: int) -> tuple[EvaluationSettings, str | None]:
        """These settings for a panel of ``num_weeks`` weeks: unchanged (note None) when
        the history covers :meth:`minimum_weeks`; with ``short_history: adapt``, the
        backtest and validation windows shrunk in proportion to fit, and a one-line note
        saying so; otherwise a :class:`ConfigError` listing every key to change and the
        minimum weeks. Every stage that backtests or tunes calls this, so they all judge
        on the same (adapted) weeks."""
        need = self.minimum_weeks()
        if num_weeks >= need:
            return self, None
        available = num_weeks - self.min_train_weeks
        # Split what is left after the training weeks in the configured proportion.
        share = self.backtest_weeks / (self.backtest_weeks + self.validation_weeks)
        backtest = max(1, min(available - 1, round(available * share)))
        validation = available - backtest
        if self.short_history == "adapt" and available >= 2:
            adapted = self.model_copy(update={"backtest_weeks": backtest,
                                              "validation_weeks": validation})
            return adapted, (f"history of {num_weeks} weeks is shorter than the {need} the "
                             f"evaluation windows need: backtest_weeks {self.backtest_weeks} -> "
                             f"{backtest}, validation_weeks {self.validation_weeks} -> "
                             f"{validation} (configs/evaluation.yaml short_history: adapt)")
        if available >= 2:
            example = (backtest, validation, self.min_train_weeks)
        else:
            example = (1, 1, max(1, num_weeks - 2))
        raise ConfigError(
            f"the panel has {num_weeks} weeks of history; the evaluation windows need at "
            f"least {need} (backtest_weeks {self.backtest_weeks} + validation_weeks "
            f"{self.validation_weeks} + min_train_weeks {self.min_train_weeks})",
            file="configs/evaluation.yaml", key="backtest_weeks, validation_weeks, min_train_weeks",
            hint=(f"lower them to sum to at most {num_weeks} (e.g. backtest_weeks: {example[0]}, "
                  f"validation_weeks: {example[1]}, min_train_weeks: {example[2]}), set "
                  "short_history: adapt to let crimecast shrink the windows, or add "
                  f"{need - num_weeks} more weeks of data"))

    @field_validator("horizons")
    @classmethod
    def _known_horizons(cls, value: list[int]) -> list[int]:
        if not value or any(h not in HORIZONS for h in value):
            raise ValueError(f"horizons must be a non-empty subset of {list(HORIZONS)}")
        return sorted(set(value))
