"""What one service worker holds: settings, keys, the prediction log and the current store.

The current :class:`~serving.store.ForecastStore` is one reference. A reload loads the new
champion and builds its store in a background thread, writes its table to
``served_forecasts``, and only then replaces the reference; requests that already picked
up the old store finish on it.

One version across workers: each worker is its own process and an HTTP call (or a whole
keep-alive connection) reaches only one of them. So ``/reload`` does not swap "this"
worker only: it publishes the target version in the prediction log's
``serving_generation`` row, which every worker checks every ``version_watch_seconds``
(a read of one row), and then waits until every live worker (a ``serving_workers`` row
with a recent heartbeat) reports the new version, up to ``reload_wait_seconds``. The
answer lists each worker's version. The alias poller (``alias_poll_seconds``) still
follows promotions and rollbacks made without a ``/reload`` call.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    #: ``{"worker_id", "version"}`` of every live worker when the reload answered
    workers: list[dict[str, Any]] = field(default_factory=list)
    all_swapped: bool = True


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
    card = card_from_metadata(metadata, version, alias, forecast, _panel_first_week())
    geometry: dict[str, Any] = {}
    if settings.areas_file.exists():
        areas, geometry = read_areas(settings.areas_file, settings.hotspots.simplify_tolerance)
    else:
        # The model carries its own area table (covariates, groups) but no polygons.
        graph = getattr(python_model, "graph", None)
        areas = graph.areas if graph is not None else pd.DataFrame()
        log.warning("%s not found: hotspots GeoJSON will have no geometry", settings.areas_file)
    return ForecastStore(forecast, card, areas, settings, geometry), forecast


def _panel_first_week() -> Any:
    """First week of the panel artifact, for models that do not record it (or None)."""
    from crimecast.contracts import ARTIFACTS

    try:
        import pyarrow.parquet as pq

        weeks = pq.read_table(ARTIFACTS.panel, columns=["week"]).column("week")
        return pd.Timestamp(weeks.to_pandas().min()).date() if len(weeks) else None
    except Exception:  # noqa: BLE001 - no panel here (e.g. a container): no lower bound
        return None


class Runtime:
    """Per-process state shared by the ASGI gateway and the BentoML service instance."""

    def __init__(self, settings: ServingSettings | None = None) -> None:
        self.settings = settings or ServingSettings.load()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.started_at = datetime.now(UTC)
        self.predlog: PredictionLog | None = None
        # Raises ApiKeyError on a malformed keys file: a startup error.
        self.keyring = KeyRing(self.settings.keys_file, os.environ.get(self.settings.keys.env),
                               on_invalid=self._keys_alert)
        self.store: ForecastStore | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seen_generation: int | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Open the prediction log, load the champion if there is one, start watching."""
        p = self.settings.predlog
        self.predlog = PredictionLog(self.settings.predlog_url(),
                                     sqlite_synchronous=p.sqlite_synchronous,
                                     batch_max=p.batch_max, schema=p.db_schema,
                                     checkpoint_seconds=p.checkpoint_seconds,
                                     wal_limit_bytes=p.wal_limit_bytes)
        published = self.predlog.published_version(self.settings.alias)
        self._seen_generation = published[1] if published else None
        try:
            self.reload_local()
        except NoChampion as exc:
            log.warning("%s; the service answers 503 until one is promoted", exc)
        self._heartbeat()
        self._spawn(self._watch, "version-watch")
        if self.settings.alias_poll_seconds > 0:
            self._spawn(self._poll, "alias-poller")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self.predlog is not None:
            try:
                self.predlog.forget_worker(self.worker_id).result(5)
            except Exception:  # noqa: BLE001 - a stale row ages out by its heartbeat
                log.warning("could not remove worker row %s", self.worker_id)
            self.predlog.close()

    @property
    def version(self) -> str | None:
        store = self.store
        return store.card.version if store else None

    def _keys_alert(self, message: str) -> None:
        if self.predlog is not None:
            self.predlog.record_event("keys_file_invalid", message, self.worker_id, once=True)

    # -- reload ----------------------------------------------------------------------
    def reload_local(self, target: str | None = None) -> ReloadResult:
        """Swap this worker to ``target`` (default: the alias's current version) if it
        changed (blocking; run it in a thread from async code). Raises
        :class:`NoChampion` when the alias is unset."""
        with self._reload_lock:
            previous = self.version
            if target is None:
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
        self._heartbeat()
        return ReloadResult(previous, target, True)

    def reload(self, requested_by: str | None = None) -> ReloadResult:
        """Make every worker serve the alias's current version: publish it, swap here,
        then wait until every live worker reports it (or ``reload_wait_seconds``)."""
        target = resolve_version(self.settings.alias)
        if target is None:
            raise NoChampion(f"no model version has the alias @{self.settings.alias}")
        assert self.predlog is not None, "runtime not started"
        generation = self.predlog.publish_version(self.settings.alias, target,
                                                  requested_by).result()
        self._seen_generation = generation
        local = self.reload_local(target)
        deadline = time.monotonic() + self.settings.reload_wait_seconds
        while True:
            workers = [{"worker_id": w["worker_id"], "version": w["version"]}
                       for w in self.predlog.live_workers(self._live_seconds)]
            swapped = all(w["version"] == target for w in workers)
            if swapped or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not swapped:
            log.warning("reload to %s: not every worker swapped within %.0f s: %s", target,
                        self.settings.reload_wait_seconds, workers)
        return ReloadResult(local.previous_version, target, local.changed, workers, swapped)

    async def reload_async(self, requested_by: str | None = None) -> ReloadResult:
        return await asyncio.to_thread(self.reload, requested_by)

    # -- the shared signal ---------------------------------------------------------------
    @property
    def _heartbeat_seconds(self) -> float:
        return max(1.0, self.settings.version_watch_seconds)

    @property
    def _live_seconds(self) -> float:
        """A worker whose heartbeat is older than this is taken for gone."""
        return max(5.0, 5 * self._heartbeat_seconds)

    def _heartbeat(self) -> None:
        if self.predlog is not None:
            self.predlog.heartbeat(self.worker_id, socket.gethostname(), os.getpid(),
                                   self.version, self.started_at).result(30)

    def _watch(self) -> None:
        """Follow the published version; heartbeat so /reload knows who serves what."""
        last_beat = time.monotonic()
        while not self._stop.wait(self.settings.version_watch_seconds):
            try:
                assert self.predlog is not None
                published = self.predlog.published_version(self.settings.alias)
                if published is not None and published[1] != self._seen_generation:
                    self._seen_generation = published[1]
                    if published[0] != self.version:
                        self.reload_local(published[0])
                if time.monotonic() - last_beat >= self._heartbeat_seconds:
                    self._heartbeat()
                    last_beat = time.monotonic()
            except Exception:  # keep serving the current version
                log.exception("version watch failed; still serving version %s", self.version)

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.alias_poll_seconds):
            try:
                self.reload_local()
            except NoChampion as exc:
                log.warning("%s", exc)
            except Exception:  # keep serving the current version
                log.exception("alias poll failed; still serving version %s", self.version)
