"""002 GasFlux Web API end to end: the document's curl flow on a synthetic plume, every error path, the
monitoring endpoints, the GASFLUX_* settings and the cleanup deployment, against the real stack."""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest
import yaml

from tests.support.plume import PlumeFlight, simulate
from tests.support.stack import StackInfo, extra_bridge

pytestmark = pytest.mark.e2e

STEM = "08_34_01_5m"
CONFIG_YAML = """\
output_dir: ~/gasflux_reports
required_cols:
  latitude: [-90, 90]
  longitude: [-180, 180]
  height_ato: [-200, 500]
  windspeed: [0, 50]
  winddir: [0, 360]
  temperature: [-50, 60]
  pressure: [900, 1100]
gases:
  ch4: [1.5, 500]
  co2: [300, 5000]
strategies:
  background: "algorithmic"
  sensor: "insitu"
  spatial: "curtain"
  interpolation: "kriging"
"""
STAGES = {"data_validation", "background_correction", "flux_calculation", "spatial_interpolation",
          "report_generation"}  # fmt: skip


@pytest.fixture(scope="module")
def plume(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document's inputs: data.xlsx (openpyxl) from a known Gaussian plume, and its config.yaml."""
    folder = tmp_path_factory.mktemp("gasflux")
    sim = simulate(PlumeFlight(seed=0))
    data = folder / f"{STEM}.xlsx"
    sim.frame.to_excel(data, index=False, engine="openpyxl")
    config = folder / "config.yaml"
    config.write_text(CONFIG_YAML)
    broken = folder / "broken.xlsx"
    sim.frame.drop(columns=["windspeed"]).to_excel(broken, index=False, engine="openpyxl")
    return {"data": data, "config": config, "broken": broken, "truth": sim.true_flux_kg_h}


def _upload(client: httpx.Client, data: Path, config: Path | None = None) -> httpx.Response:
    files = {"file": (data.name, data.read_bytes())}
    if config is not None:
        files["config"] = (config.name, config.read_bytes())
    return client.post("/upload", files=files)


def _poll(
    client: httpx.Client, job_id: str, timeout: float = 240
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll GET /task as the document's script does (faster); returns the final answer and all answers."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/task/{job_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        seen.append(body)
        if body["status"] in {"completed", "failed"}:
            return body, seen
        time.sleep(0.3)
    raise AssertionError(f"task {job_id} did not finish in {timeout} s: {seen[-1]}")


@pytest.fixture(scope="module")
def done(stack: StackInfo, plume: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(base_url=stack.bridge_url, timeout=60) as client:
        uploaded = _upload(client, plume["data"], plume["config"])
        final, seen = _poll(client, uploaded.json()["job_id"])
    return {"upload": uploaded, "final": final, "seen": seen, "job_id": uploaded.json()["job_id"]}


def _raw_get(base_url: str, raw_path: str) -> tuple[int, dict[str, Any]]:
    """GET a path byte for byte (httpx would normalise '..' and re-encode)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", raw_path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body.startswith(b"{") else {}
    finally:
        conn.close()


# --- the document's curl script ------------------------------------------------------------------------
def test_upload_answers_202_in_both_shapes(done: dict[str, Any]) -> None:
    response = done["upload"]
    assert response.status_code == 202
    body = response.json()
    assert body["code"] == 202 and body["message"] == "任务已接受并加入处理队列"
    assert body["data"]["status"] == "accepted"
    uuid.UUID(body["data"]["job_id"])
    assert body["data"]["task_status_url"] == f"/task/{body['data']['job_id']}"
    # the document's clients read result['job_id'] at the top level
    assert body["job_id"] == body["data"]["job_id"] and body["status"] == "accepted"


def test_progress_reports_the_documents_stages_and_an_eta(done: dict[str, Any]) -> None:
    running = [b["data"] for b in done["seen"] if b["status"] == "processing"]
    assert running, "never saw the task processing"
    stages = {r["progress"]["stage"] for r in running if r["progress"]["stage"]}
    assert stages and stages <= STAGES
    for r in running:
        progress = r["progress"]
        assert progress["total_steps"] == 5
        assert 0 <= progress["completed_steps"] <= 4
        assert "estimated_time_remaining" in progress
    assert any(r["progress"]["estimated_time_remaining"] is not None for r in running)
    ordered = [r["progress"]["completed_steps"] for r in running]
    assert ordered == sorted(ordered)


def test_completed_task_lists_and_serves_all_four_kinds_of_files(
    done: dict[str, Any], bridge: httpx.Client, plume: dict[str, Any]
) -> None:
    final = done["final"]
    job_id = done["job_id"]
    assert final["code"] == 200 and final["message"] == "任务查询成功"
    assert final["status"] == "completed" and final["data"]["message"] == "处理完成成功"
    assert final["results"] == final["data"]["results"]  # top-level mirror for the example clients
    assert final["processing_time_seconds"] > 0
    results = final["results"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for item in results:
        by_type.setdefault(item["type"], []).append(item)
        assert item["rel_path"].startswith(f"{job_id}/{STEM}.processed/")
        assert "_processing_run/" in item["rel_path"]
        assert item["download_url"] == f"/download/{item['rel_path']}"
    assert {r["name"] for r in by_type["report"]} == {f"{STEM}.processed_ch4_report.html",
                                                      f"{STEM}.processed_co2_report.html"}  # fmt: skip
    assert [r["name"] for r in by_type["data"]] == [f"{STEM}.processed_data.csv"]
    assert [r["name"] for r in by_type["config"]] == [f"{STEM}.processed_config.yaml"]
    assert [r["name"] for r in by_type["metadata"]] == [f"{STEM}.processed_output_vars.json"]

    downloaded = {}
    for item in results:  # the curl script: one GET per download_url
        response = bridge.get(item["download_url"])
        assert response.status_code == 200, item
        assert len(response.content) == item["size"]
        downloaded[item["type"] + ":" + item["name"]] = response.content
    for name, content in downloaded.items():
        if name.startswith("report:"):
            assert b"plotly-graph-div" in content and b"<html" in content.lower()
    csv = pd.read_csv(io.BytesIO(downloaded[f"data:{STEM}.processed_data.csv"]))
    assert len(csv) > 500 and {"latitude", "ch4", "co2"} <= set(csv.columns)
    config = yaml.safe_load(downloaded[f"config:{STEM}.processed_config.yaml"])
    assert set(config["gases"]) == {"ch4", "co2"}
    output = json.loads(downloaded[f"metadata:{STEM}.processed_output_vars.json"])
    rates = {gas: v["emission_rate_kg_h"] for gas, v in output["emission_rates"].items()}
    assert set(rates) == {"ch4", "co2"} and all(v > 0 for v in rates.values())
    assert final["data"]["emission_rates_kg_h"] == pytest.approx(rates)


def test_ch4_rate_through_the_api_is_within_5_percent_of_the_true_flux(
    done: dict[str, Any], plume: dict[str, Any]
) -> None:
    got = done["final"]["data"]["emission_rates_kg_h"]["ch4"]
    truth = plume["truth"]["ch4"]
    assert got == pytest.approx(truth, rel=0.05), f"{got:.3f} vs true {truth:.3f} kg/h"


def test_request_and_processing_lines_reach_the_log_file(done: dict[str, Any], stack: StackInfo) -> None:
    text = (Path(stack.data_dir) / "logs" / "gasflux_api.log").read_text(encoding="utf-8")
    job_id = done["job_id"]
    assert f"- INFO - [task:{job_id}] POST /upload - 202 - " in text
    assert f"- INFO - [task:{job_id}] GET /task/{job_id} - 200 - " in text
    assert f"[task:{job_id}] Processing started: {STEM}.xlsx (" in text
    assert f"[task:{job_id}] Processing completed: 5 files generated" in text


# --- reports -------------------------------------------------------------------------------------------
def test_reports_page_sort_filter(done: dict[str, Any], bridge: httpx.Client) -> None:
    body = bridge.get("/reports", params={"status": "completed", "per_page": 100}).json()
    assert body["code"] == 200 and body["message"] == "报告列表获取成功"
    mine = [r for r in body["data"]["reports"] if r["task_id"] == done["job_id"]]
    assert len(mine) == 1
    report = mine[0]
    assert report["report_name"] == STEM and report["status"] == "completed" and report["file_count"] == 5
    assert report["total_size"] == sum(f["size"] for f in report["all_files"])
    assert report["main_report"]["name"] == f"{STEM}.processed_ch4_report.html"
    assert report["run_directory"].startswith(f"{done['job_id']}/{STEM}.processed/")
    assert bridge.get(report["main_report"]["download_url"]).status_code == 200
    assert all(r["status"] == "completed" for r in body["data"]["reports"])
    assert body["data"]["filters"] == {"sort_by": "created_at", "sort_order": "desc", "status": "completed"}

    one = bridge.get("/reports", params={"per_page": 1, "page": 1, "sort_by": "file_size"}).json()["data"]
    assert len(one["reports"]) == 1 and one["pagination"]["per_page"] == 1
    assert one["pagination"]["has_prev"] is False
    assert one["pagination"]["has_next"] == (one["pagination"]["total_reports"] > 1)
    ascending = bridge.get("/reports", params={"sort_by": "task_id", "sort_order": "asc"}).json()["data"]
    ids = [r["task_id"] for r in ascending["reports"]]
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"per_page": 0}, "Invalid parameter: per_page must be between 1 and 100"),
        ({"per_page": 101}, "Invalid parameter: per_page must be between 1 and 100"),
        ({"per_page": "ten"}, "Invalid parameter: per_page must be between 1 and 100"),
        ({"page": 0}, "Invalid parameter: page must be 1 or greater"),
        ({"page": 2**31}, "Invalid parameter: page must be 2147483647 or less"),
        ({"sort_by": "size"}, "Invalid parameter: sort_by must be one of"),
        ({"sort_order": "up"}, "Invalid parameter: sort_order must be asc or desc"),
        ({"status": "done"}, "Invalid parameter: status must be one of"),
    ],
)
def test_reports_invalid_parameters_answer_400(
    bridge: httpx.Client, params: dict[str, Any], message: str
) -> None:
    response = bridge.get("/reports", params=params)
    assert response.status_code == 400
    assert response.json()["code"] == 400 and response.json()["message"].startswith(message)
    assert response.json()["data"] == {}


# --- upload errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"file": ("data.csv", b"a,b\n1,2\n")}, "无效的数据文件类型。只允许 .xlsx 和 .xls 格式。"),
        ({"file": ("data", b"x")}, "无效的数据文件类型。只允许 .xlsx 和 .xls 格式。"),
        (
            {"file": ("d.xlsx", b"x"), "config": ("c.json", b"{}")},
            "无效的配置文件类型。只允许 .yaml 和 .yml 格式。",
        ),
        ({"upload": ("d.xlsx", b"x")}, "请求中没有数据文件 (表单字段 file)"),
        ({"file": ("d.xlsx", b"")}, "上传的数据文件为空"),
        (
            {"file": ("d.xlsx", b"x"), "config": ("c.yaml", b"gasses: {ch4: [1, 2]}\n")},
            "无效的配置文件: Unknown",
        ),
    ],
)
def test_upload_client_mistakes_answer_400(bridge: httpx.Client, files: dict[str, Any], message: str) -> None:
    response = bridge.post("/upload", files=files)
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(message)


def test_failed_analysis_reports_stage_and_error_code_then_delete(
    bridge: httpx.Client, plume: dict[str, Any], stack: StackInfo
) -> None:
    job_id = _upload(bridge, plume["broken"]).json()["job_id"]
    busy = bridge.delete(f"/task/{job_id}")  # still pending or processing
    assert busy.status_code == 409
    assert busy.json()["message"] == "无法删除当前正在处理或等待处理的任务"
    assert busy.json()["data"]["task_status"] in {"pending", "processing"}
    final, _ = _poll(bridge, job_id)
    assert final["status"] == "failed" and final["data"]["message"] == "处理失败"
    assert final["error"].startswith("处理失败: Missing required column(s): 'windspeed'")
    details = final["error_details"]
    assert details["stage"] == "data_validation" and details["error_code"] == "MISSING_COLUMN"
    assert "Traceback" in details["traceback"]

    requeued_at = time.time()
    requeued = bridge.put(f"/task/{job_id}", json={"status": "pending"})  # 重新排队: the runner runs it again
    assert requeued.status_code == 200 and requeued.json()["data"]["task_info"]["status"] == "pending"
    again, _ = _poll(bridge, job_id)
    assert again["status"] == "failed" and again["error_details"]["error_code"] == "MISSING_COLUMN"
    assert again["updated_at"] > requeued_at

    upload_dir = Path(stack.storage_url) / "web_api_data" / "uploads" / job_id
    assert upload_dir.is_dir()
    deleted = bridge.delete(f"/task/{job_id}")
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert body["message"] == "任务及相关文件删除成功" and body["task_id"] == job_id
    assert body["details"]["task_status"] == "failed"
    assert body["details"]["folders_deleted"] == 2 and body["details"]["total_size_deleted"] > 0
    assert not upload_dir.exists()
    assert bridge.get(f"/task/{job_id}").status_code == 404


# --- task management -----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("task_id", ["5b0c2f1e-9d4a-4c57-8f0e-2a6b7c8d9e01", "invalid-task-id"])
def test_unknown_task_is_404(bridge: httpx.Client, method: str, task_id: str) -> None:
    response = bridge.request(method, f"/task/{task_id}", json={"message": "x"} if method == "PUT" else None)
    assert response.status_code == 404
    assert response.json()["message"] == "任务未找到" and response.json()["data"] == {"task_id": task_id}


def test_put_task_validation_and_updates(done: dict[str, Any], bridge: httpx.Client) -> None:
    url = f"/task/{done['job_id']}"
    bad = bridge.put(url, json={"status": "finished"})
    assert bad.status_code == 400
    assert bad.json()["message"] == "无效状态。必须是以下之一: pending, processing, completed, failed"
    not_json = bridge.put(url, content=b"status=completed", headers={"Content-Type": "text/plain"})
    assert not_json.status_code == 400 and not_json.json()["message"] == "请求体必须是 JSON 格式"
    assert bridge.put(url, json={"priority": "urgent"}).status_code == 400
    assert bridge.put(url, json={}).status_code == 400

    high = bridge.put(url, json={"priority": "high"})
    assert high.status_code == 200 and high.json()["message"] == "任务更新成功"
    assert high.json()["data"]["status"] == "updated"
    assert high.json()["data"]["task_info"]["priority"] == "high"
    from api_bridge.gateway import get_gateway
    from storage.gasflux.models import GasfluxTask
    from storage.metadata import session_scope

    with session_scope() as session:
        run_id = session.get(GasfluxTask, done["job_id"]).flow_run_id
    tags = get_gateway().status(run_id, fresh=True).tags
    assert "priority:high" in tags and not any(t == "priority:normal" for t in tags)

    message = bridge.put(url, json={"message": "更新的状态消息"})
    assert message.json()["data"]["task_info"]["message"] == "更新的状态消息"
    shown = bridge.get(url).json()
    assert shown["data"]["message"] == "更新的状态消息" and shown["status"] == "completed"

    marked = bridge.put(url, json={"status": "failed", "message": "处理失败 due to invalid input data"})
    assert marked.status_code == 200
    assert marked.json()["data"]["task_info"]["status"] == "failed"
    again = bridge.get(url).json()
    assert again["status"] == "failed" and again["error_details"]["error_code"] == "MARKED_FAILED"
    restored = bridge.put(url, json={"status": "completed", "message": "手动标记为完成"})
    assert restored.json()["data"]["task_info"] == {
        "status": "completed",
        "message": "手动标记为完成",
        "updated_at": restored.json()["data"]["task_info"]["updated_at"],
        "priority": "high",
    }
    assert len(bridge.get(url).json()["results"]) == 5  # the files are still served


# --- download ------------------------------------------------------------------------------------------
def test_download_refuses_traversal_and_reports_missing_and_folders(
    done: dict[str, Any], stack: StackInfo
) -> None:
    job_id = done["job_id"]
    base = stack.bridge_url
    forbidden = [
        "/download/../../etc/passwd",
        f"/download/{job_id}/../../../etc/passwd",
        "/download/%2e%2e/%2e%2e/etc/passwd",
        f"/download/{job_id}/..%2f..%2f..%2fetc%2fpasswd",
        "/download/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        f"/download/{job_id}/%252e%252e/result.json",
        "/download//etc/passwd",
        "/download/%2fetc%2fpasswd",
        f"/download/{job_id}/..%5c..%5cetc%5cpasswd",
        f"/download/{job_id}/x%00.html",
    ]
    for path in forbidden:
        status, body = _raw_get(base, path)
        assert status == 403, (path, status, body)
        assert body["message"] == "访问被拒绝"

    run_directory = done["final"]["results"][0]["rel_path"].rsplit("/", 1)[0]
    status, body = _raw_get(base, f"/download/{run_directory}")
    assert status == 400 and body["message"] == "路径不是文件"
    status, body = _raw_get(base, f"/download/{run_directory}/nothing.html")
    assert status == 404 and body["message"] == "文件未找到"
    assert body["data"] == {"filename": f"{run_directory}/nothing.html"}
    status, _ = _raw_get(base, f"/download/{uuid.uuid4()}/report.html")
    assert status == 404


def test_download_refuses_a_symlink_out_of_the_run_folder(done: dict[str, Any], stack: StackInfo) -> None:
    from storage.gasflux.models import GasfluxTask
    from storage.metadata import session_scope

    with session_scope() as session:
        run_id = session.get(GasfluxTask, done["job_id"]).flow_run_id
    link = Path(stack.storage_url) / "runs" / run_id / "leak.txt"
    os.symlink("/etc/passwd", link)
    try:
        status, body = _raw_get(stack.bridge_url, f"/download/{done['job_id']}/leak.txt")
        assert status == 403 and body["message"] == "访问被拒绝"
    finally:
        link.unlink()


# --- monitoring ----------------------------------------------------------------------------------------
def test_health_stats_and_reset(done: dict[str, Any], small_bridge: dict[str, Any]) -> None:
    """On a bridge of its own: request counters are per process, and nothing else talks to this one."""
    with httpx.Client(base_url=small_bridge["url"], timeout=30) as bridge:
        _health_stats_and_reset(done, bridge)


def _health_stats_and_reset(done: dict[str, Any], bridge: httpx.Client) -> None:
    reset = bridge.post("/stats/reset")
    assert reset.status_code == 200 and reset.json()["message"] == "统计信息重置成功"
    assert reset.json()["data"]["timestamp"] > 0
    health = bridge.get("/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["message"] == "健康检查完成" and body["status"] == "healthy"  # top-level mirror
    data = body["data"]
    assert data["version"] == "1.0.0" and data["storage"] == {
        "uploads_writable": True,
        "outputs_writable": True,
    }
    assert data["tasks"]["total_tracked"] >= 1 and data["tasks"]["total_processed"] >= 1
    assert set(data["performance"]) == {"requests_per_second", "avg_response_time_ms", "error_rate_percent"}

    for _ in range(3):
        assert bridge.get(f"/task/{uuid.uuid4()}").status_code == 404
    degraded = bridge.get("/health")
    assert degraded.status_code == 503
    assert degraded.json()["message"] == "服务不可用" and degraded.json()["data"]["status"] == "degraded"
    assert any(issue.startswith("错误率过高") for issue in degraded.json()["data"]["issues"])

    stats = bridge.get("/stats").json()
    assert stats["message"] == "统计信息获取成功"
    s = stats["data"]
    assert s["requests"]["by_method"]["GET"] >= 5 and s["requests"]["by_method"]["POST"] == 1
    assert s["requests"]["by_status"]["404"] == 3 and s["requests"]["by_status"]["503"] == 1
    assert s["requests"]["top_endpoints"]["/health"] == 2
    assert s["summary"]["requests_total"] == 6 and s["summary"]["error_rate_percent"] == 50.0
    perf = s["performance"]
    assert 0 < perf["min_response_time_ms"] <= perf["avg_response_time_ms"] <= perf["max_response_time_ms"]
    assert s["tasks"]["total_completed"] >= 1 and 0 <= s["tasks"]["success_rate_percent"] <= 100
    assert set(s["tasks"]["by_status"]) == {"pending", "processing", "completed", "failed"}
    assert s["system"]["memory_total_gb"] > 0 and s["system"]["disk_total_gb"] > 0
    assert done["job_id"] in [t["task_id"] for t in s["recent_tasks"]] and len(s["recent_tasks"]) <= 20
    bridge.post("/stats/reset")
    assert bridge.get("/health").status_code == 200


def test_config_lists_the_documents_settings(bridge: httpx.Client) -> None:
    body = bridge.get("/config").json()
    assert body["message"] == "配置信息获取成功"
    configuration = body["data"]["configuration"]
    assert configuration["max_content_length"] == 104857600 and configuration["task_cleanup_interval"] == 3600
    assert configuration["max_task_age"] == 86400 and configuration["threads"] == 8
    assert len(body["data"]["environment_variables"]["supported"]) == 14


@pytest.fixture(scope="module")
def small_bridge(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A second bridge with the document's variables set, on the same Prefect, storage and DB."""
    log_file = tmp_path_factory.mktemp("gfxlog") / "api.log"
    env = {
        "GASFLUX_MAX_CONTENT_LENGTH": "65536",
        "GASFLUX_LOG_FILE": str(log_file),
        "GASFLUX_CORS_ORIGINS": '["http://viewer.example"]',
        "GASFLUX_THREADS": "3",
        "GASFLUX_MAX_TASK_AGE": "120",
        "GASFLUX_UPLOAD_FOLDER": "gasflux_uploads_small",
    }
    with extra_bridge(stack, env) as process:
        yield {"url": process.url, "log": log_file, "env": env}


def test_oversize_upload_is_413_declared_or_streamed(small_bridge: dict[str, Any]) -> None:
    with httpx.Client(base_url=small_bridge["url"], timeout=30) as client:
        declared = client.post("/upload", files={"file": ("big.xlsx", b"x" * 200_000)})
        assert declared.status_code == 413
        assert declared.json()["message"] == "文件过大。最大尺寸为 0.06MB。"

        boundary = "gasfluxboundary"
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.xlsx"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
            yield head
            for _ in range(20):
                yield b"y" * 16384
            yield f"\r\n--{boundary}--\r\n".encode()

        streamed = client.post(
            "/upload", content=chunks(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        assert streamed.status_code == 413
        assert streamed.json()["code"] == 413


def test_gasflux_environment_variables_are_honoured(
    small_bridge: dict[str, Any], plume: dict[str, Any]
) -> None:
    with httpx.Client(base_url=small_bridge["url"], timeout=30) as client:
        body = client.get("/config").json()["data"]
        assert body["environment_variables"]["current_values"] == small_bridge["env"]
        configuration = body["configuration"]
        assert configuration["max_content_length"] == 65536 and configuration["threads"] == 3
        assert configuration["cors_origins"] == ["http://viewer.example"]
        assert configuration["upload_folder"].endswith("/gasflux_uploads_small")
        allowed = client.get("/health", headers={"Origin": "http://viewer.example"})
        assert allowed.headers["access-control-allow-origin"] == "http://viewer.example"
        other = client.get("/health", headers={"Origin": "http://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers
        small = client.post("/upload", files={"file": ("tiny.xlsx", b"PK\x03\x04 not really excel")})
        assert small.status_code == 202
        job_id = small.json()["job_id"]
    from storage.filesystems import get_storage

    storage = get_storage()
    assert storage.exists(storage.path("gasflux_uploads_small", job_id, "tiny.xlsx"))
    log = small_bridge["log"].read_text(encoding="utf-8")
    assert f"- INFO - [task:{job_id}] POST /upload - 202 - " in log
    assert " - INFO - GET /config - 200 - " in log


# --- cleanup -------------------------------------------------------------------------------------------
def _backdate(job_id: str, seconds: float) -> None:
    from datetime import UTC, datetime, timedelta

    from storage.gasflux.models import GasfluxTask
    from storage.metadata import session_scope

    with session_scope() as session:
        session.get(GasfluxTask, job_id).created_at = datetime.now(UTC) - timedelta(seconds=seconds)


def test_cleanup_is_a_scheduled_deployment_and_removes_old_finished_tasks(
    done: dict[str, Any], bridge: httpx.Client, plume: dict[str, Any], stack: StackInfo
) -> None:
    """Tasks are made old by backdating them, so tasks other tests create in parallel stay untouched."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.gasflux.cleanup import gasflux_cleanup

    fresh = _upload(bridge, plume["data"], plume["config"]).json()["job_id"]  # still pending: kept
    _backdate(done["job_id"], 2 * 86400)
    _backdate(fresh, 2 * 86400)
    with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("gasflux-cleanup/default")
            intervals = [s.schedule.interval.total_seconds() for s in deployment.schedules]
        assert intervals == [3600.0]
        result = gasflux_cleanup()  # GASFLUX_MAX_TASK_AGE: 86400 s
    assert done["job_id"] in result["removed"]
    assert fresh in result["kept_active"] and fresh not in result["removed"]
    assert bridge.get(f"/task/{done['job_id']}").status_code == 404
    status, _ = _raw_get(stack.bridge_url, done["final"]["results"][0]["download_url"])
    assert status == 404
    assert bridge.get(f"/task/{fresh}").status_code == 200


# --- inputs a database or a parser cannot take, the OpenAPI contract and fuzzing ------------------------
def test_put_task_and_upload_refuse_what_postgresql_or_the_json_parser_cannot_take(
    bridge: httpx.Client, plume: dict[str, Any]
) -> None:
    """A NUL in the message (PostgreSQL text refuses it) and JSON nested past the parser's recursion limit
    answered 500; they are the client's mistakes: 400 in the envelope, the task untouched."""
    job_id = _upload(bridge, plume["broken"]).json()["job_id"]
    _poll(bridge, job_id)
    url = f"/task/{job_id}"
    nul = bridge.put(url, json={"message": "bad\x00byte"})
    assert nul.status_code == 400, nul.text
    assert nul.json()["message"] == "message 必须是字符串 (不含 NUL 字符)" and nul.json()["data"] == {}
    deep = b"[" * 50_000
    nested = bridge.put(url, content=deep, headers={"Content-Type": "application/json"})
    assert nested.status_code == 400 and nested.json()["message"] == "请求体必须是 JSON 格式"
    upload = bridge.post("/upload", content=deep, headers={"Content-Type": "application/json"})
    assert upload.status_code == 400 and upload.json()["message"].startswith("无效的请求: ")
    assert bridge.get(url).json()["data"]["message"] == "处理失败"
    assert bridge.delete(url).status_code == 200


def test_schemathesis_finds_no_server_error_in_the_002_operations(
    stack: StackInfo, plume: dict[str, Any], tmp_path: Path
) -> None:
    """schemathesis over the 002 operations of the live /openapi.json: no 5xx except GET /health's
    documented 503 (degraded: the fuzzer's own 4xx answers push the error rate over the limit). GET and
    PUT /task get a task of the fuzzer's own (a failed analysis), so bodies reach a real record, and a
    dictionary of strings databases refuse or mangle (NUL, 10 kB, quotes, non-BMP) for its message."""
    with httpx.Client(base_url=stack.bridge_url, timeout=60) as client:
        job_id = _upload(client, plume["broken"]).json()["job_id"]
        _poll(client, job_id)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f"""
[[operations]]
include-operation-id = "gasflux_health"
checks.not_a_server_error.expected-statuses = ["2XX", "3XX", "4XX", "503"]

[dictionaries.hostile]
values = ["\\u0000", "a\\u0000b", "{"x" * 10_000}", "'; DROP TABLE gasflux_tasks; --", "𝔘ñí©ødé ☃"]

[[operations]]
include-operation-id = ["gasflux_get_task", "gasflux_update_task"]
[operations.parameters]
"path.task_id" = "{job_id}"
"body.message" = {{ dictionary = "hostile", probability = 0.3 }}
""",
        encoding="utf-8",
    )
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "--no-color",
        "run", f"{stack.bridge_url}/openapi.json", "--include-operation-id-regex", "^gasflux_",
        "--checks", "not_a_server_error", "--max-examples", "25", "--seed", "2002", "--workers", "1",
        "--phases", "coverage,fuzzing,stateful", "--request-timeout", "60",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Selected: 10/" in done.stdout, done.stdout[-3000:]
    with httpx.Client(base_url=stack.bridge_url, timeout=60) as client:
        client.delete(f"/task/{job_id}")
