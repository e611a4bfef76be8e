"""`flowbridge worker`: Prefect's process worker for the scale-out path, with warm job start.

`prefect worker start --pool flowbridge-process --type process` runs each flow run as
`python -m prefect.engine`, a fresh interpreter (3+ s of imports). This worker is the same
`ProcessWorker` — same work pool type, job template, polling, cancellation and crash reporting — whose
starter forks the run from the warm template (`deployments/warm_template.py`) instead, and which also
polls at once when the server announces a scheduled run for its pool. The plain `prefect worker` keeps
working against the same pool; both can run side by side.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from deployments import warm_start
from deployments.pickup import poll_when_woken, wake_on_scheduled
from deployments.priority import start_order

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.runner._control_channel import ControlChannel
    from prefect.runner._process_manager import ProcessHandle


def _registered_flow(flow_name: str) -> Any:
    """The flow of a registered job type (already imported by the template), or None."""
    from flows.registry import JOB_TYPES

    for job in JOB_TYPES.values():
        if job.flow_name == flow_name:
            return job.load_flow()
    return None


def _run_engine_in_template(flow_run_id: str, env: dict[str, str], startup_env: dict[str, str]) -> None:
    """In the forked child: what `python -m prefect.engine <id>` does, minus the imports."""
    from prefect._internal.control_listener import configure_from_env
    from prefect.context import SettingsContext, get_settings_context
    from prefect.engine import _drive_run_flow_result, handle_engine_signals
    from prefect.flow_engine import flow_run_logger, load_flow, load_flow_run, run_flow
    from prefect.settings import Settings

    os.environ.update(startup_env)
    configure_from_env()
    os.environ.update(env)
    warm_start._refresh_own_settings()
    warm_start.name_process(f"fb-{flow_run_id.replace('-', '')[:12]}")
    settings = warm_start._settings_for_run(Settings)
    with (
        SettingsContext(profile=get_settings_context().profile, settings=settings),
        handle_engine_signals(flow_run_id),
    ):
        from prefect._internal.metrics import RunMetrics

        flow_run = load_flow_run(flow_run_id=flow_run_id)
        run_logger = flow_run_logger(flow_run=flow_run)
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            flow_name = client.read_flow(flow_run.flow_id).name
        flow = _registered_flow(flow_name) or load_flow(flow_run)
        with RunMetrics(flow_run, flow):
            _drive_run_flow_result(flow, run_flow(flow, flow_run=flow_run, error_logger=run_logger))


class WarmEngineStarter:
    """A ProcessStarter (Prefect 3.8's runner seam) that forks the engine from the warm template."""

    def __init__(self, *, env: dict[str, str | None], control_channel: ControlChannel | None) -> None:
        self._env = env
        self._control_channel = control_channel

    async def start(
        self,
        flow_run: FlowRun,
        task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        from prefect.runner._process_manager import ProcessHandle
        from prefect.settings import get_current_settings
        from prefect.utilities.processutils import sanitize_subprocess_env

        env = sanitize_subprocess_env(
            get_current_settings().to_environment_variables(exclude_unset=True)
            | os.environ
            | self._env
            | {"PREFECT__FLOW_RUN_ID": str(flow_run.id)}
        )
        startup_env: dict[str, str] = {}
        registered = False
        if self._control_channel is not None:
            try:
                port, token = self._control_channel.register(flow_run.id)
                startup_env = {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}
                registered = True
            except RuntimeError:  # channel disabled: Prefect falls back to kill-only cancellation
                pass
        handed_off = False
        try:
            process = warm_start.template_context().Process(
                target=_run_engine_in_template, args=(str(flow_run.id), env, startup_env)
            )
            process.start()
            task_status.started(ProcessHandle(process))
            handed_off = True
            await anyio.to_thread.run_sync(process.join)
        except BaseException:
            if registered and not handed_off and self._control_channel is not None:
                self._control_channel.unregister(flow_run.id)
            raise


# Prefect registers worker classes by type name; this subclass keeps the "process" type on purpose (same
# pool, same job template), which Prefect's registry announces with a warning.
warnings.filterwarnings("ignore", message="Type 'WarmProcessWorker'", category=UserWarning)


class WarmProcessWorker(ProcessWorker):
    """ProcessWorker whose flow runs fork from the warm template, taken by priority tag."""

    async def _submit_scheduled_flow_runs(self, flow_run_response: list[Any]) -> list[Any]:
        # Prefect submits in the server's order (scheduled time) until the limit is reached
        ordered = sorted(flow_run_response, key=lambda entry: start_order(entry.flow_run))
        return await super()._submit_scheduled_flow_runs(ordered)

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        from prefect.flows import load_flow_from_flow_run
        from prefect.runner._flow_run_executor import FlowRunExecutorContext

        task_status = task_status or anyio.TASK_STATUS_IGNORED
        execution = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            async with FlowRunExecutorContext() as ctx:
                starter = WarmEngineStarter(env=configuration.env, control_channel=ctx.control_channel)
                executor = ctx.create_executor(
                    flow_run, starter, resolve_flow=load_flow_from_flow_run, propose_submitting=False
                )

                async def execute(
                    *, task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED
                ) -> None:
                    nonlocal execution
                    execution = await executor.submit(task_status=task_status)

                async with anyio.create_task_group() as group:
                    handle = await group.start(execute)
                    if handle.pid is None:
                        raise RuntimeError("Flow run process has no PID")
                    task_status.started(handle.pid)
        if execution is None or execution.status_code is None:
            raise RuntimeError("Failed to start flow run process.")
        return ProcessWorkerResult(status_code=execution.status_code, identifier=str(execution.handle.pid))


async def serve_pool(pool: str, limit: int | None, name: str | None = None) -> None:
    """Start the template, then the worker (which creates the pool if it does not exist)."""
    warm_start.start_template()
    warm_start.check_template()
    worker = WarmProcessWorker(work_pool_name=pool, limit=limit, name=name)

    def our_pool() -> set[str]:
        work_pool = getattr(worker, "_work_pool", None)  # known once the worker has synced with the API
        return {f"prefect.work-pool.{work_pool.id}"} if work_pool is not None else set()

    wake = asyncio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(wake_on_scheduled, our_pool, wake, "worker")
        group.start_soon(poll_when_woken, wake, worker.get_and_submit_flow_runs, "worker")
        await worker.start()
        group.cancel_scope.cancel()
