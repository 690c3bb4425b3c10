"""The crimecast prediction service (BentoML 1.4).

    bentoml serve serving.service:CrimecastService --host 127.0.0.1 --port 3000
    # or: crimecast serve

Endpoints (POST, JSON; schemas in /docs.json; all need ``X-API-Key``):
``/forecast``, ``/hotspots``, ``/allocate``, ``/outcomes``, ``/model``, ``/reload`` (admin).
``/healthz``, ``/livez``, ``/readyz`` stay open; ``/readyz`` is 503 until a model is loaded.

The service loads ``models:/<registered_model>@champion`` once, computes its whole
forecast table once, and answers every request from that table
(:class:`serving.store.ForecastStore`). Keys, limits, validation and the prediction log sit
in the ASGI gateway (:mod:`serving.gateway`) in front of the handlers, so each handler
is only the lookup. Handlers never call each other through ``self`` (that would go through
HTTP in BentoML 1.4 and miss the key): shared logic lives in plain methods of the store.
"""

from __future__ import annotations

import asyncio
import inspect
from http import HTTPStatus
from typing import Any

import bentoml
import bentoml._internal.server.http.traffic as bentoml_traffic

from crimecast.errors import USER_ERROR_EXIT, CrimecastError, report
from serving import httplimits
from serving.auth import check_keys
from serving.dosage import superseded
from serving.gateway import ENDPOINTS, SCOPE_KEY, Gateway, RequestTimeout
from serving.predlog import DOSAGE, Outcome
from serving.runtime import NoChampion, Runtime
from serving.schemas import (
    AllocateRequest,
    AllocateResponse,
    DosageRequest,
    DosageResponse,
    EmptyRequest,
    ForecastRequest,
    ForecastResponse,
    HotspotsRequest,
    HotspotsResponse,
    ModelResponse,
    OutcomesRequest,
    OutcomesResponse,
    ReloadResponse,
)
from serving.settings import ServingSettings
from serving.store import ForecastStore


def _settings_or_exit() -> ServingSettings:
    """The settings, with the keys checked: a user mistake here (a malformed keys file or
    CRIMECAST_API_KEYS, a bad serving.yaml) is one line and exit code 2 in the process
    that imports this module first (``bentoml serve``), so no worker crash-loops."""
    try:
        settings = ServingSettings.load()
        check_keys(settings)
    except CrimecastError as exc:
        report(exc)
        raise SystemExit(USER_ERROR_EXIT) from None
    return settings


SETTINGS = _settings_or_exit()

# BentoML builds its middleware stack when the worker creates the ASGI app (after this
# import) and looks TimeoutMiddleware up in this module then: swap in the non-leaking one
# (see serving.gateway.RequestTimeout for the stall it caused).
if hasattr(bentoml_traffic, "TimeoutMiddleware"):
    bentoml_traffic.TimeoutMiddleware = RequestTimeout
# Bound request headers in the HTTP parser (serving.httplimits), before they are buffered.
httplimits.install(SETTINGS.limits.max_header_bytes, SETTINGS.limits.max_headers)
# Filled by the service instance at startup; the gateway reads it (same worker process).
RUNTIME: list[Runtime] = []


class ServiceUnavailable(bentoml.exceptions.BentoMLException):
    error_code = HTTPStatus.SERVICE_UNAVAILABLE


def _request_info(ctx: bentoml.Context) -> dict[str, Any]:
    """The gateway's per-request record (request id, key name, parsed request); the
    handler adds the model version and a response summary for the prediction log."""
    return ctx.request.scope.setdefault(SCOPE_KEY, {})


