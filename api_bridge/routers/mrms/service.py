"""003 MRMS operations that combine the records, the job gateway and storage, one per endpoint that needs
more than a single repository call.

The router parses a request, calls one function here (or in storage.mrms.repository) and translates the
answer; everything in between lives here: starting an analysis or a training run and undoing the record
when Prefect refuses it, closing histories whose run was lost, reading a run's logs, storing an upload.
It opens no database session (storage.mrms.repository does) and builds no path (storage.filesystems and
storage.mrms.files do). The router hands in the gateway, so a test can give it its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import UploadFile

from api_bridge.gateway import JobGateway, JobNotFound, JobState, SubmitError, get_gateway
from api_bridge.requests import save_upload
from api_bridge.routers.mrms.codes import API
from api_bridge.run_names import run_name
from flowbridge.settings import get_settings
from storage.filesystems import get_storage, safe_part
from storage.mrms import repository as records
from storage.mrms.domain import WORKER_IDX, LearnStatus, ProjectStatus, Purpose, Trainer
from storage.mrms.files import dataset_filename, recorded_path, stored_path
from storage.mrms.repository import NewProject, RecordError

log = logging.getLogger("flowbridge.mrms")
ANALYSIS_JOB = "mrms_analysis"
TRAINING_JOB = "mrms_training"
LOG_PAGE = 200


# --- projects ---------------------------------------------------------------------------------------
def create_project(gateway: JobGateway, project: NewProject) -> None:
    """A new project; status 5 is stored as 1 until its analysis run exists, then moves on from there."""
    requested = project.status is ProjectStatus.ANALYSIS_REQUESTED
    records.create_project(replace(project, status=ProjectStatus.UPLOAD_WAITING) if requested else project)
    if requested:
        _request_analysis(gateway, project.project_id)


def set_project_status(gateway: JobGateway, project_id: str, status: ProjectStatus) -> None:
    """A client's status: 5 starts an analysis, 9 also cancels the running one, any other is stored."""
    if status is ProjectStatus.ANALYSIS_REQUESTED:
        records.project_status(project_id)  # unknown project: error before anything starts
        _request_analysis(gateway, project_id)
        return
    records.set_project_status(project_id, status)
    if status is ProjectStatus.ANALYSIS_POD_DELETE:
        run_id = records.analysis_run_id(project_id)
        if run_id:
            with contextlib.suppress(JobNotFound):  # the run is gone already: nothing left to cancel
                gateway.cancel(run_id, "analysis pod delete requested (status 9)")


def _request_analysis(gateway: JobGateway, project_id: str) -> None:
    """Status 5: a new data_analysis_id and a Prefect analysis run that moves the project to 6, 7 or 8;
    when the run cannot be created the project ends at 8 with the reason instead of waiting at 5."""
    analysis_id = records.new_id()
    records.start_analysis(project_id, analysis_id)
    try:
        run_id = gateway.submit(
            ANALYSIS_JOB,
            {"project_id": project_id, "data_analysis_id": analysis_id},
            api=API,
            legacy_id=analysis_id,
            parent_id=project_id,
            tags=[f"project:{project_id}"],
            flow_run_name=f"analysis-{project_id}",
        )
    except (SubmitError, OSError) as exc:
        records.finish_analysis(
            project_id, analysis_id, ProjectStatus.ANALYSIS_ERROR, message=f"could not start: {exc}"
        )
        raise RecordError(f"analysis of {project_id!r} could not start: {exc}") from exc
    records.attach_analysis_run(project_id, analysis_id, str(run_id))


# --- learning histories -----------------------------------------------------------------------------
@dataclass(frozen=True)
class NewLearnHist:
    """insert_learn_hist's fields, parsed; `param_id` is an id, an inline JSON object or None."""

    learn_hist_no: str
    project_id: str
    alg_id: str | None
    param_id: str | None
    alg_anal_id: str | None
    dp_analysis_id: str | None
    status: LearnStatus
    start_time: datetime | None
    external: bool


