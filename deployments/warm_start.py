"""Warm job start: each flow run is a fresh child forked from a template that imported everything once.

Prefect's runner starts every run of a served deployment as `python -m prefect.engine` (or, for a flow it
holds in memory, with `multiprocessing`'s *spawn*): a new interpreter that imports prefect, pandas,
scikit-learn and the flow module again, 3+ s before the first line of the job. Here the runner starts a
*forkserver* whose single
process imports `deployments.warm_template` (every registered flow and its scientific stack, plus the
per-process caches) once; each run is then an `os.fork()` of that template. A run still has a process of its
own: a crash, a leak or a SIGKILL (OOM) ends that child only, and the forkserver, started again by
multiprocessing if it ever dies, goes on forking.

Fork safety is the template's rule (see `deployments/warm_template.py`): it imports and builds caches, but
starts no thread, event loop, OpenMP pool or network client, and opens no database or socket, so a child
inherits nothing that a fork breaks.

The seam is the module-level `run_flow_in_subprocess` reference of Prefect's DirectSubprocessStarter, which
Prefect documents as the override point ("patch the module to override"); the function below is Prefect
3.8's `run_flow_in_subprocess` with the forkserver context, and a payload that names the flow by import path
so the child does not unpickle a copy of the flow function.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import importlib
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("flowbridge.runner")

TEMPLATE_MODULE = "deployments.warm_template"
# Set in the template's environment only; a run's process finds it inherited (the probe reports it).
TEMPLATE_MARKER_ENV = "FLOWBRIDGE_WARM_TEMPLATE_PID"


def template_context() -> multiprocessing.context.ForkServerContext:
    """The forkserver context whose server preloads the template module."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([TEMPLATE_MODULE])
    return ctx  # type: ignore[return-value]


def start_template() -> None:
    """Start the template now, before the runner takes work, so no run waits for its imports."""
    template_context()
    multiprocessing.forkserver.ensure_running()


def flow_import_path(flow: Any) -> str | None:
    """`module:attribute` under which `flow` is importable, if it is (registered flows always are)."""
    module = getattr(getattr(flow, "fn", None), "__module__", None)
    if not module:
        return None
    try:
        namespace = vars(importlib.import_module(module))
    except ImportError:
        return None
    for name, value in namespace.items():
        if value is flow:
            return f"{module}:{name}"
    return None


