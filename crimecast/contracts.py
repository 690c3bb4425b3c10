"""Data contracts shared by every stage: what the tables look like and where they live.

Files written by the pipeline (paths relative to the project home, all under
``artifacts/``; see :data:`ARTIFACTS`). Each has one writing stage (``training/<stage>.py``
declares it in ``WRITES``) and is read by a later stage (``READS``) or is an end product
(:data:`END_PRODUCTS`):

- ``incidents.parquet`` — one row per valid incident:
  ``incident_id`` (salted hash, str), ``occurred_at`` (tz-aware, the city's zone),
  ``week`` (Monday of the local week, tz-naive ``datetime64[ns]``), ``category``
  (one of the city's configured categories), ``offense_code`` (str: the city's code or
  label, as listed in the category map), ``lat``, ``lon`` (float, WGS84; NaN allowed when
  the incidents carry their own area label), ``area_id`` (str). No addresses, names or
  free text.
- ``quarantine.csv.gz``, ``ingest_report.json`` — rejected rows with their reason, and the
  counts and outage weeks of the ingest.
- ``areas.parquet`` — GeoParquet, one row per area (node order of the graph):
  ``area_id`` (str, e.g. a census GEOID), ``geometry`` (EPSG:4326; Voronoi cells for
  cities given as centroids),
  ``land_area_km2``, ``population``, ``pct_black``, ``pct_white``, ``pct_asian``,
  ``pct_hispanic`` (0–100, NaN when unknown), ``median_income``, ``pct_poverty``,
  ``group`` (str, the demographic group for fairness checks), ``income_tercile``
  (``low``/``middle``/``high``), ``low_population`` (bool: below the configured floor).
- ``graph.npz`` — ``area_ids`` (str array, node order), ``edge_index`` (int64 [2, E]),
  ``edge_weight`` (float32 [E]); symmetric, no self loops, no duplicates, connected.
  Written and read only by :class:`AreaGraph`.
- ``panel.parquet`` — one row per (area_id, week, category) including zeros:
  ``area_id``, ``week`` (Monday, tz-naive), ``category``, ``count`` (int64),
  ``outage`` (bool: the source's volume that week was anomalously low; mask it).
- ``best_params.json`` (tune), ``train_run.json`` (train: the registered version),
  ``evaluation.json`` (evaluate), ``promotion.json`` (promote: the gate's decision).

Forecasts (every model's ``predict``) are tidy frames with :data:`FORECAST_COLUMNS`:
``week`` is the target week (Monday) and ``horizon`` (1–4) the number of weeks between
the last observed week and the target week.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crimecast.errors import CrimecastError
from crimecast.paths import resolve

# Philadelphia's (the default) categories. A city names its own in configs/data.yaml
# ``categories``; nothing downstream of ingest assumes these three.
CATEGORIES: tuple[str, ...] = ("violent", "property", "other")
HORIZONS: tuple[int, ...] = (1, 2, 3, 4)
FORECAST_COLUMNS: tuple[str, ...] = (
    "area_id", "week", "category", "horizon",
    "mean", "lower_80", "upper_80", "lower_95", "upper_95",
)
PANEL_COLUMNS: tuple[str, ...] = ("area_id", "week", "category", "count", "outage")


def order_categories(names: object) -> list[str]:
    """A deterministic order for a set of category names: the default three first (so
    Philadelphia panels keep their order), then any other name alphabetically."""
    present = {str(n) for n in names}  # type: ignore[attr-defined]
    return [c for c in CATEGORIES if c in present] + sorted(present - set(CATEGORIES))


class ContractError(CrimecastError, ValueError):
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
    def best_params(self) -> Path:
        return self._p("best_params.json")

    @property
    def train_run(self) -> Path:
        return self._p("train_run.json")

    @property
    def evaluation(self) -> Path:
        return self._p("evaluation.json")

    @property
    def promotion(self) -> Path:
        return self._p("promotion.json")


ARTIFACTS = ArtifactPaths()

#: Pipeline outputs that no later stage reads, and who reads them instead.
END_PRODUCTS: dict[str, str] = {
    "quarantine": "rejected rows with reasons, for the data owner (`crimecast data summary`)",
    "promotion": "the gate's decision (also in state/audit.jsonl and `crimecast models history`)",
}


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

    def save(self, graph_path: Path | None = None, areas_path: Path | None = None) -> Path:
        """Write ``graph.npz`` (``area_ids`` as a unicode array, ``edge_index`` int64,
        ``edge_weight`` float32; no pickle) atomically, and the covariate table to
        ``areas_path`` when given (a model bundle carries both). Returns ``graph_path``.

        With :meth:`load`, the only code that writes or reads ``graph.npz``."""
        from crimecast.io import atomic_path, write_parquet

        graph_path = Path(graph_path or ARTIFACTS.graph)
        with atomic_path(graph_path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, area_ids=np.asarray(self.area_ids, dtype=str),
                     edge_index=np.asarray(self.edge_index, dtype=np.int64),
                     edge_weight=np.asarray(self.edge_weight, dtype=np.float32))
        if areas_path is not None:
            write_parquet(areas_path, self.areas.rename_axis("area_id").reset_index())
        return graph_path

    @classmethod
    def load(cls, graph_path: Path | None = None, areas_path: Path | None = None) -> AreaGraph:
        """Read ``graph.npz`` and the area table (``areas.parquet``: the GeoParquet of the
        areas stage or a model bundle's table without geometry), in the graph's node order.
        Raises :class:`ContractError` when the table lacks some graph area."""
        data = np.load(graph_path or ARTIFACTS.graph, allow_pickle=False)
        area_ids = data["area_ids"].astype(str)
        # Plain pandas reads a GeoParquet's geometry as WKB bytes; the graph needs only
        # the attributes, so geopandas is not needed here.
        areas = pd.read_parquet(areas_path or ARTIFACTS.areas)
        areas = areas.drop(columns="geometry", errors="ignore")
        areas["area_id"] = areas["area_id"].astype(str)
        areas = areas.set_index("area_id")
        missing = set(area_ids) - set(areas.index)
        if missing:
            raise ContractError(f"{areas_path or ARTIFACTS.areas}: lacks {len(missing)} graph "
                                f"areas, e.g. {sorted(missing)[:3]}")
        return cls(area_ids, data["edge_index"].astype(np.int64),
                   data["edge_weight"].astype(np.float32), areas.loc[area_ids])


@dataclass
class Panel:
    """Weekly counts per (area, week, category), zero rows included.

    ``counts`` is the long frame with :data:`PANEL_COLUMNS`.
    :func:`crimecast.data.panel.panel_arrays` is the one way to turn it into the dense
    ``[areas, weeks, categories]`` arrays that models, the backtest and monitoring read.
    """

    counts: pd.DataFrame

    @classmethod
    def load(cls, path: Path | None = None) -> Panel:
        return cls(validate_panel(pd.read_parquet(path or ARTIFACTS.panel), "panel.parquet"))

    @property
    def weeks(self) -> pd.DatetimeIndex:
        """Every Monday from the first to the last week: a regular weekly grid (a week
        without rows is a gap, which :meth:`outage_weeks` lists)."""
        present = pd.DatetimeIndex(self.counts["week"].unique())
        if present.empty:
            return present
        return pd.date_range(present.min(), present.max(), freq="7D")

    @property
    def categories(self) -> list[str]:
        return order_categories(self.counts["category"].unique())

    @property
    def last_week(self) -> pd.Timestamp:
        return pd.Timestamp(self.counts["week"].max())

    def outage_weeks(self) -> pd.DatetimeIndex:
        """Weeks flagged ``outage`` plus grid weeks with no rows at all (gaps)."""
        flagged = pd.DatetimeIndex(self.counts.loc[self.counts["outage"], "week"].unique())
        gaps = self.weeks.difference(pd.DatetimeIndex(self.counts["week"].unique()))
        return flagged.union(gaps).sort_values()

    def until(self, last_week: pd.Timestamp) -> Panel:
        """The panel truncated to weeks up to and including ``last_week``."""
        return Panel(self.counts[self.counts["week"] <= last_week].reset_index(drop=True))


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
