"""The two reference servers of benchmarks/serving.py, doing the same dict lookup as
``/forecast`` (rows of a few tracts for one horizon and category), without keys or a
prediction log:

- ``HelloService``: a hello-world BentoML service with default settings (the peer);
- ``bare_app``: a bare Starlette endpoint on uvicorn (the limit of this machine/client).

The table is synthetic, shaped like the served one (``BENCH_AREAS`` tracts x 3 categories
x 4 horizons); only its size matters here.
"""

from __future__ import annotations

import os

import bentoml
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

AREAS = [f"42101{i:06d}" for i in range(int(os.environ.get("BENCH_AREAS", "408")))]
CATEGORIES = ("violent", "property", "other")
TABLE = {
    (h, c): {a: {"area_id": a, "category": c, "week": "2025-01-06", "horizon": h,
                 "mean": 1.0 + i % 7, "lower_80": 0.0, "upper_80": 3.0 + i % 7,
                 "lower_95": 0.0, "upper_95": 5.0 + i % 7}
             for i, a in enumerate(AREAS)}
    for h in (1, 2, 3, 4) for c in CATEGORIES
}


def lookup(horizon: int, category: str, area_ids: list[str]) -> dict:
    rows = TABLE[(horizon, category)]
    return {"model_version": "1", "data_week": "2024-12-30", "target_week": "2025-01-06",
            "horizon": horizon, "forecasts": [rows[a] for a in area_ids]}


class Row(BaseModel):
    area_id: str
    category: str
    week: str
    horizon: int
    mean: float
    lower_80: float
    upper_80: float
    lower_95: float
    upper_95: float


class Answer(BaseModel):
    model_version: str
    data_week: str
    target_week: str
    horizon: int
    forecasts: list[Row]


@bentoml.service(name="hello")
class HelloService:
    @bentoml.api
    def forecast(self, horizon: int = 1, category: str = "violent",
                 area_ids: list[str] | None = None) -> Answer:
        return Answer(**lookup(horizon, category, area_ids or []))


async def bare_forecast(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse(lookup(body["horizon"], body["category"], body["area_ids"]))


bare_app = Starlette(routes=[Route("/forecast", bare_forecast, methods=["POST"])])
