"""The bridge: one FastAPI app serving every legacy API, stateless apart from the metadata DB."""

from __future__ import annotations

import gc
import importlib
import logging
import re
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api_bridge import errors
from api_bridge.gateway import get_gateway
from api_bridge.unhandled import GuardedFastAPI
from flowbridge.settings import get_settings
from storage.metadata import migrate

log = logging.getLogger("flowbridge.bridge")

# One router module per legacy API, under api_bridge/routers/.
ROUTERS = ["traffic", "mrms", "offline", "dataflow", "gasflux"]


def _ensure_automations() -> None:
    from deployments.automations import ensure_automations

    try:
        ensure_automations(get_settings().zombie_after_seconds)
    except Exception as exc:  # the runner creates it too; a bridge must start even if Prefect is slow
        log.warning("could not ensure Prefect automations yet: %s", exc)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    await run_in_threadpool(migrate)
    await run_in_threadpool(_ensure_automations)
    # Prefect, pandas and SQLAlchemy leave ~200k long-lived objects: a full garbage collection over them
    # takes 60-150 ms, a pause for every poller at once. Frozen, collections skip them.
    gc.collect()
    gc.freeze()
    yield
    get_gateway().close()


def operation_id(route: APIRoute) -> str:
    """FastAPI's default id (name, path, method) without its one random method for a route serving several:
    `Bridge.openapi` gives each of that route's operations its own method suffix."""
    base = re.sub(r"\W", "_", f"{route.name}{route.path_format}")
    if len(route.methods) == 1:
        return f"{base}_{next(iter(route.methods)).lower()}"
    return base


class Bridge(GuardedFastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            with warnings.catch_warnings():  # FastAPI warns of the duplicates this method resolves
                warnings.filterwarnings("ignore", message="Duplicate Operation ID")
                _unique_operation_ids(super().openapi())
        return super().openapi()


def _unique_operation_ids(schema: dict[str, Any]) -> None:
    """An operationId shared by several operations (a route declared for several methods) gets each
    operation's method appended, so client generators and fuzzers can address every operation."""
    operations = [
        (method, op)
        for item in schema.get("paths", {}).values()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    ]
    counts = Counter(op["operationId"] for _method, op in operations)
    for method, op in operations:
        if counts[op["operationId"]] > 1:
            op["operationId"] = f"{op['operationId']}_{method}"


class RouterCORS:
    """Starlette's CORSMiddleware for the paths of one router only: GasFlux's document has
    GASFLUX_CORS_ORIGINS for its own paths, and the other legacy APIs never sent CORS headers."""

    def __init__(self, app: ASGIApp, *, routers: Iterable[APIRouter], **options: Any) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, **options)
        self.paths = tuple(
            route.path_regex for router in routers for route in router.routes if isinstance(route, APIRoute)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(path.match(scope["path"]) for path in self.paths):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_app() -> FastAPI:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(levelname)s - %(name)s - %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prefect API call is noise, and slow
    enabled = get_settings().telemetry
    app = Bridge(
        generate_unique_id_function=operation_id,
        telemetry={"tracing": enabled, "metrics": enabled, "logs": enabled},
        title="flowbridge",
        description="Legacy job APIs: 000 traffic, 001 offline, 002 GasFlux, 003 MRMS, 004 DataFlow.",
        lifespan=lifespan,
    )
    errors.install(app)
    for name in ROUTERS:
        module = importlib.import_module(f"api_bridge.routers.{name}.endpoints")
        app.include_router(module.router)
    app.add_middleware(
        RouterCORS,
        routers=[importlib.import_module("api_bridge.routers.gasflux.endpoints").router],
        allow_origins=get_settings().gasflux_cors_origins,
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Content-Type"],
        max_age=600,
    )
    return app