def insert_learn_hist(gateway: JobGateway, new: NewLearnHist) -> None:
    """Create the history; train it here (a Prefect run) when its alg_id is in the estimator registry and
    the client did not ask for an external worker. A run that cannot start leaves the history at 7."""
    from tasks.mrms.training import REGISTRY, TrainingError, check_params, default_config

    project = records.project_for_training(new.project_id)
    trained_here = not new.external and new.alg_id in REGISTRY
    params: dict[str, Any] | None = None
    if trained_here:
        param_id, params = _resolve_params(new.param_id, new.alg_id)
        try:
            check_params(new.alg_id, params, Purpose(project["purpose"]), default_config())  # type: ignore[arg-type]
        except TrainingError as exc:
            raise RecordError(str(exc)) from exc
    else:  # kept as given for the external worker: what its column holds
        param_id = _optional_id(new.param_id, "param_id")
    records.create_learn_hist(
        learn_hist_no=new.learn_hist_no,
        project_id=new.project_id,
        param_id=param_id,
        params=params,
        alg_anal_id=new.alg_anal_id,
        alg_id=new.alg_id,
        dp_analysis_id=new.dp_analysis_id,
        status=new.status,
        start_time=new.start_time,
        trainer=Trainer.FLOWBRIDGE if trained_here else Trainer.EXTERNAL,
    )
    if trained_here:
        _start_training(gateway, new.learn_hist_no, new.project_id, new.alg_id)


def _optional_id(value: str | None, name: str) -> str | None:
    if value is not None and len(value) > records.MAX_ID:
        raise RecordError(f"{name} is longer than {records.MAX_ID} characters")
    return value


def _start_training(gateway: JobGateway, hist_no: str, project_id: str, alg_id: str | None) -> None:
    try:
        run_id = gateway.submit(
            TRAINING_JOB,
            {"learn_hist_no": hist_no},
            api=API,
            legacy_id=hist_no,
            parent_id=project_id,
            tags=[f"project:{project_id}", f"learn_hist_no:{hist_no}"],
            flow_run_name=run_name("learn", alg_id, hist_no),
            # this history's own key: Prefect must never hand back a run started for an earlier
            # history of the same number (a metadata DB reset while Prefect kept its runs)
            idempotency_key=f"{API}:{hist_no}:{records.new_id()}",
        )
    except (SubmitError, OSError) as exc:
        records.update_learn_status(hist_no, LearnStatus.ERROR, f"could not start training: {exc}")
        raise RecordError(f"training of {hist_no!r} could not start: {exc}") from exc
    records.attach_training_run(hist_no, str(run_id))


def _resolve_params(param_id: str | None, alg_id: str | None) -> tuple[str | None, dict[str, Any]]:
    """param_id is a stored parameter set, or an inline JSON object (stored under a new id), or absent."""
    if param_id is None:
        return None, {}
    if param_id.startswith("{"):
        params = records.parse_json_object(param_id, "param_id")
        new_id = records.new_id()
        records.create_param_set(new_id, params, alg_id)
        return new_id, params
    params = records.find_param_set(param_id)
    if params is None:
        raise RecordError(f"no parameter set {param_id!r} (store it with /mrms/param_set)")
    return param_id, params


def store_param_set(param_id: str | None, params: dict[str, Any], alg_id: str | None) -> str:
    """Store a parameter set (under a new id unless given); for a registry algorithm its hyperparameters
    must build the estimator, so a wrong set fails here rather than at training."""
    from tasks.mrms.training import REGISTRY, TrainingError, build_estimator, default_config, split_params

    if alg_id in REGISTRY:
        try:
            _, hyper = split_params(params, default_config())
            build_estimator(REGISTRY[alg_id], hyper)  # type: ignore[index]
        except TrainingError as exc:
            raise RecordError(str(exc)) from exc
    param_id = param_id or records.new_id()
    records.create_param_set(param_id, params, alg_id)
    return param_id


def learn_status(gateway: JobGateway, hist_no: str) -> LearnStatus:
    _close_lost_runs(records.running_runs(learn_hist_no=hist_no), gateway)
    return records.learn_status(hist_no)


def hist_statuses(gateway: JobGateway, project_id: str) -> Any:
    """A client may poll only get_histno_status: a lost run must not stay at 5 there either."""
    _close_lost_runs(records.running_runs(project_id=project_id), gateway)
    return records.hist_statuses(project_id)


def models_info(gateway: JobGateway, project_id: str, hist_no: str | None) -> list[dict[str, Any]]:
    _close_lost_runs(records.running_runs(project_id=project_id, learn_hist_no=hist_no), gateway)
    return records.models_info(project_id, hist_no)


