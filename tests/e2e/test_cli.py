"""`flowbridge submit --wait` as a shell user runs it: the document's 000 calls, a live progress bar on
stderr, then the final answer and the result links on stdout; `flowbridge status --wait` the same for a
work_id."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.support.stack import StackInfo
from tests.support.traffic import traffic_csv

pytestmark = pytest.mark.e2e


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowbridge.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_submit_wait_shows_progress_then_the_result_links(stack: StackInfo, tmp_path: Path) -> None:
    csv = tmp_path / "traffic.csv"
    csv.write_bytes(traffic_csv(days=15, sensors=1, seed=21))
    done = _cli("submit", str(csv), "--url", stack.bridge_url, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100%" in done.stderr and "eta" in done.stderr  # the bar, drawn on stderr
    lines = done.stdout.strip().splitlines()
    started = json.loads(lines[1])
    assert started["ret"] == "4000"
    final = json.loads(lines[2])
    assert final == {"ret": "5000", "process": "100%", "work_id": started["work_id"]}
    link = lines[3].split(": ", 1)[1].strip()
    assert link == f"{stack.bridge_url}/static/download/{started['work_id']}.csv"
    forecast = pd.read_csv(io.BytesIO(httpx.get(link, timeout=30).raise_for_status().content))
    assert len(forecast) == 24
    # status --wait on the finished job: the same final answer, no bar needed to get there
    again = _cli("status", started["work_id"], "--url", stack.bridge_url, "--wait")
    assert again.returncode == 0 and json.loads(again.stdout.splitlines()[0]) == final


def test_status_wait_of_an_unknown_job_fails_with_its_answer(stack: StackInfo) -> None:
    done = _cli("status", "0" * 32, "--url", stack.bridge_url, "--wait")
    assert done.returncode == 1
    assert json.loads(done.stdout.splitlines()[0])["ret"] != "5000"
