"""003 MRMS data analysis of a project's dataset as a Prefect flow run (project status 5 → 6 → 7 or 8).

The profile is stored on the project (get_projects_info returns it) and as profile.json beside the run.
A run superseded by a newer analysis request of the same project leaves the project alone.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from storage.filesystems import get_storage
from storage.mrms import repository as records
from storage.mrms.domain import ProjectStatus, Purpose
from tasks.mrms.profile import DatasetError, profile_frame, read_dataset

PROFILE_FILE = "profile.json"


class MrmsAnalysisParams(BaseModel):
    project_id: str = Field(description="Project whose dataset to profile.")
    data_analysis_id: str = Field(description="This analysis request (the project's data_analysis_id).")


def _retry_unless_data_error(_task: Any, _run: Any, state: Any) -> bool:
    try:
        state.result()
    except (DatasetError, records.RecordError):
        return False
    except Exception:
        return True
    return True


@task(
    name="profile_dataset",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=_retry_unless_data_error,
)
def profile_dataset(dataset_id: str, purpose: str, run_id: str) -> dict[str, Any]:
    dataset = records.get_dataset(dataset_id)
    storage = get_storage()
    frame = read_dataset(storage, dataset)
    profile = profile_frame(
        frame, target=dataset["target"], purpose=Purpose(purpose), time_column=dataset["time_column"]
    )
    storage.write_result(run_id, PROFILE_FILE, json.dumps(profile, ensure_ascii=False).encode())
    logger = get_run_logger()
    logger.info("profiled %s: %d rows x %d columns", dataset_id, profile["rows"], profile["columns"])
    return profile


def _mark_failed(_flow: Any, run: Any, state: Any) -> None:
    params = run.parameters or {}
    if params.get("project_id") and params.get("data_analysis_id"):
        records.finish_analysis(
            params["project_id"],
            params["data_analysis_id"],
            ProjectStatus.ANALYSIS_ERROR,
            message=f"analysis run {state.name}: {state.message}",
        )


@flow(name="mrms-analysis", on_crashed=[_mark_failed], on_cancellation=[_mark_failed])
def mrms_analysis(project_id: str, data_analysis_id: str) -> dict[str, Any]:
    params = MrmsAnalysisParams(project_id=project_id, data_analysis_id=data_analysis_id)
    run_id = str(flow_run.get_id())
    if not records.finish_analysis(params.project_id, params.data_analysis_id, ProjectStatus.ANALYZING):
        get_run_logger().info("analysis %s was superseded; nothing to do", params.data_analysis_id)
        return {"superseded": True}
    try:
        project = records.project_for_training(params.project_id)
        if not project["dataset_id"]:
            raise DatasetError(f"project {params.project_id!r} has no dataset_id")
        profile = profile_dataset(project["dataset_id"], project["purpose"], run_id)
    except Exception as exc:
        records.finish_analysis(
            params.project_id,
            params.data_analysis_id,
            ProjectStatus.ANALYSIS_ERROR,
            message=f"{type(exc).__name__}: {exc}",
        )
        raise
    records.finish_analysis(
        params.project_id, params.data_analysis_id, ProjectStatus.ANALYZED, profile=profile, message=None
    )
    get_storage().write_summary(run_id, {"project_id": params.project_id, "profile": PROFILE_FILE})
    return {"rows": profile["rows"], "columns": profile["columns"]}