def _close_lost_runs(running: list[tuple[str, str]], gateway: JobGateway | None = None) -> None:
    """Histories whose training run ended without the flow's own bookkeeping (its process was killed, or
    the zombie automation crashed it) would stay RUNNING forever: read the run's state from Prefect, the
    state of record, and close them as the flow's crash hook would have. Without a gateway: the bridge's."""
    gateway = gateway or get_gateway()
    for hist_no, run_id in running:
        try:
            run = gateway.status(run_id)
        except JobNotFound:
            records.close_lost_run(hist_no, "deleted", "its flow run no longer exists", datetime.now(UTC))
            continue
        except Exception as exc:  # Prefect unreachable: answer the record as it is, check next time
            log.warning("could not read the training run of %s: %s", hist_no, type(exc).__name__)
            continue
        if run.state.is_final and run.state is not JobState.COMPLETED:
            records.close_lost_run(hist_no, run.state_name, run.message, run.ended or datetime.now(UTC))


def learn_logs(gateway: JobGateway, hist_no: str, *, tail: bool) -> dict[str, str]:
    """{"0": log text} of flowbridge's single training worker; {} for a history trained elsewhere."""
    hist = records.learn_hist(hist_no)
    run_id = hist["flow_run_id"]
    if not run_id:
        return {}
    try:
        if tail:
            lines = get_settings().mrms_log_tail_lines
            total = gateway.count_logs(run_id)
            found = gateway.logs(run_id, offset=max(0, total - lines), limit=lines)
        else:
            found, offset = [], 0
            while batch := gateway.logs(run_id, offset=offset, limit=LOG_PAGE):
                found += batch
                offset += len(batch)
                if len(batch) < LOG_PAGE:
                    break
    except JobNotFound as exc:
        raise RecordError(f"the training run of {hist['learn_hist_no']!r} no longer exists") from exc
    text = "\n".join(f"{line.timestamp:%Y-%m-%d %H:%M:%S} {line.level} {line.message}" for line in found)
    return {WORKER_IDX: text}


# --- models and datasets ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFile:
    """A trained model where the router can serve it: `local` when storage is a local folder (handed to
    the OS), else `chunks` streams it."""

    sha256: str
    local: str | None
    chunks: Iterator[bytes] | None


def model_file(hist_no: str) -> ModelFile:
    """The skops file of Pipeline(preprocessing, estimator) of a history, with its checksum."""
    recorded, sha256 = records.model_file(hist_no)
    storage = get_storage()
    path = stored_path(storage, recorded)
    if not storage.exists(path):
        raise RecordError(f"the model file of {hist_no!r} is missing from storage")
    local = storage.local_path(path)
    return ModelFile(sha256, local, None if local else storage.iter_chunks(path))


@dataclass(frozen=True)
class NewDataset:
    """dataset_upload's fields, parsed; `dataset_id` None means a new uuid."""

    dataset_id: str | None
    target: str
    time_column: str | None
    file_format: str | None


def store_dataset(upload: UploadFile, new: NewDataset) -> str:
    """Copy the upload into uploads/003/<dataset_id>/, read its columns and record it; a file that is not
    a readable table, or lacks the target or time column, leaves nothing behind."""
    from tasks.mrms.profile import DatasetError, format_of, read_columns

    dataset_id = safe_part(new.dataset_id or records.new_id())
    if records.dataset_exists(dataset_id):
        raise RecordError(f"dataset {dataset_id!r} already exists")
    storage = get_storage()
    try:
        file_format = format_of(upload.filename or "", new.file_format)
        filename = dataset_filename(file_format)
        path = storage.upload_path(API, dataset_id, filename)
        size = save_upload(upload, storage, path)
        columns = read_columns(storage, path, file_format)
    except DatasetError as exc:
        storage.delete(storage.upload_dir(API, dataset_id))
        raise RecordError(str(exc)) from exc
    missing = [c for c in (new.target, new.time_column) if c and c not in columns]
    if missing:
        storage.delete(storage.upload_dir(API, dataset_id))
        raise RecordError(f"the file has no column(s) {missing}")
    records.create_dataset(
        dataset_id=dataset_id,
        path=recorded_path(storage, path),
        file_format=file_format,
        original_name=(upload.filename or filename)[:255],
        target=new.target,
        time_column=new.time_column,
        size_bytes=size,
        columns=columns,
    )
    return dataset_id
