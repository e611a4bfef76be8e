"""A do-nothing-slowly job for operators: proves a runner picks up work and reports progress.

`flowbridge submit` exercises the real 000 path; this flow isolates orchestration from computation, which
the orchestration benchmark and the crash-recovery tests need (a job that is reliably still running when
its process is killed).
"""

from __future__ import annotations

import os
import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from storage.filesystems import get_storage
from tasks.progress import Progress


class ProbeParams(BaseModel):
    seconds: float = Field(0.0, ge=0, le=3600, description="Total time to spend, spread over the steps.")
    steps: int = Field(1, ge=1, le=1000, description="Progress updates to make.")


def _process_facts() -> dict[str, Any]:
    """Which process ran the job: the warm-start tests check it was forked from the template."""
    return {
        "pid": os.getpid(),
        "parent_pid": os.getppid(),
        "template_pid": os.environ.get("FLOWBRIDGE_WARM_TEMPLATE_PID"),
    }


@flow(name="diagnostics-probe")
def probe(seconds: float = 0.0, steps: int = 1) -> dict[str, Any]:
    params = ProbeParams(seconds=seconds, steps=steps)
    progress = Progress(["work"], min_interval=0.0)
    progress.stage("work")
    for step in range(params.steps):
        time.sleep(params.seconds / params.steps)
        progress.advance((step + 1) / params.steps, f"step {step + 1}/{params.steps}")
    get_run_logger().info("probe finished %d steps in %.1f s", params.steps, params.seconds)
    result = {"seconds": params.seconds, "steps": params.steps, "process": _process_facts()}
    get_storage().write_summary(str(flow_run.get_id()), result)
    progress.finish()
    return result
