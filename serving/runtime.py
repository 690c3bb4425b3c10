"""What one service worker holds: settings, keys, the prediction log and the current store.

The current :class:`~serving.store.ForecastStore` is one reference. A reload (admin call
or the alias poller) loads the new champion and builds its store in a background thread,
writes its table to ``served_forecasts``, and only then replaces the reference; requests
that already picked up the old store finish on it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import pandas as pd

from crimecast.contracts import HORIZONS
from crimecast.lifecycle.store import TrackingSettings, mlflow_client
from serving.auth import KeyRing
from serving.predlog import PredictionLog
from serving.settings import ServingSettings
from serving.store import ForecastStore, card_from_metadata, read_areas

log = logging.getLogger("crimecast.serving")


class NoChampion(RuntimeError):
    """The registry has no version under the configured alias (yet)."""


@dataclass(frozen=True)
class ReloadResult:
    previous_version: str | None
    version: str
    changed: bool


def _tracking() -> TrackingSettings:
    """Point MLflow at the configured store (one owner: crimecast.lifecycle.store); returns
    the tracking settings."""
    tracking = TrackingSettings.load()
    mlflow_client(tracking)
    return tracking


def resolve_version(alias: str) -> str | None:
    """The model version the alias points to now, or None (crimecast.lifecycle.registry contract)."""
    from crimecast.lifecycle.registry import resolve_alias

    version = resolve_alias(alias, _tracking())
    return None if version is None else str(version)


def load_store(version: str, alias: str, settings: ServingSettings) -> tuple[ForecastStore, pd.DataFrame]:
    """Load model ``version`` from the registry, compute its full forecast table once and
    index it. Returns the store and the raw table (for ``served_forecasts``)."""
    import mlflow.pyfunc

    tracking = _tracking()
    model = mlflow.pyfunc.load_model(f"models:/{tracking.registered_model}/{version}")
    forecast = model.predict(pd.DataFrame({"horizon": list(HORIZONS)}))
    python_model = model.unwrap_python_model()
    metadata = dict(getattr(python_model, "metadata", {}) or {})
    card = card_from_metadata(metadata, version, alias, forecast)
    geometry: dict[str, Any] = {}
    if settings.areas_file.exists():
        areas, geometry = read_areas(settings.areas_file, settings.hotspots.simplify_tolerance)
    else:
        # The model carries its own area table (covariates, groups) but no polygons.
        graph = getattr(python_model, "graph", None)
        areas = graph.areas if graph is not None else pd.DataFrame()
        log.warning("%s not found: hotspots GeoJSON will have no geometry", settings.areas_file)
    return ForecastStore(forecast, card, areas, settings, geometry), forecast


class Runtime:
    """Per-process state shared by the ASGI gateway and the BentoML service instance."""

    def __init__(self, settings: ServingSettings | None = None) -> None:
        self.settings = settings or ServingSettings.load()
        self.keyring = KeyRing(self.settings.keys_file,
                               os.environ.get(self.settings.keys.env))
        self.predlog: PredictionLog | None = None
        self.store: ForecastStore | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Open the prediction log, load the champion if there is one, start polling."""
        p = self.settings.predlog
        self.predlog = PredictionLog(self.settings.predlog_url(),
                                     sqlite_synchronous=p.sqlite_synchronous,
                                     batch_max=p.batch_max, schema=p.db_schema,
                                     checkpoint_seconds=p.checkpoint_seconds)
        try:
            self.reload()
        except NoChampion as exc:
            log.warning("%s; the service answers 503 until one is promoted", exc)
        if self.settings.alias_poll_seconds > 0:
            self._poller = threading.Thread(target=self._poll, name="alias-poller", daemon=True)
            self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self.predlog is not None:
            self.predlog.close()

    @property
    def version(self) -> str | None:
        store = self.store
        return store.card.version if store else None

    # -- reload ----------------------------------------------------------------------
    def reload(self) -> ReloadResult:
        """Swap to the alias's current version if it changed (blocking; run it in a
        thread from async code). Raises :class:`NoChampion` when the alias is unset."""
        with self._reload_lock:
            previous = self.version
            target = resolve_version(self.settings.alias)
            if target is None:
                raise NoChampion(f"no model version has the alias @{self.settings.alias}")
            if target == previous:
                return ReloadResult(previous, target, False)
            log.info("loading model version %s (@%s)", target, self.settings.alias)
            store, table = load_store(target, self.settings.alias, self.settings)
            if self.predlog is not None:
                self.predlog.store_served_forecasts(
                    target, store.card.last_observed_week, table).result()
            self.store = store  # one reference swap: in-flight requests keep the old store
            # The heap now holds MLflow, pandas, torch, ... and the new store: hundreds of
            # thousands of long-lived objects that every full collection would rescan
            # (a pause of 100+ ms on a request). Freeze them out of the collector's view.
            gc.collect()
            gc.freeze()
            log.info("serving model version %s (was %s)", target, previous)
            return ReloadResult(previous, target, True)

    async def reload_async(self) -> ReloadResult:
        return await asyncio.to_thread(self.reload)

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.alias_poll_seconds):
            try:
                self.reload()
            except NoChampion as exc:
                log.warning("%s", exc)
            except Exception:  # keep serving the current version
                log.exception("alias poll failed; still serving version %s", self.version)
