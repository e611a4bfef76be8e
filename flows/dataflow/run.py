"""DataFlow (004) execution: a dataflow's config composed into Prefect tasks at run time.

Parameters hold only the dataflow id, its run key, the execution id and the client's params; the config
(which may hold database passwords) is loaded from the metadata DB inside the run. A run whose run key is
not the record's (the record was deleted, its id taken by another) refuses to run: a run belongs to the
record it was started for. Every run carries its dataflow's tags (tasks/dataflow_config.run_tags),
children's subflow runs too, so the bridge finds a child's execution whoever started it.

Children run first, each as a subflow, one after another in their stored order (children_ids order),
then the dataflow's own pipeline; a failing child fails the parent before its pipeline starts. Every
run, success or failure (a child's too, as its own), leaves a (:Run) node and READS/WRITES lineage
edges in the graph store, and sends OpenLineage START and COMPLETE/FAIL events when
FLOWBRIDGE_OPENLINEAGE_URL is set.

Cheap bookkeeping (bench/dataflow_pipeline.py, issue 6): the one-run-at-a-time claim runs on a
background thread while the dataflow is loaded and its source read, and is awaited before anything is
written (children, target); the graph store is opened beside the load; progress artifact calls go out
on one background thread (latest state wins), so a step never waits on the Prefect API; the lineage
write at the end overlaps the last progress update. What the run would import lazily is imported with
this module, which the runner loads before it moves the run to RUNNING.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

# Imported by the first task call, the claim and the artifact calls of every run; the runner imports
# this module before the run goes RUNNING, so importing them here keeps them out of the run's time.
import prefect.concurrency.sync
import prefect.task_engine
import prefect.utilities.visualization  # noqa: F401
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.context import TagsContext
from prefect.runtime import flow_run
from pydantic import BaseModel, Field
from sqlalchemy import select

from flowbridge.settings import get_settings
from storage.dataflow.graph import RunRecord, get_graph
from storage.dataflow.models import DataFlow
from storage.metadata import normalize_url, session_scope
from tasks.dataflow.config import PipelineConfigError, apply_params, lookup_tag, parse_pipeline, run_tags
from tasks.dataflow.openlineage import EventType, emit, run_event
from tasks.dataflow.steps import DataflowError, source_task, target_task, transform_task
from tasks.progress import Progress
from tasks.run_logs import flush_run_logs


def _preload_database_driver() -> None:
    """Import the metadata database's driver (sqlite3, psycopg) now rather than on the run's first query."""
    from sqlalchemy.engine import make_url

    with contextlib.suppress(Exception):  # only a head start: the run itself reports a bad URL
        make_url(normalize_url(get_settings().effective_database_url)).get_dialect().import_dbapi()


_preload_database_driver()


class DataflowRunParams(BaseModel):
    """What the bridge (or a schedule) passes: ids and client params, never the config itself."""

    dataflow_id: int = Field(ge=1, description="The dataflow to run.")
    run_key: str | None = Field(None, description="The record's run key: the run refuses any other record.")
    execution_id: str | None = Field(None, description="The legacy execution id (exec_<id>_<epoch>).")
    params: dict[str, Any] = Field(default_factory=dict, description="Overrides and run variables.")
    nonce: str | None = Field(None, description="Per-request nonce: tells racing bridges which one won.")


@task(name="load_dataflow", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def load_dataflow(dataflow_id: int, run_key: str | None = None) -> dict[str, Any]:
    with session_scope() as session:
        record = session.get(DataFlow, dataflow_id)
        if record is None:
            raise DataflowError(f"dataflow {dataflow_id} does not exist (deleted?)")
        if run_key is not None and record.run_key != run_key:
            raise DataflowError(
                f"dataflow {dataflow_id} this run was started for was deleted; its id now names another"
            )
        return {"id": record.id, "name": record.name, "config": record.config}


def _run_keys(dataflow_ids: list[int]) -> dict[int, str | None]:
    """The run keys of these dataflows (children about to run as subflows)."""
    if not dataflow_ids:
        return {}
    with session_scope() as session:
        rows = session.execute(
            select(DataFlow.id, DataFlow.run_key).where(DataFlow.id.in_(dataflow_ids))
        ).all()
    return {int(i): k for i, k in rows}


def _has_pipeline(config: Any) -> bool:
    return isinstance(config, dict) and ("source" in config or "target" in config or "transforms" in config)


def _step_name(index: int, kind: str) -> str:
    return f"transform_{kind}" if index == 0 else f"transform_{kind}_{index + 1}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _in_background(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """`fn(*args)` on a new daemon thread in a copy of this context (the flow run's), as a Future."""
    future: Future[Any] = Future()
    context = contextvars.copy_context()

    def call() -> None:
        try:
            future.set_result(context.run(fn, *args))
        except BaseException as exc:  # handed to whoever awaits the future
            future.set_exception(exc)

    threading.Thread(target=call, name=f"dataflow-{fn.__name__}", daemon=True).start()
    return future


def _claim_error(claim: Future[None] | None) -> BaseException | None:
    """Wait for the claim; its exception when this run may not go on."""
    if claim is None:
        return None
    return claim.exception()


def run_dataflow(
    dataflow_id: int,
    params: dict[str, Any],
    ancestry: tuple[int, ...],
    claim: Future[None] | None = None,
    run_key: str | None = None,
) -> dict[str, Any]:
    """One dataflow inside the current flow run: its children as subflows, then its pipeline.

    `claim`, for a top-level run, is the one-run-at-a-time check running in the background: nothing is
    written (child runs, target) before it has passed, and when it fails its error is the run's error.
    """
    logger = get_run_logger()
    graph_ready = _in_background(get_graph)  # its first call connects and checks the schema
    run_id = str(flow_run.get_id() or f"local-{dataflow_id}")
    started = _now()
    reads: list[str] = []
    writes: list[str] = []
    stats: dict[str, Any] = {"dataflow_id": dataflow_id, "rows_read": None, "rows_written": None}
    progress: Progress | None = None
    status, error = "failed", "interrupted"  # until the body says otherwise (a cancelled run)
    lineage_url = get_settings().openlineage_url
    if lineage_url:
        _in_background(emit, run_event(EventType.START, run_id=run_id, dataflow_id=dataflow_id), lineage_url)

    def claimed() -> None:
        error = _claim_error(claim)
        if error is not None:
            raise error

    try:
        record = load_dataflow(dataflow_id, run_key)
        children = graph_ready.result().children(dataflow_id)
        config, variables = apply_params(record["config"], params)
        pipeline = None
        if _has_pipeline(config) or not children:
            pipeline = parse_pipeline(config)
        stages = [f"child_{c}" for c in children]
        if pipeline is not None:
            stages += [
                "source",
                *(_step_name(i, s.type) for i, s in enumerate(pipeline.transforms)),
                "target",
            ]
        # a stage left within 50 ms is never sent: a short last step and finish make one call
        progress = Progress(stages or ["done"], background=True, settle=0.05)
        logger.info(
            "dataflow %s (%s): %d child(ren) %s, then %s",
            dataflow_id,
            record["name"],
            len(children),
            children,
            "its pipeline" if pipeline else "no pipeline",
        )
        child_keys = _run_keys(children)
        for child in children:
            if child in ancestry or child == dataflow_id:
                raise DataflowError(
                    f"dataflow {child} is its own ancestor ({' -> '.join(map(str, ancestry))})"
                )
            claimed()
            progress.stage(f"child_{child}", f"running child dataflow {child}")
            _run_child(child, child_keys.get(child), variables, [*ancestry, dataflow_id])
        if pipeline is not None:
            stats.update(_pipeline(pipeline, variables, progress, reads, writes, claimed))
        claimed()
        progress.finish("dataflow finished")
        status, error = "completed", None
        return stats
    except Exception as exc:
        status, error = "failed", str(exc)
        skipped = _claim_error(claim)
        if skipped is not None and skipped is not exc:  # a skipped run says so, whatever else went wrong
            error = str(skipped)
            raise skipped from None
        if isinstance(exc, PipelineConfigError):
            logger.error("config of dataflow %s is not a runnable pipeline: %s", dataflow_id, exc)
            raise DataflowError(f"dataflow {dataflow_id}: {exc}") from None
        raise
    finally:
        # the step logs are shipped, the lineage written and the last progress sent side by side (each
        # mostly waits on a server); the run ends when all are done, so a client told "completed" finds
        # every step's log lines and the run in the lineage graph
        logs_sent = _in_background(flush_run_logs)  # a child's status is read on its own, too
        event_sent = (
            _in_background(
                emit,
                run_event(
                    EventType.COMPLETE if status == "completed" else EventType.FAIL,
                    run_id=run_id,
                    dataflow_id=dataflow_id,
                    reads=reads,
                    writes=writes,
                    rows_written=stats["rows_written"],
                    error=error,
                ),
                lineage_url,
            )
            if lineage_url
            else None
        )
        run_record = RunRecord(
            run_id=run_id,
            dataflow_id=dataflow_id,
            status=status,
            rows_read=stats["rows_read"],
            rows_written=stats["rows_written"],
            started_at=started,
            ended_at=_now(),
            error=error,
            reads=tuple(reads),
            writes=tuple(writes),
        )
        lineage_written = _in_background(lambda: graph_ready.result().record_run(run_record))
        if progress is not None:
            progress.close()
        for sent in (logs_sent, event_sent, lineage_written):
            if sent is not None:
                sent.result()  # a lineage write that failed fails the run, as before


def _pipeline(
    pipeline: Any,
    variables: dict[str, Any],
    progress: Progress,
    reads: list[str],
    writes: list[str],
    claimed: Callable[[], None],
) -> dict[str, Any]:
    progress.stage("source", "reading the source")
    source = source_task(pipeline.source, variables)
    reads.extend(source.datasets)
    data = source.data
    del source  # hold one frame at a time, as a script would: a step's input is freed once it is done
    rows_read = len(data)
    for index, step in enumerate(pipeline.transforms):
        name = _step_name(index, step.type)
        progress.stage(name, f"{step.type} on {len(data)} rows")
        joined = None
        if step.type == "join":
            other = source_task.with_options(name=f"{name}_source", task_run_name=f"{name}_source")(
                step.source, variables
            )
            reads.extend(other.datasets)
            rows_read += len(other.data)
            joined = other.data
            del other
        data = transform_task.with_options(name=name, task_run_name=name)(data, step, variables, joined)
        joined = None
    claimed()  # nothing is written before this run holds the dataflow
    progress.stage("target", f"writing {len(data)} rows")
    rows_written, dataset = target_task(data, pipeline.target, variables)
    writes.append(dataset)
    return {"rows_read": rows_read, "rows_written": rows_written, "reads": list(reads), "writes": [dataset]}


def _run_child(child: int, run_key: str | None, variables: dict[str, Any], ancestry: list[int]) -> None:
    """The child as a subflow run tagged as the child's own, so get-dataflow-status and -logs of the child
    report it. The tags replace (not extend) the current ones: a grandchild must not carry its parent's."""
    execution_id = f"exec_{child}_{int(datetime.now(UTC).timestamp())}"
    with TagsContext(current_tags=set(run_tags(child, run_key))):
        dataflow_child.with_options(flow_run_name=f"dataflow-{child}")(
            dataflow_id=child,
            variables=variables,
            ancestry=ancestry,
            execution_id=execution_id,
            run_key=run_key,
        )


@flow(name="dataflow-child")
def dataflow_child(
    dataflow_id: int,
    variables: dict[str, Any],
    ancestry: list[int],
    execution_id: str | None = None,
    run_key: str | None = None,
) -> dict[str, Any]:
    """A child dataflow: receives the parent's run variables, not its config overrides."""
    return run_dataflow(dataflow_id, variables, tuple(ancestry), run_key=run_key)


@flow(name="dataflow-run")
def dataflow_run(
    dataflow_id: int,
    execution_id: str | None = None,
    params: dict[str, Any] | None = None,
    nonce: str | None = None,
    run_key: str | None = None,
) -> dict[str, Any]:
    args = DataflowRunParams(
        dataflow_id=dataflow_id, execution_id=execution_id, params=params or {}, nonce=nonce, run_key=run_key
    )
    claim = _in_background(_claim, args.dataflow_id, args.run_key)
    try:
        return run_dataflow(args.dataflow_id, args.params, (), claim, args.run_key)
    finally:
        _claim_error(claim)  # never leave the claim running past the run


def _claim(dataflow_id: int, run_key: str | None) -> None:
    """Tag this run as the dataflow's and refuse to run beside another running execution of it.

    Runs from execute-dataflow are already tagged and were refused (409) while another was pending or
    running; a run started by a cron schedule carries only the deployment's tags, so it tags itself here
    (making the bridge answer 409 from now on) and fails if a run of the same dataflow is still running.
    """
    tag = lookup_tag(dataflow_id, run_key)
    run_id = flow_run.get_id()
    if run_id is None:
        return
    tags = list(flow_run.get_tags() or [])
    missing = [t for t in run_tags(dataflow_id, run_key) if t not in tags]
    with get_client(sync_client=True) as client:
        if missing:
            client.update_flow_run(run_id, tags=[*tags, *missing])
        others = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[tag]),
                id=FlowRunFilterId(not_any_=[run_id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
            ),
            limit=1,
        )
    if others:
        raise DataflowError(
            f"dataflow {dataflow_id} is already running (flow run {others[0].name}); this run is skipped"
        )
