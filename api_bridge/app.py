"""The bridge: one FastAPI app serving every legacy API, stateless apart from the metadata DB."""

from __future__ import annotations

import gc
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from api_bridge import errors
from api_bridge.jobs import get_gateway
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


def create_app() -> FastAPI:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(levelname)s - %(name)s - %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prefect API call is noise, and slow
    enabled = get_settings().telemetry
    app = FastAPI(
        telemetry={"tracing": enabled, "metrics": enabled, "logs": enabled},
        title="flowbridge",
        description="Legacy job APIs: 000 traffic, 001 offline, 002 GasFlux, 003 MRMS, 004 DataFlow.",
        lifespan=lifespan,
    )
    errors.install(app)
    for name in ROUTERS:
        module = importlib.import_module(f"api_bridge.routers.{name}")
        app.include_router(module.router)
    return app