def _load_flow(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def name_process(name: str) -> None:
    """Name this process (`ps -o comm`, /proc/<pid>/comm) after its flow run: a forked run otherwise shows
    the forkserver's command line, and operators (and the crash tests) need to tell runs apart."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)  # PR_SET_NAME


def run_process_ids(flow_run_id: str) -> list[int]:
    """Processes named after `flow_run_id` by `name_process` (Linux)."""
    wanted = f"fb-{flow_run_id.replace('-', '')[:12]}"
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip() == wanted:
                    found.append(int(entry))
    return found


# Prefect's settings, built once in the template: each construction re-reads and validates every
# PREFECT_* source (0.05-0.2 s of CPU), and a run built three (here, and twice more from the runner's
# serialized copy, which `run_flow_in_template` therefore leaves out).
_TEMPLATE_SETTINGS: tuple[tuple[tuple[str, str], ...], Any] | None = None


_TEMPLATE_OWN_ENV: tuple[tuple[str, str], ...] | None = None


def _environment(*prefixes: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (k, v) for k, v in os.environ.items() if k.startswith(prefixes) and not k.startswith("PREFECT__")
        )
    )


def prebuild_settings() -> None:
    """In the template: Prefect's and flowbridge's settings for the environment every run shares."""
    global _TEMPLATE_SETTINGS, _TEMPLATE_OWN_ENV
    from prefect.settings import Settings

    from flowbridge.settings import get_settings

    _TEMPLATE_SETTINGS = (_environment("PREFECT_"), Settings())
    get_settings.cache_clear()
    get_settings()
    _TEMPLATE_OWN_ENV = _environment("FLOWBRIDGE_", "GASFLUX_")


def _refresh_own_settings() -> None:
    """Keep the template's flowbridge settings only if the run's environment is the template's."""
    if _environment("FLOWBRIDGE_", "GASFLUX_") != _TEMPLATE_OWN_ENV:
        from flowbridge.settings import get_settings

        get_settings.cache_clear()


def _settings_for_run(settings_class: Any) -> Any:
    """The template's settings when the run's PREFECT_* environment is the template's, else fresh ones."""
    if _TEMPLATE_SETTINGS is not None and _TEMPLATE_SETTINGS[0] == _environment("PREFECT_"):
        return _TEMPLATE_SETTINGS[1]
    return settings_class()


def _run_flow_with_env(
    *args: Any,
    env: dict[str, str | None] | None = None,
    remove_env: set[str] | None = None,
    flow_path: str | None = None,
    **kwargs: Any,
) -> None:
    """In the forked child: Prefect's own wrapper (environment, fresh settings, engine signals)."""
    from prefect.context import SettingsContext, get_settings_context
    from prefect.flow_engine import _runtime_subprocess_env, handle_engine_signals, run_flow
    from prefect.settings import Settings

    for key in remove_env or ():
        os.environ.pop(key, None)
    os.environ.update(_runtime_subprocess_env(env))
    _refresh_own_settings()
    if flow_path is not None:
        kwargs["flow"] = _load_flow(flow_path)
    settings_context = get_settings_context()
    flow_run = kwargs.get("flow_run")
    if flow_run is not None:
        name_process(f"fb-{flow_run.id.hex[:12]}")
    with (
        SettingsContext(profile=settings_context.profile, settings=_settings_for_run(Settings)),
        handle_engine_signals(getattr(flow_run, "id", None)),
    ):
        maybe_coro = run_flow(*args, **kwargs)
        if asyncio.iscoroutine(maybe_coro):
            asyncio.run(maybe_coro)


def run_flow_in_template(
    flow: Any,
    flow_run: Any = None,
    parameters: dict[str, Any] | None = None,
    wait_for: Iterable[Any] | None = None,
    context: dict[str, Any] | None = None,
    env: dict[str, str | None] | None = None,
) -> multiprocessing.process.BaseProcess:
    """Prefect's `run_flow_in_subprocess`, forked from the warm template instead of spawned."""
    from prefect.context import serialize_context
    from prefect.flow_engine import (
        _CONTROL_CHANNEL_ENV_KEYS,
        _run_serialized_call_with_control_bootstrap,
        _runtime_subprocess_env,
    )
    from prefect.settings import get_current_settings
    from prefect.utilities.callables import cloudpickle_wrapped_call
    from prefect.utilities.processutils import sanitize_subprocess_env

    context = {
        key: value for key, value in (context or serialize_context()).items() if key != "settings_context"
    }
    merged_env: dict[str, str | None] = (
        get_current_settings().to_environment_variables(exclude_unset=True)
        | os.environ
        | {"PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false"}
        | (env or {})
    )
    sanitized = sanitize_subprocess_env(merged_env)
    startup_env = {key: value for key, value in sanitized.items() if key in _CONTROL_CHANNEL_ENV_KEYS}
    flow_path = flow_import_path(flow)
    wrapped_call = cloudpickle_wrapped_call(
        _run_flow_with_env,
        env=_runtime_subprocess_env(sanitized),
        remove_env={key for key, value in merged_env.items() if value is None},
        flow_path=flow_path,
        flow=None if flow_path else flow,
        flow_run=flow_run,
        parameters=parameters,
        wait_for=wait_for,
        context=context,
    )
    process = template_context().Process(
        target=_run_serialized_call_with_control_bootstrap, args=(wrapped_call.args[0], startup_env)
    )
    process.start()
    return process


@contextlib.contextmanager
def _send_heartbeats(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    """Prefect 3.8's flow-run heartbeat thread, stoppable at once.

    Prefect's loop sleeps in one-second steps and the engine joins the thread when the run ends, so every
    run's process lived up to a second after its final state, holding a runner slot (a no-op job cost 1.3 s
    of slot time instead of 0.3 s). Same events and period; the wait is on the stop event itself.
    """
    from prefect.flow_engine import MINIMUM_HEARTBEAT_INTERVAL

    heartbeat_seconds = engine.heartbeat_seconds
    if heartbeat_seconds is None:
        yield
        return
    heartbeat_seconds = max(heartbeat_seconds, MINIMUM_HEARTBEAT_INTERVAL)
    resource, related = engine._build_heartbeat_event_template()
    stop_event = threading.Event()

    def heartbeat_loop() -> None:
        while not stop_event.is_set():
            state = engine.flow_run.state if engine.flow_run else None
            if state is not None and state.is_final():
                return
            try:
                engine._emit_flow_run_heartbeat(resource, related)
            except Exception:
                engine.logger.debug("Failed to emit heartbeat", exc_info=True)
            stop_event.wait(heartbeat_seconds)

    # the thread sees the caller's SettingsContext, as in Prefect (an empty context would fall back to a
    # stale global one)
    thread = threading.Thread(target=contextvars.copy_context().run, args=(heartbeat_loop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop_event.set()
        if join_on_exit:
            thread.join(timeout=2)


def patch_engine() -> None:
    """Engine fixes every warm run inherits from the template (applied there, before any fork)."""
    import prefect.flow_engine

    prefect.flow_engine._send_heartbeats = _send_heartbeats


def install() -> None:
    """Make the runner's DirectSubprocessStarter fork runs from the template, and start the template."""
    import prefect.runner._starter_direct as starter_direct

    starter_direct.run_flow_in_subprocess = run_flow_in_template  # type: ignore[assignment]
    start_template()
    check_template()


def _template_marker() -> str | None:
    return os.environ.get(TEMPLATE_MARKER_ENV)


def check_template() -> None:
    """Say whether the template loaded: multiprocessing's forkserver skips a preload module that raises
    ImportError, and runs would then pay their imports again (working, but cold)."""
    with template_context().Pool(1) as pool:
        marker = pool.apply(_template_marker)
    if marker:
        log.info("warm start: flow runs fork from the template (pid %s)", marker)
    else:
        log.error("warm start: the template did not load (an import failed in it); runs start cold")


def template_pid() -> int | None:
    return getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
