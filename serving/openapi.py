"""The OpenAPI document (``/docs.json``) and the Swagger page (``/``) of the API.

BentoML 1.4's own document drops ``null`` from optional fields, declares no security
scheme, documents 400/404/500 but none of the statuses the gateway answers, uses
placeholder examples and calls the service "crimecast:dev" version "None"; its Swagger
page loads Google Tag Manager. This module builds the document from the pydantic models
(converted to OpenAPI 3.0: ``anyOf [X, null]`` becomes ``nullable``), with

- an ``apiKey`` security scheme on ``X-API-Key`` (Swagger's Authorize button), and the
  scope each endpoint needs;
- every status the gateway answers (401, 403, 413, 422, 431, 503) with its body;
- examples and enums from the served model (an area id it knows, its categories) and
  the configured limits (``maxItems``, ``maximum``);
- title and version from the project;

and a Swagger page that loads only the Swagger assets BentoML ships (served locally
under ``/static_content/``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from importlib import metadata
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serving.schemas import (
    AllocateResponse,
    DosageResponse,
    ErrorBody,
    ForbiddenBody,
    ForecastResponse,
    HeadersTooLargeBody,
    HotspotsResponse,
    InvalidRequestBody,
    ModelResponse,
    OutcomesResponse,
    ReloadResponse,
    TooLargeBody,
)
from serving.settings import ServingSettings

#: Response body per API path.
RESPONSES: dict[str, type[BaseModel]] = {
    "/forecast": ForecastResponse, "/hotspots": HotspotsResponse,
    "/allocate": AllocateResponse, "/outcomes": OutcomesResponse, "/dosage": DosageResponse,
    "/model": ModelResponse, "/reload": ReloadResponse,
}
ERRORS: list[tuple[int, str, type[BaseModel]]] = [
    (401, "No key, or a key that is not accepted (the body is the same whatever was wrong).",
     ErrorBody),
    (403, "The key lacks the scope this endpoint needs.", ForbiddenBody),
    (413, "The body is larger than limits.max_body_bytes.", TooLargeBody),
    (422, "The body is not valid: every problem found is listed.", InvalidRequestBody),
    (431, "Too many request headers, or too large in total.", HeadersTooLargeBody),
    (503, "No model is loaded yet, or the prediction log cannot be written.", ErrorBody),
]
#: Enumerate area ids in the document up to this many (an H3 city has too many).
MAX_ENUMERATED_AREAS = 2000
SECURITY_SCHEME = "ApiKeyAuth"
HEALTH = {"/healthz": "Liveness of the HTTP server.", "/livez": "Liveness of the HTTP server.",
          "/readyz": "200 once a model is loaded, 503 before."}


def project_version() -> str:
    try:
        return metadata.version("crimecast")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def openapi30(schema: Any) -> Any:
    """A pydantic (JSON Schema 2020-12) schema in OpenAPI 3.0 form: ``null`` alternatives
    become ``nullable: true`` (with ``null`` in an enum), ``const`` becomes a one-value
    enum, ``examples`` becomes ``example``."""
    if isinstance(schema, list):
        return [openapi30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: openapi30(v) for k, v in schema.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            out.pop(key)
            if len(rest) == 1:
                only = rest[0]
                out.update({"allOf": [only]} if "$ref" in only else only)
            else:
                out[key] = rest
            out["nullable"] = True
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if "examples" in out:
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    return out


def _error_response(description: str, ref: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": ref}}}}


def _constrain(components: dict[str, Any], store: Any, settings: ServingSettings) -> None:
    """Enums, examples and limits from the served model and the settings."""
    limits = settings.limits

    def props(name: str) -> dict[str, Any]:
        return components.get(name, {}).get("properties", {})

    def category_enum(prop: dict[str, Any], nullable: bool) -> None:
        if store is None:
            return
        prop.pop("allOf", None)
        prop["type"] = "string"
        prop["enum"] = [*store.categories, *([None] if nullable else [])]
        prop["example"] = store.categories[0]

    for name in ("ForecastRequest", "HotspotsRequest", "AllocateRequest"):
        if "category" in props(name):
            category_enum(props(name)["category"], nullable=True)
    forecast = props("ForecastRequest")
    if "area_ids" in forecast:
        forecast["area_ids"]["maxItems"] = limits.max_area_ids
        if store is not None:
            items = forecast["area_ids"].setdefault("items", {"type": "string"})
            if len(store.area_ids) <= MAX_ENUMERATED_AREAS:
                items["enum"] = list(store.area_ids)
            items["example"] = store.area_ids[0]
            forecast["area_ids"]["example"] = store.area_ids[:2]
    hotspots = props("HotspotsRequest")
    if "k" in hotspots:
        hotspots["k"]["maximum"] = limits.max_hotspots
        # k and area_share exclude each other (null counts as not given)
        components["HotspotsRequest"]["not"] = {
            "required": ["k", "area_share"],
            "properties": {"k": {"type": "integer"}, "area_share": {"type": "number"}}}
    allocate = props("AllocateRequest")
    if "units" in allocate:
        allocate["units"]["maximum"] = limits.max_units
    outcomes = props("OutcomesRequest")
    if "outcomes" in outcomes:
        outcomes["outcomes"]["maxItems"] = limits.max_outcomes
    dosage = props("DosageRequest")
    if "dosage" in dosage:
        dosage["dosage"]["maxItems"] = limits.max_outcomes
    dosage_row = props("DosageRow")
    if dosage_row and store is not None:
        if len(store.area_ids) <= MAX_ENUMERATED_AREAS:
            dosage_row["area_id"]["enum"] = list(store.area_ids)
        dosage_row["area_id"]["example"] = store.area_ids[0]
        last = store.card.last_observed_week
        dosage_row["week"]["example"] = str(last - timedelta(days=last.weekday()))
    row = props("OutcomeRow")
    if row and store is not None:
        category_enum(row["category"], nullable=False)
        if len(store.area_ids) <= MAX_ENUMERATED_AREAS:
            row["area_id"]["enum"] = list(store.area_ids)
        row["area_id"]["example"] = store.area_ids[0]
        last = store.card.last_observed_week
        row["week"]["example"] = str(last - timedelta(days=last.weekday()))


def build_document(settings: ServingSettings, store: Any, descriptions: dict[str, str],
                   requests: dict[str, type[BaseModel] | None], scopes: dict[str, str]
                   ) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the API paths in ``requests`` (path -> request model)
    with the given per-path ``descriptions`` and needed ``scopes``; ``store`` (the served
    :class:`~serving.store.ForecastStore`, or None) supplies enums and examples."""
    models: list[tuple[type[BaseModel], str]] = []
    for path, request in requests.items():
        if request is not None:
            models.append((request, "validation"))
        if path in RESPONSES:
            models.append((RESPONSES[path], "serialization"))
    models += [(body, "serialization") for _, _, body in ERRORS]
    refs, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
    components = openapi30(defs.get("$defs", {}))
    _constrain(components, store, settings)

    paths: dict[str, Any] = {}
    for path, request in requests.items():
        operation: dict[str, Any] = {
            "operationId": path.strip("/"),
            "summary": descriptions.get(path, "").split("\n")[0],
            "description": (f"{descriptions.get(path, '')}\n\nNeeds a key with the "
                            f"`{scopes[path]}` scope."),
            "tags": ["API"],
            "security": [{SECURITY_SCHEME: []}],
            "responses": {
                "200": {"description": "The answer.", "content": {"application/json": {
                    "schema": {"$ref": refs[(RESPONSES[path], "serialization")]["$ref"]}}}},
                **{str(code): _error_response(text, refs[(body, "serialization")]["$ref"])
                   for code, text, body in ERRORS},
            },
        }
        if request is not None:
            # The gateway reads an empty body as {}: required only when a field is.
            required = any(f.is_required() for f in request.model_fields.values())
            operation["requestBody"] = {"required": required, "content": {"application/json": {
                "schema": {"$ref": refs[(request, "validation")]["$ref"]}}}}
        paths[path] = {"post": operation}
    for path, text in HEALTH.items():
        paths[path] = {"get": {"operationId": path.strip("/"), "summary": text,
                               "tags": ["health"], "security": [],
                               "responses": {"200": {"description": "OK",
                                                     "content": {"text/plain": {}}},
                                             **({"503": {"description": "Not ready",
                                                         "content": {"text/plain": {}}}}
                                                if path == "/readyz" else {})}}}
    city = (store.card.city or {}).get("name") if store is not None else None
    version = store.card.version if store is not None else None
    return {
        "openapi": "3.0.2",
        "info": {
            "title": "crimecast prediction API",
            "version": project_version(),
            "description": (
                "Weekly crime forecasts per place (never per person), hotspots and "
                "allocations of patrol units or outreach slots"
                + (f" for {city}" if city else "")
                + (f", served by model version {version} (@{settings.alias})." if version
                   else ".")
                + " Every API call needs an `X-API-Key` header; scopes: `read` (forecast, "
                "hotspots, allocate, model), `outcomes` (ground truth), `dosage` (delivered "
                "interventions), `admin` (reload)."),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {SECURITY_SCHEME: {"type": "apiKey", "in": "header",
                                                  "name": "X-API-Key"}},
        },
    }


def document_bytes(settings: ServingSettings, store: Any, descriptions: dict[str, str],
                   requests: dict[str, type[BaseModel] | None], scopes: dict[str, str]
                   ) -> bytes:
    return json.dumps(build_document(settings, store, descriptions, requests, scopes),
                      separators=(",", ":")).encode()


SWAGGER_PAGE = b"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>crimecast prediction API</title>
    <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css" />
    <link rel="stylesheet" type="text/css" href="./static_content/index.css" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="./static_content/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="./static_content/swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
"""
