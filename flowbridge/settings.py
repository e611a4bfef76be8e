"""Every setting of flowbridge, in one typed class.

Bridge and workers read the same variables; they share only the Prefect API, the storage URL and the
metadata database URL, so those three are all a new worker machine needs. Names are `FLOWBRIDGE_*`;
the GasFlux document's own `GASFLUX_*` names are accepted as aliases for its settings.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _gasflux(name: str) -> AliasChoices:
    """Accept both FLOWBRIDGE_GASFLUX_<NAME> and the document's GASFLUX_<NAME>."""
    return AliasChoices(f"FLOWBRIDGE_GASFLUX_{name}", f"GASFLUX_{name}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWBRIDGE_", extra="ignore", populate_by_name=True)

    # --- shared by bridge and workers -------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Folder for the embedded stack's files.")
    storage_url: str | None = Field(
        None,
        description="fsspec URL of job files: a folder (default <data_dir>/storage), s3://…, webhdfs://…",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="JSON of fsspec options for storage_url (e.g. endpoint_url, key)."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the metadata DB (default sqlite:///<data_dir>/flowbridge.db)."
    )
    prefect_api_url: str | None = Field(
        None,
        description="Prefect API URL; exported as PREFECT_API_URL to every process `flowbridge up` starts.",
    )

    # --- embedded stack (`make run`) ---------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Bridge listen address.")
    port: int = Field(8000, description="Bridge port.")
    prefect_host: str = Field("127.0.0.1", description="Embedded Prefect server address.")
    prefect_port: int = Field(4200, description="Embedded Prefect server (API and UI) port.")
    prefect_database_url: str | None = Field(
        None,
        description="Database of the embedded Prefect server (default SQLite in <data_dir>/prefect); "
        "postgresql://… for concurrent load, where SQLite's single writer makes API calls wait.",
    )
    runner_limit: int = Field(
        default_factory=lambda: max(2, os.cpu_count() or 2),
        description="Flow runs the embedded runner executes at once (near the core count).",
    )
    runner_poll_seconds: float = Field(
        1.0, description="How often the runner polls for scheduled runs (the fallback of event pickup)."
    )
    warm_start: bool = Field(
        True,
        description="Fork each flow run from a template process that imported every flow once (off: a "
        "fresh interpreter per run, Prefect's default).",
    )
    bridge_workers: int = Field(1, description="Uvicorn worker processes of the bridge.")
    public_url: str | None = Field(
        None,
        description="Base URL users reach the bridge at, for the download links of result artifacts in "
        "the Prefect UI (default http://<host>:<port>, 127.0.0.1 for 0.0.0.0).",
    )
    telemetry: bool = Field(
        False,
        description="FastAPI's native OpenTelemetry in the bridge (off: it costs a provider lookup per "
        "request; turn on with an OTEL exporter configured).",
    )

    # --- job gateway -------------------------------------------------------------------------------
    submit_concurrency: int = Field(4, description="Flow-run submissions in flight at once per bridge.")
    submit_attempts: int = Field(6, description="Attempts per submission before answering an error.")
    status_cache_seconds: float = Field(
        0.5,
        description="How long a bridge reuses a run's status read from Prefect (0 disables); until twice "
        "that age a poll still gets it at once while it is re-read in the background.",
    )
    lookup_cache_seconds: float = Field(
        5.0, description="How long a bridge reuses a legacy id -> flow run lookup (0 disables)."
    )
    heartbeat_seconds: int = Field(30, ge=30, description="Flow-run heartbeat period (Prefect minimum 30).")
    zombie_after_seconds: int = Field(
        90, description="A running flow run without a heartbeat for this long is marked Crashed."
    )

    # --- 000 traffic forecast ----------------------------------------------------------------------
    max_upload_bytes: int = Field(100 * 1024 * 1024, description="Largest traffic CSV upload, in bytes.")
    holiday_country: str = Field("CN", description="Default holiday calendar of traffic forecasts.")
    forecast_timeout_seconds: float = Field(
        3600.0, gt=0, description="Longest traffic forecast backtest-and-fit (forecast_series) step."
    )

    # --- 001 offline algorithm platform ------------------------------------------------------------
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated tokens accepted in the Authorization header of /api/algorithm.",
    )
    smtp_host: str | None = Field(None, description="SMTP server for failure mails.")
    smtp_port: int = Field(25, description="SMTP port.")
    smtp_user: str | None = Field(None, description="SMTP login (optional).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (optional).")
    smtp_from: str = Field("flowbridge@localhost", description="Sender address of failure mails.")
    smtp_starttls: bool = Field(False, description="Use STARTTLS.")
    remote_timeout_seconds: float = Field(20.0, description="Connect/read timeout for HDFS and CEPH.")
    remote_attempts: int = Field(
        3, ge=1, le=10, description="Tries of an HDFS/CEPH step on transient errors (backoff between)."
    )
    smtp_timeout_seconds: float = Field(15.0, description="Connect/send timeout of a failure mail.")
    remote_io_timeout_seconds: float = Field(
        3600.0, gt=0, description="Longest run of one HDFS/CEPH step (check, stage, publish); then it fails."
    )
    offline_time_zone: str = Field(
        "Asia/Shanghai", description="Time zone of addTime/startTime/finishTime and of failure mails."
    )

    # --- 003 MRMS ----------------------------------------------------------------------------------
    mrms_max_upload_bytes: int = Field(200 * 1024 * 1024, description="Largest MRMS dataset upload.")
    mrms_train_steps: int = Field(20, ge=1, description="Training steps when a parameter set names none.")
    mrms_validation_fraction: float = Field(0.2, gt=0, lt=1, description="Default validation split share.")
    mrms_estimators_per_step: int = Field(10, ge=1, description="Trees added per step by warm-start models.")
    mrms_metric_rows: int = Field(5_000, ge=100, description="Rows per split scored after each step.")
    mrms_train_timeout_seconds: float = Field(
        6 * 3600.0, gt=0, description="Longest MRMS training run (train_worker); then it fails."
    )
    mrms_log_tail_lines: int = Field(50, ge=1, description="Lines per worker of get_learn_logs?tail=true.")

    # --- 004 DataFlow ------------------------------------------------------------------------------
    neo4j_uri: str | None = Field(None, description="Neo4j bolt URI; unset = embedded graph store.")
    neo4j_user: str = Field("neo4j", description="Neo4j user.")
    neo4j_password: SecretStr | None = Field(None, description="Neo4j password.")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible base URL for create-script.")
    llm_model: str = Field("deepseek-chat", description="Model name for create-script.")
    llm_api_key: SecretStr | None = Field(None, description="API key for create-script.")
    llm_timeout_seconds: float = Field(120.0, gt=0, description="Longest create-script LLM call.")
    dataflow_step_timeout_seconds: float = Field(
        3600.0, gt=0, description="Longest run of one DataFlow step (source, transform, target)."
    )
    dataflow_lease_seconds: int = Field(
        60,
        ge=60,
        description="Lease of a running dataflow's concurrency slot, renewed while it runs: how long a "
        "slot outlives a run whose runner died with it (Prefect's minimum is 60).",
    )
    openlineage_url: str | None = Field(
        None,
        description="OpenLineage consumer (e.g. Marquez) base URL: DataFlow runs POST START and "
        "COMPLETE/FAIL events to <url>/api/v1/lineage.",
    )

    # --- 002 GasFlux (GASFLUX_* names from its document work too) ------------------------------------
    gasflux_host: str = Field(
        "0.0.0.0",
        validation_alias=_gasflux("HOST"),
        description="Shown by /config (bridge: FLOWBRIDGE_HOST).",
    )
    gasflux_port: int = Field(5000, validation_alias=_gasflux("PORT"), description="Shown by /config.")
    gasflux_debug: bool = Field(False, validation_alias=_gasflux("DEBUG"), description="DEBUG request logs.")
    gasflux_upload_folder: str = Field(
        "web_api_data/uploads",
        validation_alias=_gasflux("UPLOAD_FOLDER"),
        description="Shown by /config; uploads live in storage under uploads/002/.",
    )
    gasflux_output_folder: str = Field(
        "web_api_data/outputs",
        validation_alias=_gasflux("OUTPUT_FOLDER"),
        description="Shown by /config; results live in storage under runs/<flow run id>/.",
    )
    gasflux_max_content_length: int = Field(
        104857600,
        validation_alias=_gasflux("MAX_CONTENT_LENGTH"),
        description="Largest GasFlux upload in bytes (413 above it, checked while streaming).",
    )
    gasflux_log_level: str = Field(
        "INFO", validation_alias=_gasflux("LOG_LEVEL"), description="Request log level."
    )
    gasflux_log_file: str = Field(
        "logs/gasflux_api.log", validation_alias=_gasflux("LOG_FILE"), description="GasFlux request log file."
    )
    gasflux_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        validation_alias=_gasflux("CORS_ORIGINS"),
        description="CORS origins of the GasFlux paths (JSON list or comma-separated).",
    )
    gasflux_task_cleanup_interval: int = Field(
        3600,
        validation_alias=_gasflux("TASK_CLEANUP_INTERVAL"),
        description="Seconds between runs of the scheduled gasflux-cleanup deployment.",
    )
    gasflux_max_task_age: int = Field(
        86400,
        validation_alias=_gasflux("MAX_TASK_AGE"),
        description="GasFlux tasks older than this many seconds are removed by the cleanup.",
    )
    gasflux_threads: int = Field(8, validation_alias=_gasflux("THREADS"), description="Shown by /config.")
    gasflux_connection_limit: int = Field(
        100, validation_alias=_gasflux("CONNECTION_LIMIT"), description="Shown by /config."
    )
    gasflux_channel_timeout: int = Field(
        300, validation_alias=_gasflux("CHANNEL_TIMEOUT"), description="Shown by /config."
    )
    gasflux_step_timeout_seconds: float = Field(
        3600.0,
        gt=0,
        validation_alias=AliasChoices("FLOWBRIDGE_GASFLUX_STEP_TIMEOUT_SECONDS"),
        description="Longest run of one GasFlux step (validation, background, flux, kriging, report).",
    )

    @field_validator("gasflux_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return (
                json.loads(text)
                if text.startswith("[")
                else [o.strip() for o in text.split(",") if o.strip()]
            )
        return value

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [token.strip() for token in value.split(",") if token.strip()]
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def effective_storage_url(self) -> str:
        return self.storage_url or str(self.data_dir / "storage")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'flowbridge.db'}"

    @property
    def effective_prefect_database_url(self) -> str:
        """The Prefect server's async SQLAlchemy URL (asyncpg / aiosqlite drivers filled in)."""
        from sqlalchemy.engine import make_url

        if not self.prefect_database_url:
            return f"sqlite+aiosqlite:///{self.data_dir / 'prefect' / 'prefect.db'}"
        parsed = make_url(self.prefect_database_url)
        async_drivers = {
            "postgresql": "postgresql+asyncpg",
            "postgres": "postgresql+asyncpg",
            "sqlite": "sqlite+aiosqlite",
        }
        driver = async_drivers.get(parsed.get_backend_name())
        return (parsed.set(drivername=driver) if driver else parsed).render_as_string(hide_password=False)

    @property
    def effective_prefect_api_url(self) -> str:
        return (
            self.prefect_api_url
            or os.environ.get("PREFECT_API_URL")
            or f"http://{self.prefect_host}:{self.prefect_port}/api"
        )


