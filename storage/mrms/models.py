"""003 MRMS: datasets, parameter sets, projects, learning histories, their per-step results and resource
samples. A learning history is also the record of the model it trains (alias, bookmark, selection, file)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.metadata import Base
from storage.types import UTCDateTime, utcnow


class MrmsDataset(Base):
    """An uploaded table (CSV or Parquet) in storage, with the column a project predicts."""

    __tablename__ = "mrms_datasets"

    dataset_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(512))  # storage-relative
    file_format: Mapped[str] = mapped_column(String(16))
    original_name: Mapped[str] = mapped_column(String(255))
    target: Mapped[str] = mapped_column(String(255))
    time_column: Mapped[str | None] = mapped_column(String(255), nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)  # an upload limit may be set above 2 GiB
    columns: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MrmsParamSet(Base):
    """Hyperparameters a learning history names by param_id."""

    __tablename__ = "mrms_param_sets"

    param_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MrmsProject(Base):
    __tablename__ = "mrms_projects"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_purpose_cd: Mapped[str] = mapped_column(String(8))
    dataset_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(8))
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    modeling_mode: Mapped[str] = mapped_column(String(8))
    early_stop_param: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    data_analysis_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    analysis_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    data_profile: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MrmsLearnHist(Base):
    """One training of one algorithm with one parameter set on a project's dataset, and its model."""

    __tablename__ = "mrms_learn_hists"
    __table_args__ = (Index("ix_mrms_learn_hists_project_id", "project_id"),)

    learn_hist_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("mrms_projects.project_id", ondelete="CASCADE"))
    param_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    alg_anal_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    alg_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dp_analysis_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    learn_sttus_cd: Mapped[str] = mapped_column(String(8))
    task_idx: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    trainer: Mapped[str] = mapped_column(String(16))
    flow_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    eps: Mapped[float | None] = mapped_column(Float, nullable=True)
    cpu_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    ml_result_json: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    stopped_early: Mapped[bool] = mapped_column(Boolean, default=False)
    model_alias: Mapped[str | None] = mapped_column(String(255), nullable=True)
    bookmark_yn: Mapped[str] = mapped_column(String(1), default="N")
    select_yn: Mapped[str] = mapped_column(String(1), default="N")
    model_path: Mapped[str | None] = mapped_column(String(512), nullable=True)  # storage-relative
    model_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MrmsStepResult(Base):
    """ml_result_json of one step, as reported (by the flow or an external worker)."""

    __tablename__ = "mrms_step_results"
    __table_args__ = (
        UniqueConstraint("learn_hist_no", "step", name="uq_mrms_step_results_hist_step"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    learn_hist_no: Mapped[str] = mapped_column(
        ForeignKey("mrms_learn_hists.learn_hist_no", ondelete="CASCADE")
    )
    step: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MrmsResourceSample(Base):
    """One eps or CPU report of a learning history (UpdateEps, ModelResource)."""

    __tablename__ = "mrms_resource_samples"
    __table_args__ = (Index("ix_mrms_resource_samples_hist", "learn_hist_no"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    learn_hist_no: Mapped[str] = mapped_column(
        ForeignKey("mrms_learn_hists.learn_hist_no", ondelete="CASCADE")
    )
    eps: Mapped[float | None] = mapped_column(Float, nullable=True)
    cpu_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
