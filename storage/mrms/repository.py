"""003 MRMS domain records: every change to a project, dataset, parameter set or learning history.

The legacy endpoints and flowbridge's own analysis and training flows call these same functions, so a
history trained here and one trained by an external worker leave identical records. Functions validate
what they are given and raise `RecordError` (never a database error) for anything a client got wrong.
Which request field holds what is the router's business (api_bridge/routers/mrms/fields.py); the values
records are made of (the document's times, statuses, result JSON and early-stop rule) are checked here.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.metadata import session_scope
from storage.mrms.domain import (
    NO_MESSAGE,
    TIME_FORMAT,
    EarlyKey,
    EarlyType,
    LearnStatus,
    ModelingMode,
    ProjectStatus,
    Purpose,
    TimeType,
    Trainer,
    YesNo,
)
from storage.mrms.models import (
    MrmsDataset,
    MrmsLearnHist,
    MrmsParamSet,
    MrmsProject,
    MrmsResourceSample,
    MrmsStepResult,
)

METRIC_KEYS = tuple(k.value for k in EarlyKey)
MAX_ID = 64  # the id columns' width (String(64)); the router refuses longer ids with it
MAX_STEP = 2**31 - 1  # mrms_step_results.step is an INTEGER column: 32 bits on PostgreSQL
MAX_COUNT = 2**31 - 1  # bound of the other integers a client sends (minsteps)
_DIGITS = re.compile(r"[0-9]{1,10}")


class RecordError(ValueError):
    """A client mistake: unknown id, missing or malformed field. The legacy answer is "error"."""


class NotFound(RecordError):
    pass


class ForeignRun(RecordError):
    """A training run reached a history that is attached to another run (a history of the same number
    created after the run's own history was lost with its metadata DB): it must not touch it."""


def _check_owner(hist: MrmsLearnHist, run_id: str | None) -> None:
    # a run may start before the bridge attaches it (flow_run_id still unset): that history is its own
    if run_id and hist.flow_run_id and hist.flow_run_id != run_id:
        raise ForeignRun(
            f"learn_hist_no {hist.learn_hist_no!r} belongs to run {hist.flow_run_id}, not {run_id}"
        )


# --- the document's values: what records and their stored JSON are made of ----------------------------
def parse_count(value: Any, name: str, limit: int = MAX_COUNT) -> int:
    """A non-negative integer written in ASCII digits (a JSON integer or its string), at most `limit`."""
    text = "" if isinstance(value, bool) or value is None else str(value).strip().removeprefix("+")
    if not _DIGITS.fullmatch(text) or int(text) > limit:
        raise RecordError(f"{name} must be an integer from 0 to {limit}, got {str(value)[:40]!r}")
    return int(text)


def parse_time(value: str | None, name: str = "time") -> datetime | None:
    """YYYYmmddHHMMSS, read as UTC (the legacy service stored its clock's strings as they came)."""
    if value is None or not value.strip():
        return None
    try:
        return datetime.strptime(value.strip(), TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise RecordError(f"{name} must be YYYYmmddHHMMSS, got {value!r}") from None


def format_time(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def parse_float(value: str | None, name: str) -> float:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        raise RecordError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise RecordError(f"{name} must be finite")
    return number


def parse_json_object(value: str | None, name: str) -> dict[str, Any]:
    if value is None or not value.strip():
        raise RecordError(f"{name} is required")
    try:
        data = _loads(value)
        if isinstance(data, str):  # a JSON string holding the JSON object (double-encoded clients)
            data = _loads(data)
    except (ValueError, RecursionError):  # also NaN/Infinity, 1e400, integers of thousands of digits
        raise RecordError(f"{name} is not valid JSON (finite numbers only)") from None
    if not isinstance(data, dict):
        raise RecordError(f"{name} must be a JSON object")
    return data


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of range")
    return number


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON number")


def _loads(text: str) -> Any:
    """Standard JSON only: NaN, Infinity and numbers that overflow to infinity cannot be stored (PostgreSQL
    json) nor answered (JSON has no such values)."""
    return json.loads(text, parse_float=_finite, parse_constant=_no_constant)


def parse_enum(enum: type, value: str | None, name: str) -> Any:
    try:
        return enum(str(value).strip())
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise RecordError(f"{name} must be one of {allowed}, got {value!r}") from None


@dataclass(frozen=True)
class EarlyStop:
    """early_stop_param of a project. `key` is None only for type 0."""

    early_type: EarlyType = EarlyType.NONE
    key: EarlyKey | None = None
    value: float = 0.0
    minsteps: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "early_type": self.early_type.value,
            "early_key": self.key.value if self.key else None,
            "early_value": self.value,
            "minsteps": self.minsteps,
        }

    @classmethod
    def parse(cls, raw: str | dict[str, Any] | None) -> EarlyStop:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return cls()
        data = raw if isinstance(raw, dict) else parse_json_object(raw, "early_stop_param")
        early_type = parse_enum(EarlyType, data.get("early_type", EarlyType.NONE.value), "early_type")
        if early_type is EarlyType.NONE:
            return cls()
        key = parse_enum(EarlyKey, data.get("early_key"), "early_key")
        value = parse_float(data.get("early_value"), "early_value")
        if not 0.0 <= value <= 1.0:
            raise RecordError("early_value must be between 0 and 1")
        return cls(early_type, key, value, parse_count(data.get("minsteps", 0), "minsteps"))


def parse_result(raw: str | None) -> dict[str, Any]:
    """ml_result_json: the four metrics (numbers when present) and an optional integer step."""
    data = parse_json_object(raw, "result")
    for key in METRIC_KEYS:
        if key in data and data[key] is not None:
            data[key] = parse_float(data[key], key)
    if "step" in data:
        data["step"] = parse_count(data["step"], "step", MAX_STEP)
    return data


def _now() -> datetime:
    return datetime.now(UTC)


def _get(session: Session, model: type, key: str, what: str) -> Any:
    row = session.get(model, key)
    if row is None:
        raise NotFound(f"no {what} {key!r}")
    return row


def _commit_new(session: Session, row: Any, what: str) -> None:
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise RecordError(f"{what} already exists") from None


# --- datasets and parameter sets --------------------------------------------------------------------
def create_dataset(
    *,
    dataset_id: str,
    path: str,
    file_format: str,
    original_name: str,
    target: str,
    time_column: str | None,
    size_bytes: int,
    columns: list[str],
) -> None:
    with session_scope() as session:
        _commit_new(
            session,
            MrmsDataset(
                dataset_id=dataset_id,
                path=path,
                file_format=file_format,
                original_name=original_name,
                target=target,
                time_column=time_column,
                size_bytes=size_bytes,
                columns=columns,
            ),
            f"dataset {dataset_id!r}",
        )


def dataset_exists(dataset_id: str) -> bool:
    with session_scope() as session:
        return session.get(MrmsDataset, dataset_id) is not None


def get_dataset(dataset_id: str) -> dict[str, Any]:
    with session_scope() as session:
        return _dataset_dict(_get(session, MrmsDataset, dataset_id, "dataset"))


def _dataset_dict(row: MrmsDataset) -> dict[str, Any]:
    return {
        "dataset_id": row.dataset_id,
        "path": row.path,
        "file_format": row.file_format,
        "target": row.target,
        "time_column": row.time_column,
        "columns": list(row.columns),
    }


def create_param_set(param_id: str, params: dict[str, Any], alg_id: str | None = None) -> None:
    with session_scope() as session:
        _commit_new(
            session, MrmsParamSet(param_id=param_id, alg_id=alg_id, params=params), f"param_id {param_id!r}"
        )


def find_param_set(param_id: str) -> dict[str, Any] | None:
    with session_scope() as session:
        row = session.get(MrmsParamSet, param_id)
        return dict(row.params) if row else None


# --- projects ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewProject:
    """What project_create stores: the document's fields, parsed."""

    project_id: str
    purpose: Purpose
    dataset_id: str | None
    status: ProjectStatus
    start_time: datetime | None
    modeling_mode: ModelingMode
    early_stop: EarlyStop
    tags: list[str]


def create_project(project: NewProject) -> None:
    with session_scope() as session:
        _commit_new(
            session,
            MrmsProject(
                project_id=project.project_id,
                project_purpose_cd=project.purpose.value,
                dataset_id=project.dataset_id,
                status=project.status.value,
                start_time=project.start_time or _now(),
                modeling_mode=project.modeling_mode.value,
                early_stop_param=project.early_stop.as_json(),
                tags=project.tags,
            ),
            f"project {project.project_id!r}",
        )


def project_status(project_id: str) -> ProjectStatus:
    with session_scope() as session:
        return ProjectStatus(_get(session, MrmsProject, project_id, "project").status)


def set_project_status(project_id: str, status: ProjectStatus, message: str | None = None) -> None:
    """Any status a client reports; analysis outcomes (7, 8) also close the project's analysis time."""
    with session_scope() as session:
        project = _get(session, MrmsProject, project_id, "project")
        project.status = status.value
        if message is not None:
            project.message = message
        if status in {ProjectStatus.ANALYZED, ProjectStatus.ANALYSIS_ERROR}:
            project.end_time = _now()


def start_analysis(project_id: str, data_analysis_id: str) -> dict[str, Any]:
    """Mark an analysis as requested (status 5) under a fresh data_analysis_id; returns what it needs."""
    with session_scope() as session:
        project = _get(session, MrmsProject, project_id, "project")
        project.status = ProjectStatus.ANALYSIS_REQUESTED.value
        project.data_analysis_id = data_analysis_id
        project.analysis_run_id = None
        project.data_profile = None
        project.message = None
        project.end_time = None
        return {"dataset_id": project.dataset_id, "purpose": project.project_purpose_cd}


def attach_analysis_run(project_id: str, data_analysis_id: str, run_id: str) -> None:
    with session_scope() as session:
        project = _get(session, MrmsProject, project_id, "project")
        if project.data_analysis_id == data_analysis_id:
            project.analysis_run_id = run_id


def analysis_run_id(project_id: str) -> str | None:
    with session_scope() as session:
        return _get(session, MrmsProject, project_id, "project").analysis_run_id


def finish_analysis(
    project_id: str,
    data_analysis_id: str,
    status: ProjectStatus,
    *,
    profile: dict[str, Any] | None = None,
    message: str | None = None,
) -> bool:
    """Record an analysis step; ignored (False) when a newer analysis superseded this one or a client
    moved the project on meanwhile (e.g. to 9, analysis pod delete)."""
    allowed = {
        ProjectStatus.ANALYZING: {ProjectStatus.ANALYSIS_REQUESTED},
        ProjectStatus.ANALYZED: {ProjectStatus.ANALYZING},
    }.get(status, {ProjectStatus.ANALYSIS_REQUESTED, ProjectStatus.ANALYZING})
    with session_scope() as session:
        project = _get(session, MrmsProject, project_id, "project")
        if project.data_analysis_id != data_analysis_id or ProjectStatus(project.status) not in allowed:
            return False
        project.status = status.value
        if profile is not None:
            project.data_profile = profile
        project.message = message
        if status in {ProjectStatus.ANALYZED, ProjectStatus.ANALYSIS_ERROR}:
            project.end_time = _now()
        return True


def project_info(project_id: str | None = None) -> list[dict[str, Any]]:
    with session_scope() as session:
        query = select(MrmsProject).order_by(MrmsProject.created_at, MrmsProject.project_id)
        if project_id:
            query = query.where(MrmsProject.project_id == project_id)
        return [
            {
                "project_id": p.project_id,
                "project_purpose_cd": p.project_purpose_cd,
                "data_analysis_id": p.data_analysis_id or "",
                "status": p.status,
                "start_time": format_time(p.start_time),
                "end_time": format_time(p.end_time),
                "dataset_id": p.dataset_id or "",
                "modeling_mode": p.modeling_mode,
                "early_stop_param": p.early_stop_param,
                "tag": ",".join(p.tags or []),
                "message": p.message or NO_MESSAGE,
                "data_profile": p.data_profile,
            }
            for p in session.scalars(query)
        ]


def project_for_training(project_id: str) -> dict[str, Any]:
    with session_scope() as session:
        return _training_project(_get(session, MrmsProject, project_id, "project"))


def _training_project(project: MrmsProject) -> dict[str, Any]:
    return {
        "purpose": project.project_purpose_cd,
        "dataset_id": project.dataset_id,
        "early_stop": EarlyStop.parse(project.early_stop_param),
    }


# --- learning histories -----------------------------------------------------------------------------
def create_learn_hist(
    *,
    learn_hist_no: str,
    project_id: str,
    param_id: str | None,
    params: dict[str, Any] | None,
    alg_anal_id: str | None,
    alg_id: str | None,
    dp_analysis_id: str | None,
    status: LearnStatus,
    start_time: datetime | None,
    trainer: Trainer,
) -> None:
    with session_scope() as session:
        _get(session, MrmsProject, project_id, "project")
        _commit_new(
            session,
            MrmsLearnHist(
                learn_hist_no=learn_hist_no,
                project_id=project_id,
                param_id=param_id,
                params=params,
                alg_anal_id=alg_anal_id,
                alg_id=alg_id,
                dp_analysis_id=dp_analysis_id,
                learn_sttus_cd=status.value,
                start_time=start_time,
                trainer=trainer.value,
                message=NO_MESSAGE,
                stopped_early=False,
                bookmark_yn=YesNo.NO.value,
                select_yn=YesNo.NO.value,
            ),
            f"learn_hist_no {learn_hist_no!r}",
        )


def attach_training_run(learn_hist_no: str, run_id: str) -> None:
    with session_scope() as session:
        _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no").flow_run_id = run_id


def learn_hist(learn_hist_no: str) -> dict[str, Any]:
    """What the training flow needs to know about its history."""
    with session_scope() as session:
        return _hist_dict(_get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no"))


def _hist_dict(hist: MrmsLearnHist) -> dict[str, Any]:
    return {
        "learn_hist_no": hist.learn_hist_no,
        "project_id": hist.project_id,
        "alg_id": hist.alg_id,
        "params": dict(hist.params or {}),
        "trainer": hist.trainer,
        "flow_run_id": hist.flow_run_id,
        "model_path": hist.model_path,
        "model_sha256": hist.model_sha256,
        "learn_sttus_cd": hist.learn_sttus_cd,
    }


@dataclass(frozen=True)
class TrainingJob:
    """Everything a training run reads before its first step: history, project, and dataset (None when
    the project names none)."""

    hist: dict[str, Any]
    project: dict[str, Any]
    dataset: dict[str, Any] | None


def begin_training(
    learn_hist_no: str, *, task_idx: str, when: datetime, run_id: str | None = None
) -> TrainingJob:
    """Worker `task_idx` starts: status 5 and start time `when` (what an external worker's
    update_learn_status and update_time leave), and what it needs to train, in one transaction, so a
    run's first database round trip is also its only one before training."""
    with session_scope() as session:
        hist = _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no")
        _check_owner(hist, run_id)
        project = _get(session, MrmsProject, hist.project_id, "project")
        dataset = session.get(MrmsDataset, project.dataset_id) if project.dataset_id else None
        _set_status(hist, LearnStatus.RUNNING, NO_MESSAGE, task_idx)
        _set_time(hist, TimeType.START, when)
        return TrainingJob(
            _hist_dict(hist), _training_project(project), _dataset_dict(dataset) if dataset else None
        )


def learn_status(learn_hist_no: str) -> LearnStatus:
    with session_scope() as session:
        return LearnStatus(_get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no").learn_sttus_cd)


def update_learn_status(
    learn_hist_no: str, status: LearnStatus, message: str | None = None, task_idx: str | None = None
) -> None:
    with session_scope() as session:
        _set_status(_get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no"), status, message, task_idx)


def update_learn_status_and_time(
    learn_hist_no: str,
    status: LearnStatus,
    message: str | None,
    *,
    task_idx: str | None,
    kind: TimeType,
    when: datetime,
    run_id: str | None = None,
) -> None:
    """update_learn_status and update_time in one transaction (the training flow's start and end)."""
    with session_scope() as session:
        hist = _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no")
        _check_owner(hist, run_id)
        _set_status(hist, status, message, task_idx)
        _set_time(hist, kind, when)


def _set_status(hist: MrmsLearnHist, status: LearnStatus, message: str | None, task_idx: str | None) -> None:
    hist.learn_sttus_cd = status.value
    hist.message = message if message not in (None, "") else NO_MESSAGE
    if task_idx not in (None, ""):
        hist.task_idx = task_idx


def _set_time(hist: MrmsLearnHist, kind: TimeType, when: datetime) -> None:
    if kind is TimeType.START:
        hist.start_time = when
    else:
        hist.end_time = when


def update_eps(learn_hist_no: str, eps: float) -> None:
    with session_scope() as session:
        _update_eps(session, _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no"), eps)


def record_resources(learn_hist_no: str, cpu_percent: float) -> None:
    with session_scope() as session:
        _record_resources(session, _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no"), cpu_percent)


def record_result(learn_hist_no: str, result: dict[str, Any]) -> int:
    """Store a step's ml_result_json (the latest also on the history); returns the step number.

    A result without "step" becomes the step after the last one; a repeated step replaces the earlier.
    """
    with session_scope() as session:
        return _record_result(session, _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no"), result)


@dataclass(frozen=True)
class StepRecord:
    """What an external worker sends per step: learn_result_update, eps_update and model_resources."""

    result: dict[str, Any]
    eps: float
    cpu_percent: float


def record_steps(learn_hist_no: str, steps: Iterable[StepRecord], *, run_id: str | None = None) -> None:
    """Several steps in one transaction, leaving exactly the rows that the three calls per step leave."""
    with session_scope() as session:
        hist = _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no")
        _check_owner(hist, run_id)
        for step in steps:
            _record_result(session, hist, step.result)
            _update_eps(session, hist, step.eps)
            _record_resources(session, hist, step.cpu_percent)


def _update_eps(session: Session, hist: MrmsLearnHist, eps: float) -> None:
    hist.eps = eps
    session.add(MrmsResourceSample(learn_hist_no=hist.learn_hist_no, eps=eps))


def _record_resources(session: Session, hist: MrmsLearnHist, cpu_percent: float) -> None:
    hist.cpu_percent = cpu_percent
    session.add(MrmsResourceSample(learn_hist_no=hist.learn_hist_no, cpu_percent=cpu_percent))


def _record_result(session: Session, hist: MrmsLearnHist, result: dict[str, Any]) -> int:
    learn_hist_no = hist.learn_hist_no
    step = result.get("step")
    if step is None:
        last = session.scalar(
            select(func.max(MrmsStepResult.step)).where(MrmsStepResult.learn_hist_no == learn_hist_no)
        )
        step = (last or 0) + 1
        if step > MAX_STEP:
            raise RecordError(f"learn_hist_no {learn_hist_no!r} already has step {MAX_STEP}, the last one")
        result = {**result, "step": step}
    row = session.scalar(
        select(MrmsStepResult).where(
            MrmsStepResult.learn_hist_no == learn_hist_no, MrmsStepResult.step == step
        )
    )
    if row is None:
        row = MrmsStepResult(learn_hist_no=learn_hist_no, step=step)
        session.add(row)
    row.result = result
    for key in METRIC_KEYS:
        setattr(row, key, result.get(key))
    hist.ml_result_json = result
    return int(step)


def running_runs(*, project_id: str | None = None, learn_hist_no: str | None = None) -> list[tuple[str, str]]:
    """(history, flow run id) of the histories still RUNNING on a flowbridge training run."""
    query = select(MrmsLearnHist.learn_hist_no, MrmsLearnHist.flow_run_id).where(
        MrmsLearnHist.learn_sttus_cd == LearnStatus.RUNNING.value, MrmsLearnHist.flow_run_id.is_not(None)
    )
    if project_id is not None:
        query = query.where(MrmsLearnHist.project_id == project_id)
    if learn_hist_no is not None:
        query = query.where(MrmsLearnHist.learn_hist_no == learn_hist_no)
    with session_scope() as session:
        return [(hist, run) for hist, run in session.execute(query).all()]


def close_lost_run(
    learn_hist_no: str, state_name: str, reason: str | None, ended: datetime, *, run_id: str | None = None
) -> None:
    """Mark a history whose training run ended without the flow's own bookkeeping (cancelled, crashed,
    lost with its machine) as failed: status 7 with the run's state as message, and an end time. A
    history that already left RUNNING is left alone."""
    with session_scope() as session:
        hist = _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no")
        if hist.learn_sttus_cd != LearnStatus.RUNNING or (run_id and hist.flow_run_id not in (None, run_id)):
            return
        message = f"training run {state_name}: {reason or 'no reason given'}"
        _set_status(hist, LearnStatus.ERROR, message, None)
        _set_time(hist, TimeType.END, ended)


def update_time(learn_hist_no: str, kind: TimeType, when: datetime) -> None:
    with session_scope() as session:
        _set_time(_get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no"), kind, when)


def finish_training(
    learn_hist_no: str, *, model_path: str, model_sha256: str, stopped_early: bool, run_id: str | None = None
) -> None:
    with session_scope() as session:
        hist = _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no")
        _check_owner(hist, run_id)
        hist.model_path = model_path
        hist.model_sha256 = model_sha256
        hist.stopped_early = stopped_early


def hist_statuses(project_id: str) -> list[dict[str, str]]:
    with session_scope() as session:
        _get(session, MrmsProject, project_id, "project")
        hists = session.scalars(
            select(MrmsLearnHist)
            .where(MrmsLearnHist.project_id == project_id)
            .order_by(MrmsLearnHist.created_at, MrmsLearnHist.learn_hist_no)
        )
        return [{"learn_hist_no": h.learn_hist_no, "learn_sttus_cd": h.learn_sttus_cd} for h in hists]


def step_results(learn_hist_no: str) -> list[dict[str, Any]]:
    with session_scope() as session:
        _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no")
        rows = session.scalars(
            select(MrmsStepResult)
            .where(MrmsStepResult.learn_hist_no == learn_hist_no)
            .order_by(MrmsStepResult.step)
        )
        return [{**r.result, "step": r.step} for r in rows]


def resource_samples(learn_hist_no: str) -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = session.scalars(
            select(MrmsResourceSample)
            .where(MrmsResourceSample.learn_hist_no == learn_hist_no)
            .order_by(MrmsResourceSample.id)
        )
        return [{"eps": r.eps, "cpu_percent": r.cpu_percent} for r in rows]


def models_info(project_id: str, learn_hist_no: str | None = None) -> list[dict[str, Any]]:
    with session_scope() as session:
        _get(session, MrmsProject, project_id, "project")
        query = select(MrmsLearnHist).where(MrmsLearnHist.project_id == project_id)
        if learn_hist_no:
            query = query.where(MrmsLearnHist.learn_hist_no == learn_hist_no)
        hists = list(session.scalars(query.order_by(MrmsLearnHist.created_at, MrmsLearnHist.learn_hist_no)))
        if learn_hist_no and not hists:
            raise NotFound(f"project {project_id!r} has no learn_hist_no {learn_hist_no!r}")
        return [_model_row(h) for h in hists]


def _model_row(hist: MrmsLearnHist) -> dict[str, Any]:
    return {
        "learn_hist_no": hist.learn_hist_no,
        "project_id": hist.project_id,
        "param_id": hist.param_id or "",
        "alg_anal_id": hist.alg_anal_id or "",
        "alg_id": hist.alg_id or "",
        "dp_analysis_id": hist.dp_analysis_id or "",
        "start_time": format_time(hist.start_time),
        "end_time": format_time(hist.end_time),
        "learn_sttus_cd": hist.learn_sttus_cd,
        "message": hist.message or NO_MESSAGE,
        "task_idx": hist.task_idx or "",
        "eps": hist.eps,
        "cpu_percent": hist.cpu_percent,
        "ml_result_json": hist.ml_result_json,
        "model_alias": hist.model_alias or "",
        "bookmark_yn": hist.bookmark_yn,
        "select_yn": hist.select_yn,
        "trainer": hist.trainer,
        "stopped_early": hist.stopped_early,
        "model_file": bool(hist.model_path),
    }


def project_of_hist(learn_hist_no: str) -> str:
    with session_scope() as session:
        return _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no").project_id


def set_alias(learn_hist_no: str, alias: str) -> None:
    if len(alias) > 255:
        raise RecordError("model_alias is longer than 255 characters")
    with session_scope() as session:
        _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no").model_alias = alias


def set_bookmark(learn_hist_no: str, flag: YesNo) -> None:
    with session_scope() as session:
        _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no").bookmark_yn = flag.value


def select_model(project_id: str, learn_hist_no: str) -> None:
    """The project's one selected model: this history becomes Y, every other one of the project N."""
    with session_scope() as session:
        hist = _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no")
        if hist.project_id != project_id:
            raise NotFound(f"learn_hist_no {learn_hist_no!r} is not in project {project_id!r}")
        for other in session.scalars(select(MrmsLearnHist).where(MrmsLearnHist.project_id == project_id)):
            other.select_yn = YesNo.NO.value
        hist.select_yn = YesNo.YES.value


def model_file(learn_hist_no: str) -> tuple[str, str]:
    """(storage-relative path, sha256) of a trained model."""
    with session_scope() as session:
        hist = _get(session, MrmsLearnHist, learn_hist_no, "learn_hist_no")
        if not hist.model_path or not hist.model_sha256:
            raise NotFound(f"learn_hist_no {learn_hist_no!r} has no exported model")
        return hist.model_path, hist.model_sha256


def parse_yes_no(value: str | None, name: str) -> YesNo:
    return parse_enum(YesNo, (value or "").strip().upper(), name)


def new_id() -> str:
    return str(uuid.uuid4())
