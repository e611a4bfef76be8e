"""The GasFlux web page at / in headless Chromium: upload, watch the task's stage and progress, open the
report, see the system status. Debian's chromium is used (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import chromium
from tests.support.plume import PlumeFlight, simulate
from tests.support.stack import StackInfo

pytestmark = pytest.mark.e2e

STAGES = ("data_validation", "background_correction", "flux_calculation", "spatial_interpolation",
          "report_generation")  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from chromium()


def test_upload_watch_and_open_the_report(browser: object, stack: StackInfo, tmp_path: Path) -> None:
    sim = simulate(PlumeFlight(seed=4))
    data = tmp_path / "flight_web.xlsx"
    sim.frame.to_excel(data, index=False, engine="openpyxl")
    config = tmp_path / "config.yaml"
    config.write_text("gases:\n  ch4: [1.5, 500]\n")

    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(stack.bridge_url + "/")
    assert page.title() == "GasFlux Web API"
    page.wait_for_function(
        "['healthy','degraded'].includes(document.querySelector('#health-status').textContent)"
    )
    assert "uptime" in page.inner_text("#health-detail")

    page.set_input_files("#data-file", str(data))
    page.set_input_files("#config-file", str(config))
    page.click("#upload-button")
    page.wait_for_selector("#upload-result[data-job-id]")
    job_id = page.get_attribute("#upload-result", "data-job-id")
    assert job_id and "任务已接受并加入处理队列" in page.inner_text("#upload-result")

    row = f'#tasks tr[data-task-id="{job_id}"]'
    seen_stages: set[str] = set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = page.get_attribute(row, "data-status") if page.query_selector(row) else None
        if status == "processing":
            text = page.inner_text(f"{row} td:nth-child(3)")
            seen_stages.update(stage for stage in STAGES if stage in text)
        if status in {"completed", "failed"}:
            break
        time.sleep(0.25)
    assert status == "completed", page.inner_text(row)
    assert seen_stages, "the task list never showed a processing stage"

    links = page.query_selector_all(f"{row} a.result-link")
    kinds = sorted(link.get_attribute("data-type") or "" for link in links)
    assert kinds == ["config", "data", "metadata", "report"]
    page.screenshot(path=str(tmp_path / "gasflux_page.png"), full_page=True)
    if os.environ.get("GASFLUX_SCREENSHOT_COPY"):
        shutil.copy(tmp_path / "gasflux_page.png", os.environ["GASFLUX_SCREENSHOT_COPY"])

    with context.expect_page() as opened:
        page.click(f'{row} a.result-link[data-type="report"]')
    report = opened.value
    report.wait_for_load_state()
    assert report.url.startswith(f"{stack.bridge_url}/download/{job_id}/flight_web.processed/")
    report.wait_for_selector(".plotly-graph-div", timeout=30_000)
    assert "ch4" in report.content().lower()
    assert not errors, errors
    context.close()