@bentoml.service(
    name="crimecast",
    workers=SETTINGS.workers,
    http={"host": SETTINGS.host, "port": SETTINGS.port},
    traffic={"timeout": 60},
    logging={"access": {"enabled": SETTINGS.access_log}},
    metrics={"enabled": SETTINGS.metrics},
    # Without an exporter the per-request OpenTelemetry spans only cost CPU; the gateway's
    # X-Request-ID and the prediction log identify requests instead.
    tracing={} if SETTINGS.tracing else {"excluded_urls": list(ENDPOINTS)},
)
class CrimecastService:
    """Weekly crime forecasts per census tract, hotspots and allocations."""

    def __init__(self) -> None:
        runtime = Runtime(SETTINGS)
        runtime.start()
        RUNTIME[:] = [runtime]
        self.runtime = runtime
        # BentoML 1.4.40 rebuilds the bound API wrapper (inspect.signature +
        # functools.wraps) on every request when it looks the method up on this instance;
        # profiling showed ~10 % of the event loop there. Build each wrapper once: an
        # instance attribute shadows the (non-data) descriptor, and BentoML only uses its
        # `.local` caller. Skipped if a BentoML version no longer offers `.local`.
        api_names = [n for n, m in vars(type(self)).items() if hasattr(m, "input_spec")]
        for name in api_names:
            bound = getattr(self, name)
            if callable(getattr(bound, "local", None)):
                setattr(self, name, bound)

    def __is_ready__(self) -> bool:
        return self.runtime.store is not None

    @bentoml.on_shutdown
    def _close(self) -> None:
        self.runtime.stop()

    def _store(self, ctx: bentoml.Context) -> tuple[ForecastStore, dict[str, Any]]:
        # Take the reference once: a reload swapping it mid-request does not matter.
        store = self.runtime.store
        if store is None:
            raise ServiceUnavailable("no model is loaded yet")
        info = _request_info(ctx)
        info["model_version"] = store.card.version
        return store, info

    @bentoml.api
    async def forecast(self, request: ForecastRequest, /, ctx: bentoml.Context) -> ForecastResponse:
        """Expected counts with 80 % and 95 % intervals per tract and category for one
        horizon (1-4 weeks after the last observed week)."""
        store, info = self._store(ctx)
        answer = store.forecast(request)
        info["summary"] = {"rows": len(answer.forecasts), "target_week": str(answer.target_week)}
        return answer

    @bentoml.api
    async def hotspots(self, request: HotspotsRequest, /, ctx: bentoml.Context
                       ) -> HotspotsResponse:
        """The highest-risk tracts: top k by expected count, or the densest tracts covering
        a share of the land area; ``format: geojson`` for a map layer."""
        store, info = self._store(ctx)
        answer = store.hotspots(request)
        ids = [f.id for f in answer.features or []] + [h.area_id for h in answer.hotspots or []]
        info["summary"] = {"area_ids": ids, "horizon": request.horizon,
                           "category": request.category}
        return answer

    @bentoml.api
    async def allocate(self, request: AllocateRequest, /, ctx: bentoml.Context) -> AllocateResponse:
        """Split N patrol units or outreach slots across tracts (largest remainder), with an
        optional cap on each demographic group's share relative to its share of risk."""
        store, info = self._store(ctx)
        answer = store.allocate(request)
        info["summary"] = {"kind": request.kind, "units": {a.area_id: a.units
                                                           for a in answer.allocations},
                           "cap_ratio": answer.cap_ratio,
                           "target_week": answer.target_week.isoformat()}
        if answer.trial is not None:  # the plan's record keeps what reproduces the draw
            info["summary"]["trial"] = answer.trial.model_dump()
        return answer

    @bentoml.api
    async def outcomes(self, request: OutcomesRequest, /, ctx: bentoml.Context) -> OutcomesResponse:
        """(outcomes scope) Record observed counts for finished weeks. Every write is kept
        with who and when (``outcomes_history``); re-posting a row makes it the latest."""
        _, info = self._store(ctx)
        assert self.runtime.predlog is not None
        rows = [Outcome(week=o.week, area_id=o.area_id, category=o.category, count=o.count)
                for o in request.outcomes]
        written = await asyncio.wrap_future(self.runtime.predlog.upsert_outcomes(
            rows, info.get("key_name"), info.get("request_id")))
        weeks = sorted({o.week for o in request.outcomes})
        info["summary"] = {"written": written, "weeks": [str(w) for w in weeks]}
        return OutcomesResponse(written=written, weeks=weeks)

    @bentoml.api
    async def dosage(self, request: DosageRequest, /, ctx: bentoml.Context) -> DosageResponse:
        """(dosage scope) Record delivered interventions: patrol minutes, outreach contacts,
        programme enrolments per area and week. Every write is kept with who and when
        (``dosage_history``); re-posting a row makes it the current value and the answer
        says how many rows superseded an earlier one."""
        _, info = self._store(ctx)
        assert self.runtime.predlog is not None
        request_id = info.get("request_id") or ""
        written = await asyncio.wrap_future(self.runtime.predlog.append(
            DOSAGE, [r.model_dump() for r in request.dosage], info.get("key_name"),
            request_id))
        replaced = await asyncio.to_thread(superseded, self.runtime.predlog, request_id)
        weeks = sorted({r.week for r in request.dosage})
        info["summary"] = {"written": written, "superseded": replaced,
                           "weeks": [str(w) for w in weeks]}
        return DosageResponse(written=written, superseded=replaced, weeks=weeks)

    @bentoml.api
    async def model(self, request: EmptyRequest, /, ctx: bentoml.Context) -> ModelResponse:
        """The served model version, its alias, training data version and backtest metrics."""
        store, info = self._store(ctx)
        info["summary"] = {"version": store.card.version}
        return store.model_response().model_copy(update={"worker_id": self.runtime.worker_id})

    @bentoml.api
    async def reload(self, request: EmptyRequest, /, ctx: bentoml.Context) -> ReloadResponse:
        """(admin) Make every worker load the version the alias points to now; answers
        when all live workers serve it (or after ``reload_wait_seconds``, listing each
        worker's version). Requests keep being answered by the current version until the
        new one is ready."""
        info = _request_info(ctx)
        try:
            result = await self.runtime.reload_async(info.get("key_name"))
        except NoChampion as exc:
            raise ServiceUnavailable(str(exc)) from None
        info["model_version"] = result.version
        info["summary"] = {"previous_version": result.previous_version,
                           "version": result.version, "changed": result.changed,
                           "all_swapped": result.all_swapped, "workers": result.workers}
        return ReloadResponse(previous_version=result.previous_version, version=result.version,
                              changed=result.changed, all_swapped=result.all_swapped,
                              workers=result.workers)


# The handlers' docstrings describe their operations in /docs.json (serving.openapi).
_DESCRIPTIONS = {f"/{name}": inspect.cleandoc(CrimecastService.apis[name].doc or "")
                 for name in ("forecast", "hotspots", "allocate", "outcomes", "dosage", "model",
                              "reload")}
CrimecastService.add_asgi_middleware(Gateway, runtime=RUNTIME, descriptions=_DESCRIPTIONS)