def _as_env(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(isinstance(v, SecretStr) for v in value):
        return ",".join(v.get_secret_value() for v in value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def settings_environment(settings: Settings) -> dict[str, str]:
    """The variables that make a child process's `Settings()` equal `settings` for every field that was
    set explicitly (a stack built from a Settings object hands it to its runner and bridge this way)."""
    env = {}
    for name in settings.model_fields_set:
        value = _as_env(getattr(settings, name))
        if value is not None:
            env[env_names(name, Settings.model_fields[name])[0]] = value
    return env


def env_names(name: str, info: object) -> list[str]:
    """The environment variable names that set field `name`."""
    alias = getattr(info, "validation_alias", None)
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"FLOWBRIDGE_{name.upper()}"]


def settings_table() -> str:
    """The README's settings table, generated so it cannot drift from this class."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        if info.default_factory is not None:
            default = "(cores, at least 2)" if name == "runner_limit" else repr(info.default_factory())
        else:
            default = "" if info.default is None else repr(info.default)
        default = str(info.default) if isinstance(info.default, Path) else default
        names = " / ".join(f"`{n}`" for n in env_names(name, info))
        rows.append(
            f"| {names} | {default.replace('|', '/')} | {(info.description or '').replace('|', '/')} |"
        )
    return "\n".join(rows)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings are read once per process; tests call `get_settings.cache_clear()` after changing env."""
    return Settings()
