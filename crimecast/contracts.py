"""Data contracts shared by every stage: what the tables look like and where they live.

Files written by the data pipeline (paths relative to the project home, all under
``artifacts/``; see :data:`ARTIFACTS`):

- ``incidents.parquet`` — one row per valid incident:
  ``incident_id`` (salted hash, str), ``occurred_at`` (tz-aware America/New_York),
  ``week`` (Monday of the local week, tz-naive ``datetime64[ns]``), ``category``
  (one of :data:`CATEGORIES`), ``offense_code`` (int), ``lat``, ``lon`` (float, WGS84),
  ``area_id`` (str). No addresses, names or free text.
- ``areas.parquet`` — GeoParquet, one row per area (node order of the graph):
  ``area_id`` (str, census GEOID for real cities), ``geometry`` (EPSG:4326),
  ``land_area_km2``, ``population``, ``pct_black``, ``pct_white``, ``pct_asian``,
  ``pct_hispanic`` (0–100, NaN when unknown), ``median_income``, ``pct_poverty``,
  ``group`` (str, the demographic group for fairness checks), ``income_tercile``
  (``low``/``middle``/``high``), ``low_population`` (bool: below the configured floor).
- ``graph.npz`` — ``area_ids`` (str array, node order), ``edge_index`` (int64 [2, E]),
  ``edge_weight`` (float32 [E]); symmetric, no self loops, no duplicates, connected.
- ``panel.parquet`` — one row per (area_id, week, category) including zeros:
  ``area_id``, ``week`` (Monday, tz-naive), ``category``, ``count`` (int64),
  ``outage`` (bool: the source's volume that week was anomalously low; mask it).
- ``truth.parquet`` — synthetic city only: ``area_id, week, category, intensity``
  (the true expected count), for oracle scores.

Forecasts (every model's ``predict``) are tidy frames with :data:`FORECAST_COLUMNS`:
``week`` is the target week (Monday) and ``horizon`` (1–4) the number of weeks between
the last observed week and the target week.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crimecast.paths import resolve

CATEGORIES: tuple[str, ...] = ("violent", "property", "other")
HORIZONS: tuple[int, ...] = (1, 2, 3, 4)
FORECAST_COLUMNS: tuple[str, ...] = (
    "area_id", "week", "category", "horizon",
    "mean", "lower_80", "upper_80", "lower_95", "upper_95",
)
PANEL_COLUMNS: tuple[str, ...] = ("area_id", "week", "category", "count", "outage")


class ContractError(ValueError):
    """A table does not match its contract; the message names the table and column."""


@dataclass(frozen=True)
class ArtifactPaths:
    """Where the pipeline's outputs live (relative to the project home)."""

    root: Path = Path("artifacts")

    def _p(self, name: str) -> Path:
        return resolve(self.root / name)

    @property
    def incidents(self) -> Path:
        return self._p("incidents.parquet")

    @property
    def quarantine(self) -> Path:
        return self._p("quarantine.csv.gz")

    @property
    def ingest_report(self) -> Path:
        return self._p("ingest_report.json")

    @property
    def areas(self) -> Path:
        return self._p("areas.parquet")

    @property
    def graph(self) -> Path:
        return self._p("graph.npz")

    @property
    def panel(self) -> Path:
        return self._p("panel.parquet")

    @property
    def features(self) -> Path:
        return self._p("features.parquet")

    @property
    def splits(self) -> Path:
        return self._p("splits.json")

    @property
    def truth(self) -> Path:
        return self._p("truth.parquet")


ARTIFACTS = ArtifactPaths()


