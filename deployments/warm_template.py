"""The warm template: imported once by the runner's forkserver, inherited by every flow run it forks.

What belongs here is per-process work that every run would otherwise repeat: importing prefect's engine,
every registered flow module with its scientific stack (pandas, scikit-learn, pykrige, skops' type index)
and the holiday calendars. What must never happen here is anything a fork does not carry safely into a
child (the fork-safety rule, tested in tests/unit/test_warm_start.py):

- no thread, event loop or OpenMP/BLAS pool is started: OpenBLAS and pyarrow's jemalloc start worker
  threads when they load, so the template loads them with those off (`_QUIET_LOAD`) and every forked child
  gets the BLAS threads a cold process would have back (`_restore_in_child`); the template calls no
  OpenMP code, so libgomp's pool does not exist until a run starts it;
- no network client, socket, database engine or open file is created (SQLAlchemy engines, fsspec
  filesystems, Prefect clients are created lazily by each run, in the child);
- settings are built once for the template's environment and reused by a run only when its own
  environment is the same (`warm_start._settings_for_run`, `_refresh_own_settings`).

Importing this module outside the forkserver is harmless but pointless; only the forkserver sets the marker.
"""

from __future__ import annotations

import importlib
import os
import threading

# set before anything loads numpy/scipy/pyarrow: these libraries start threads at load time otherwise
_QUIET_LOAD = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}
_USER_ENV = {name: os.environ.get(name) for name in _QUIET_LOAD}
os.environ.update(_QUIET_LOAD)

import prefect.flow_engine  # noqa: E402  the engine every run executes
import prefect.task_engine  # noqa: E402, F401
from prefect.client.orchestration import get_client  # noqa: E402, F401

from deployments.warm_start import TEMPLATE_MARKER_ENV, patch_engine, prebuild_settings  # noqa: E402
from flowbridge.settings import get_settings  # noqa: E402
from flows.registry import JOB_TYPES  # noqa: E402


def _preload() -> None:
    for job in JOB_TYPES.values():
        importlib.import_module(job.flow.partition(":")[0])
        if job.parameters:
            importlib.import_module(job.parameters.partition(":")[0])
    import holidays

    # country modules load lazily on first use; load the default calendar's now
    holidays.country_holidays(get_settings().holiday_country)


def cold_blas_threads() -> int:
    """What OpenBLAS would have started in a cold process, by its own rules (env, else usable cores)."""
    for name in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        value = (_USER_ENV.get(name) if name in _USER_ENV else os.environ.get(name)) or ""
        if value.strip().isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _restore_env() -> None:
    for name, value in _USER_ENV.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _restore_in_child() -> None:
    from threadpoolctl import ThreadpoolController

    ThreadpoolController().limit(limits=cold_blas_threads(), user_api="blas")


# the template's threads just before each fork, for the fork-safety test and for operators
AT_FORK: dict[str, int] = {}


def _census() -> None:
    AT_FORK.update(python_threads=threading.active_count(), native_threads=native_thread_count())


def native_thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux: Python's own count is the best we have
        return threading.active_count()


_preload()
patch_engine()
_restore_env()
prebuild_settings()
os.register_at_fork(before=_census, after_in_child=_restore_in_child)
os.environ[TEMPLATE_MARKER_ENV] = str(os.getpid())
