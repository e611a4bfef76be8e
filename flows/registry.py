"""The job-type registry: one entry per kind of job flowbridge runs.

The runner serves exactly these deployments, `prefect.yaml` is checked against them by a test, and the
offline platform (001) lists and runs them. A new job type is one flow module plus one line here.
Entries name their flow and parameter model by import path so the bridge can list job types without
importing every flow's scientific stack.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect import Flow
    from pydantic import BaseModel

DEPLOYMENT = "default"


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class JobType:
    name: str
    flow: str  # "package.module:flow_object"
    flow_name: str  # the Prefect flow name, first half of the deployment name
    description: str
    parameters: str | None = None  # "package.module:PydanticModel" describing the flow's parameters
    inputs: str = ""
    outputs: str = ""
    offline: bool = False  # runnable through the offline algorithm platform (001)
    # 001 contract: the flow parameter taking the staged input (a storage-relative path), and whether
    # it is one file or a folder of files
    input_parameter: str = "input_path"
    input_folder: bool = False
    interval_seconds: int | None = None  # a schedule, for housekeeping flows
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def deployment_name(self) -> str:
        return f"{self.flow_name}/{DEPLOYMENT}"

    @property
    def entrypoint(self) -> str:
        """The `path/to/file.py:function` form prefect.yaml uses."""
        module, _, attr = self.flow.partition(":")
        return f"{module.replace('.', '/')}.py:{attr}"

    def load_flow(self) -> Flow[Any, Any]:
        return _load(self.flow)

    def parameter_model(self) -> type[BaseModel] | None:
        return _load(self.parameters) if self.parameters else None


def _gasflux_cleanup_interval() -> int:
    """GASFLUX_TASK_CLEANUP_INTERVAL, read when the runner registers the schedule (prefect.yaml: default)."""
    from flowbridge.settings import get_settings

    return get_settings().gasflux_task_cleanup_interval


JOB_TYPES: dict[str, JobType] = {
    job.name: job
    for job in (
        JobType(
            name="traffic_forecast",
            flow="flows.traffic.forecast:traffic_forecast",
            flow_name="traffic-forecast",
            description="Traffic-flow forecast of every numeric column of a time-indexed CSV (000).",
            parameters="flows.traffic.forecast:TrafficForecastParams",
            inputs="One CSV: a time column and one numeric flow column per road or sensor.",
            outputs="forecast.csv (same columns as the input), forecast_bounds.csv, metrics in result.json.",
            offline=True,
        ),
        JobType(
            name="dataflow_run",
            flow="flows.dataflow.run:dataflow_run",
            flow_name="dataflow-run",
            description="Runs one DataFlow (004): children as subflows, then source -> transforms -> target.",
            parameters="flows.dataflow.run:DataflowRunParams",
            inputs="The dataflow's config from the metadata DB (CSV/Parquet/JSON on any URL, or SQL).",
            outputs="The config's target (file or SQL table); a Run node and lineage edges in the graph.",
        ),
        JobType(
            name="offline_task",
            flow="flows.offline.task:offline_task",
            flow_name="offline-task",
            description="Offline platform (001): stage HDFS/CEPH input, run a job type, write output back.",
            parameters="flows.offline.task:OfflineTaskParams",
            inputs="The caller's file or folder on HDFS or CEPH (inputFileSystemInfo).",
            outputs="Every result file of the job type under outputPath/<taskId>/ on HDFS or CEPH.",
        ),
        JobType(
            name="diagnostics_probe",
            flow="flows.diagnostics:probe",
            flow_name="diagnostics-probe",
            description="Sleeps for `seconds` in `steps`, reporting progress: a smoke test of runners.",
            parameters="flows.diagnostics:ProbeParams",
            outputs="result.json with the parameters.",
        ),
        JobType(
            name="mrms_analysis",
            flow="flows.mrms.analysis:mrms_analysis",
            flow_name="mrms-analysis",
            description="Profiles an MRMS project's dataset; moves the project 5 -> 6 -> 7 or 8 (003).",
            parameters="flows.mrms.analysis:MrmsAnalysisParams",
            inputs="The project's dataset (CSV or Parquet uploaded with /mrms/dataset_upload).",
            outputs="profile.json; the profile on the project (get_projects_info).",
        ),
        JobType(
            name="mrms_training",
            flow="flows.mrms.training:mrms_training",
            flow_name="mrms-training",
            description="Trains one MRMS learning history step by step with a scikit-learn estimator (003).",
            parameters="flows.mrms.training:MrmsTrainingParams",
            inputs="The learning history's project dataset, algorithm and parameter set (metadata DB).",
            outputs="model.skops (Pipeline of preprocessing and estimator); per-step results in the DB.",
        ),
        JobType(
            name="gasflux",
            flow="flows.gasflux.processing:gasflux",
            flow_name="gasflux",
            description="GasFlux drone mass-balance analysis: one task per stage, HTML report per gas (002).",
            parameters="flows.gasflux.processing:GasfluxParams",
            inputs="A flight table (.xlsx/.xls/.csv) with the document's columns; optional YAML config.",
            outputs="<stem>.processed/<timestamp>_processing_run/: report HTML per gas, CSV, YAML, JSON.",
            offline=True,
        ),
        JobType(
            name="gasflux_cleanup",
            flow="flows.gasflux.cleanup:gasflux_cleanup",
            flow_name="gasflux-cleanup",
            description="Removes finished GasFlux tasks older than GASFLUX_MAX_TASK_AGE (002).",
            parameters="flows.gasflux.cleanup:CleanupParams",
            outputs="The removed task ids in the flow run's return value.",
            interval_seconds=_gasflux_cleanup_interval(),
        ),
    )
}


def get_job_type(name: str) -> JobType:
    try:
        return JOB_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown job type {name!r}; known: {', '.join(sorted(JOB_TYPES))}") from None