@dataclass
class AreaGraph:
    """Areas as graph nodes: ids in node order, weighted symmetric adjacency, covariates.

    ``areas`` is a plain DataFrame indexed by ``area_id`` in node order (geometry dropped),
    holding the covariate and demographic columns of ``areas.parquet``.
    """

    area_ids: np.ndarray
    edge_index: np.ndarray
    edge_weight: np.ndarray
    areas: pd.DataFrame = field(repr=False)

    @property
    def num_nodes(self) -> int:
        return len(self.area_ids)

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def node_index(self) -> dict[str, int]:
        return {a: i for i, a in enumerate(self.area_ids)}

    @classmethod
    def load(cls, graph_path: Path | None = None, areas_path: Path | None = None) -> AreaGraph:
        import geopandas as gpd

        data = np.load(graph_path or ARTIFACTS.graph, allow_pickle=False)
        area_ids = data["area_ids"].astype(str)
        areas = gpd.read_parquet(areas_path or ARTIFACTS.areas)
        areas = pd.DataFrame(areas.drop(columns="geometry")).set_index("area_id")
        missing = set(area_ids) - set(areas.index)
        if missing:
            raise ContractError(f"areas.parquet lacks {len(missing)} graph areas, e.g. {sorted(missing)[:3]}")
        return cls(area_ids, data["edge_index"].astype(np.int64),
                   data["edge_weight"].astype(np.float32), areas.loc[area_ids])


@dataclass
class Panel:
    """Weekly counts per (area, week, category), zero rows included.

    ``counts`` is the long frame with :data:`PANEL_COLUMNS`. :meth:`to_array` gives the
    dense ``[num_areas, num_weeks, num_categories]`` array models train on.
    """

    counts: pd.DataFrame

    @classmethod
    def load(cls, path: Path | None = None) -> Panel:
        return cls(validate_panel(pd.read_parquet(path or ARTIFACTS.panel), "panel.parquet"))

    @property
    def weeks(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(sorted(self.counts["week"].unique()))

    @property
    def categories(self) -> list[str]:
        present = set(self.counts["category"].unique())
        return [c for c in CATEGORIES if c in present] + sorted(present - set(CATEGORIES))

    @property
    def last_week(self) -> pd.Timestamp:
        return pd.Timestamp(self.counts["week"].max())

    def outage_weeks(self) -> pd.DatetimeIndex:
        flagged = self.counts.loc[self.counts["outage"], "week"].unique()
        return pd.DatetimeIndex(sorted(flagged))

    def until(self, last_week: pd.Timestamp) -> Panel:
        """The panel truncated to weeks up to and including ``last_week``."""
        return Panel(self.counts[self.counts["week"] <= last_week].reset_index(drop=True))

    def to_array(self, area_ids: np.ndarray) -> tuple[np.ndarray, pd.DatetimeIndex, list[str]]:
        """Dense counts ``[areas, weeks, categories]`` in the given area order."""
        weeks, cats = self.weeks, self.categories
        table = self.counts.pivot_table(index=["area_id", "week"], columns="category",
                                        values="count", aggfunc="sum", fill_value=0)
        full = pd.MultiIndex.from_product([list(area_ids), weeks], names=["area_id", "week"])
        table = table.reindex(index=full, columns=cats, fill_value=0)
        array = table.to_numpy(dtype=np.float32).reshape(len(area_ids), len(weeks), len(cats))
        return array, weeks, cats


def validate_panel(frame: pd.DataFrame, name: str = "panel") -> pd.DataFrame:
    missing = [c for c in PANEL_COLUMNS if c not in frame.columns]
    if missing:
        raise ContractError(f"{name}: missing column(s) {missing}; expected {list(PANEL_COLUMNS)}")
    if (frame["count"] < 0).any():
        raise ContractError(f"{name}: column 'count' has negative values")
    return frame


def validate_forecast(frame: pd.DataFrame, name: str = "forecast") -> pd.DataFrame:
    """Check a model's output against the forecast contract."""
    missing = [c for c in FORECAST_COLUMNS if c not in frame.columns]
    if missing:
        raise ContractError(f"{name}: missing column(s) {missing}")
    if frame[list(FORECAST_COLUMNS[4:])].isna().any().any():
        raise ContractError(f"{name}: NaN in forecast values")
    if (frame["mean"] < 0).any():
        raise ContractError(f"{name}: negative mean forecast")
    ordered = (
        (frame["lower_95"] <= frame["lower_80"] + 1e-9)
        & (frame["lower_80"] <= frame["mean"] + 1e-9)
        & (frame["mean"] <= frame["upper_80"] + 1e-9)
        & (frame["upper_80"] <= frame["upper_95"] + 1e-9)
    )
    if not ordered.all():
        raise ContractError(f"{name}: intervals not ordered in {(~ordered).sum()} rows")
    return frame
