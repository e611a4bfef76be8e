"""What a finished job shows in the Prefect UI: its result as table, markdown and link artifacts.

Every job type publishes under fixed keys (`KEYS`), so the UI's Artifacts page keeps one history per key
across runs. Each service's builders (tasks/<service>/artifacts.py) are pure: they take a job's result
data and return `ArtifactSpec`s, so tests check the tables and markdown without a server; this module
holds what they share. `publish` (and `publish_in_background`) gathers
and creates them inside the flow run and never fails the job: an error is logged as a warning and the
artifacts are skipped, since they are a view of the result and result.json stays the record.

Links point at the bridge's legacy download paths under `Settings.effective_public_url`, never at
storage, and no artifact holds a credential (user names and URL user info are left out).
"""

from __future__ import annotations

import contextvars
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("flowbridge.artifacts")

KEYS: dict[str, tuple[str, ...]] = {
    "traffic-forecast": (
        "traffic-forecast-backtest",
        "traffic-forecast-summary",
        "traffic-forecast-chart",
        "traffic-forecast-file",
        "traffic-forecast-bounds-file",
    ),
    "gasflux": (
        "gasflux-emission-rates",
        "gasflux-summary",
        "gasflux-report-<gas>",
        "gasflux-data-csv",
        "gasflux-output-json",
        "gasflux-config-yaml",
    ),
    "mrms-training": ("mrms-training-steps", "mrms-training-summary", "mrms-model"),
    "dataflow-run": ("dataflow-steps", "dataflow-lineage", "dataflow-summary"),
    "offline-task": ("offline-task-summary",),
}
_KEY = re.compile(r"^[a-z0-9-]+$")


@dataclass(frozen=True)
class ArtifactSpec:
    """One artifact to create: a table (list of rows), a markdown text or a link."""

    kind: Literal["table", "markdown", "link"]
    key: str
    description: str
    table: list[dict[str, Any]] | None = None
    markdown: str | None = None
    link: str | None = None
    link_text: str | None = None

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"artifact key {self.key!r} is not lowercase letters, numbers and dashes")


def key_part(text: str) -> str:
    """`text` as a piece of an artifact key (Prefect allows lowercase letters, numbers and dashes)."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower())).strip("-") or "x"


def without_credentials(location: str) -> str:
    """A URL without its user info (`scheme://user:pass@host` -> `scheme://host`); other text unchanged."""
    try:
        parts = urlsplit(location)
    except ValueError:
        return location
    if not parts.netloc or "@" not in parts.netloc:
        return location
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def join_url(base_url: str | None, path: str) -> str | None:
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}" if base_url else None


def pct(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) and math.isfinite(value) else "–"


# --- a finished run's context (settings, the run's tags and start) -------------------------------------
def base_url() -> str:
    from flowbridge.settings import get_settings

    return get_settings().effective_public_url


def tag_value(prefix: str) -> str | None:
    from prefect.runtime import flow_run

    return next((t[len(prefix) :] for t in flow_run.get_tags() or [] if t.startswith(prefix)), None)


def elapsed_seconds() -> float | None:
    """Seconds since the flow run started (its start time, or its Running state's time)."""
    from datetime import UTC, datetime

    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None:
        return None
    started = run.start_time or (run.state.timestamp if run.state and run.state.is_running() else None)
    return (datetime.now(UTC) - started).total_seconds() if started else None


# --- creating them --------------------------------------------------------------------------------------
def create(specs: Iterable[ArtifactSpec]) -> list[Any]:
    """Create the artifacts in the current flow run (Prefect attaches them to it)."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    ids = []
    for spec in specs:
        if spec.kind == "table":
            ids.append(create_table_artifact(spec.table or [], key=spec.key, description=spec.description))
        elif spec.kind == "markdown":
            ids.append(
                create_markdown_artifact(spec.markdown or "", key=spec.key, description=spec.description)
            )
        else:
            ids.append(
                create_link_artifact(
                    spec.link or "", link_text=spec.link_text, key=spec.key, description=spec.description
                )
            )
    return ids


def publish(build: Callable[[], Iterable[ArtifactSpec]], what: str) -> bool:
    """Build and create a job's result artifacts; any error is a warning, never the job's failure."""
    try:
        create(list(build()))
        return True
    except Exception as exc:
        _warn(f"result artifacts of {what} skipped: {type(exc).__name__}: {exc}")
        return False


def publish_in_background(build: Callable[[], Iterable[ArtifactSpec]], what: str) -> Callable[[], None]:
    """`publish` on a thread in this flow run's context; returns a bounded wait for it to finish.

    For short jobs (MRMS training, DataFlow) whose end would otherwise wait on a few API round trips.
    """
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(publish, build, what), name="artifacts", daemon=True)
    thread.start()
    return lambda: thread.join(30.0)


def _warn(message: str) -> None:
    try:
        from prefect import get_run_logger

        get_run_logger().warning(message)
    except Exception:
        log.warning(message)
