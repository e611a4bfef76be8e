"""Warm start's fork-safety rule: the template starts nothing a fork breaks, and science forked from it
gives exactly what a cold interpreter gives."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deployments import warm_start


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd is gone by now
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def _template_facts() -> dict[str, Any]:
    """Run in a child: what it inherited from its parent at fork time."""
    import asyncio
    import sys
    import threading

    from threadpoolctl import threadpool_info

    from storage import filesystems, metadata

    template = sys.modules.get("deployments.warm_template")
    try:
        asyncio.get_running_loop()
        loop = True
    except RuntimeError:
        loop = False
    return {
        "marker": os.environ.get(warm_start.TEMPLATE_MARKER_ENV),
        "parent": os.getppid(),
        "at_fork": dict(getattr(template, "AT_FORK", {})),
        "python_threads_now": threading.active_count(),
        "blas_threads": [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"],
        "cold_blas_threads": template.cold_blas_threads() if template else None,
        "running_loop": loop,
        "sockets": _open_sockets(),
        "engines": metadata._engine.cache_info().currsize,
        "storages": filesystems._cached_storage.cache_info().currsize,
        "flows_loaded": all(
            name in sys.modules
            for name in (
                "flows.traffic.forecast",
                "flows.gasflux.processing",
                "flows.mrms.training",
                "flows.dataflow.run",
            )
        ),
    }


def _science() -> dict[str, Any]:
    """HistGradientBoosting, a pykrige grid and an MRMS training run, as a flow run would do them."""
    from pykrige.ok import OrdinaryKriging
    from sklearn.ensemble import HistGradientBoostingRegressor

    from storage.mrms.domain import Purpose
    from storage.mrms.repository import EarlyStop
    from tasks.mrms.training import REGISTRY, TrainingConfig, prepare_data, train_iteratively

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 6))
    y = x[:, 0] * 2 + np.sin(x[:, 1]) + rng.normal(scale=0.1, size=3000)
    hgb = HistGradientBoostingRegressor(max_iter=60, random_state=0).fit(x, y)

    px, py = rng.uniform(0, 100, 80), rng.uniform(0, 30, 80)
    pz = np.sin(px / 20) + py / 30 + rng.normal(scale=0.05, size=80)
    ok = OrdinaryKriging(
        px,
        py,
        pz,
        variogram_model="spherical",
        variogram_parameters={"sill": 0.6, "range": 40, "nugget": 0.05},
    )
    field, variance = ok.execute("grid", np.linspace(0, 100, 25), np.linspace(0, 30, 10))

    frame = pd.DataFrame(rng.normal(size=(2000, 5)), columns=list("abcde"))
    frame["label"] = (frame["a"] + frame["b"] > 0).astype(int)
    data = prepare_data(frame, target="label", purpose=Purpose.CLASSIFICATION, validation_fraction=0.2)
    outcome = train_iteratively(
        REGISTRY["mlp_classifier"],
        {"hidden_layer_sizes": [16]},
        data,
        TrainingConfig(steps=4),
        EarlyStop.parse(None),
    )
    return {
        "hgb": hgb.predict(x[:200]).tolist(),
        "kriged": np.asarray(field).tolist(),
        "variance": np.asarray(variance).tolist(),
        "mrms": [{k: v for k, v in step.items() if k != "eps"} for step in outcome.history],
    }


def _call(context: multiprocessing.context.BaseContext, fn) -> Any:  # type: ignore[no-untyped-def]
    with context.Pool(1) as pool:  # type: ignore[attr-defined]
        return pool.apply(fn)


@pytest.fixture(scope="module")
def template() -> multiprocessing.context.BaseContext:
    context = warm_start.template_context()
    warm_start.start_template()
    return context


def test_runs_fork_from_a_template_that_started_nothing(template) -> None:  # type: ignore[no-untyped-def]
    facts = _call(template, _template_facts)
    assert facts["marker"] == str(facts["parent"]), "the child was not forked from the template"
    assert facts["marker"] != str(os.getpid())
    assert facts["flows_loaded"]
    # the template itself, just before forking this child: its main thread and nothing else
    assert facts["at_fork"] == {"python_threads": 1, "native_threads": 1}
    # and the child has the BLAS threads a cold process would have
    assert facts["blas_threads"] and set(facts["blas_threads"]) == {facts["cold_blas_threads"]}
    assert not facts["running_loop"]
    assert facts["engines"] == 0 and facts["storages"] == 0  # created lazily by each run, never inherited
    assert facts["sockets"] == 0


def test_forked_science_matches_a_cold_process(template) -> None:  # type: ignore[no-untyped-def]
    warm = _call(template, _science)
    cold = _call(multiprocessing.get_context("spawn"), _science)
    assert warm["hgb"] == cold["hgb"]
    assert warm["kriged"] == cold["kriged"] and warm["variance"] == cold["variance"]
    assert warm["mrms"] == cold["mrms"]
    assert len(warm["mrms"]) == 4


def test_flow_is_named_by_import_path() -> None:
    from flows.diagnostics import probe

    assert warm_start.flow_import_path(probe) == "flows.diagnostics:probe"
