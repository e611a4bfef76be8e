"""The five APIs on the configuration `make run` starts: `flowbridge up` with SQLite for Prefect and for the
metadata DB (tests/support/stack.py DefaultStack), called over HTTP as a client following each document.

The shared PostgreSQL stack keeps the concurrency-heavy cases; here every API's happy path and its edit and
delete paths run once on the default, where SQLite-only defects (naive datetimes, reused ids) show up. All
tests are one xdist group, so one worker starts the stack once.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest

from tasks.mrms.training import load_model
from tests.e2e.dataflow import test_dataflow_api as dataflow
from tests.e2e.gasflux import test_gasflux_api as gasflux
from tests.e2e.mrms import test_mrms_api as mrms
from tests.e2e.offline import test_offline_api as offline
from tests.e2e.traffic import test_traffic_api as traffic
from tests.support.services import ServicesInfo, session_services
from tests.support.stack import DEV_TOKEN, StackInfo
from tests.support.traffic import traffic_csv

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("default_config")]

SHANGHAI = ZoneInfo("Asia/Shanghai")
plume = gasflux.plume  # the 002 document's inputs: data.xlsx of a known plume and its config.yaml


@pytest.fixture(scope="module")
def client(default_stack: StackInfo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=default_stack.bridge_url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> ServicesInfo:
    """The S3 server playing the 001 client's CEPH (the controller's, or one started here)."""
    return session_services(tmp_path_factory.mktemp("services"))


def test_the_stack_is_sqlite_as_make_run_starts_it(default_stack: StackInfo, client: httpx.Client) -> None:
    data = Path(default_stack.data_dir)
    assert (data / "flowbridge.db").stat().st_size > 0, "metadata DB is not the default SQLite file"
    assert (data / "prefect" / "prefect.db").stat().st_size > 0, "Prefect is not on the default SQLite"
    assert client.get("/healthcheck.do").json()["success"] is True


# --- 000 traffic forecast --------------------------------------------------------------------------------
def test_000_upload_forecast_and_download(client: httpx.Client) -> None:
    uploaded = traffic.upload(client, traffic_csv(days=21, sensors=2))
    assert uploaded["ret"] == "6000", uploaded
    started = traffic.start(client, uploaded["work_id"])
    assert started["ret"] == "4000", started
    run_id = started["work_id"]
    answer, seen = traffic.wait_done(client, run_id)
    assert answer == {"ret": "5000", "process": "100%", "work_id": run_id}
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    response = client.post("/get_download_resu", data={"work_id": run_id})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    forecast = pd.read_csv(io.BytesIO(response.content))
    assert list(forecast.columns) == ["time", "road_1", "road_2"] and len(forecast) == 24


# --- 001 offline platform --------------------------------------------------------------------------------
def test_001_submit_finish_and_cancel(client: httpx.Client, s3: ServicesInfo) -> None:
    client.headers["Authorization"] = DEV_TOKEN  # the token `make run` prints
    bucket = f"default-{uuid.uuid4().hex[:12]}"
    storage = s3.s3_client()
    storage.create_bucket(Bucket=bucket)
    storage.put_object(Bucket=bucket, Key="in/flow.csv", Body=offline.SMALL_CSV)
    inputs = offline.ceph(s3, "inputPath", f"{bucket}#in/flow.csv")
    outputs = offline.ceph(s3, "outputPath", f"{bucket}#out")
    try:
        submitted = offline.submit(client, inputs, outputs, "owner@example.com", params={"horizon": 12})
        assert submitted.status_code == 200, submitted.text
        task_id = submitted.json()["taskId"]
        answer, _seen = offline.wait_final(client, task_id)
        assert answer["status"] == "FINISHED", answer
        assert all(offline.TIME.match(answer[k]) for k in ("addTime", "startTime", "finishTime"))
        assert answer["addTime"] <= answer["startTime"] <= answer["finishTime"]
        # the document's wall-clock times (Asia/Shanghai by default), whatever the backend hands back
        added = datetime.strptime(answer["addTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
        assert abs((datetime.now(SHANGHAI) - added).total_seconds()) < 300, answer
        body = storage.get_object(Bucket=bucket, Key=f"out/{task_id}/forecast.csv")["Body"].read()
        assert len(pd.read_csv(io.BytesIO(body))) == 12
        late = client.post("/api/algorithm/task/cancel", params={"taskId": task_id})
        assert late.status_code == 409 and late.json()["error"] == "ALREADY_ENDED", late.text

        second = offline.submit(client, inputs, outputs, "owner@example.com").json()["taskId"]
        assert second != task_id
        cancelled = client.post("/api/algorithm/task/cancel", params={"taskId": second})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "ERROR" and "cancelled" in cancelled.json()["message"]
        final, _seen = offline.wait_final(client, second, timeout=60)
        assert final["status"] == "ERROR" and final["message"].startswith("cancelled"), final
        assert client.get("/api/algorithm/task/get", params={"taskId": task_id}).json() == answer
    finally:
        client.headers.pop("Authorization", None)


# --- 002 GasFlux -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gasflux_done(client: httpx.Client, plume: dict[str, Any]) -> dict[str, Any]:
    uploaded = gasflux._upload(client, plume["data"], plume["config"])
    assert uploaded.status_code == 202, uploaded.text
    job_id = uploaded.json()["job_id"]
    final, _seen = gasflux._poll(client, job_id)
    return {"job_id": job_id, "final": final}


def test_002_upload_analyse_and_download_a_report(client: httpx.Client, gasflux_done: dict[str, Any]) -> None:
    final = gasflux_done["final"]
    assert final["status"] == "completed", final
    reports = [r for r in final["results"] if r["type"] == "report"]
    assert len(reports) == 2
    response = client.get(reports[0]["download_url"])
    assert response.status_code == 200 and b"plotly-graph-div" in response.content
    assert client.get("/stats").status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"message": "更新的状态消息"},
        {"priority": "high"},
        {"status": "failed", "message": "处理失败 due to invalid input data"},
        {"status": "completed", "message": "手动标记为完成"},
    ],
    ids=["message", "priority", "status-failed", "status-completed"],
)
def test_002_edit_then_task_and_stats_still_answer(
    client: httpx.Client, gasflux_done: dict[str, Any], change: dict[str, str]
) -> None:
    url = f"/task/{gasflux_done['job_id']}"
    edited = client.put(url, json=change)
    assert edited.status_code == 200, edited.text
    assert edited.json()["message"] == "任务更新成功"
    for key, value in change.items():
        assert edited.json()["data"]["task_info"][key] == value
    shown = client.get(url)
    assert shown.status_code == 200, shown.text
    if "status" in change:
        assert shown.json()["status"] == change["status"]
    stats = client.get("/stats")
    assert stats.status_code == 200, stats.text
    assert gasflux_done["job_id"] in [t["task_id"] for t in stats.json()["data"]["recent_tasks"]]
    assert client.get("/reports").status_code == 200


def test_002_delete_task(client: httpx.Client, gasflux_done: dict[str, Any]) -> None:
    url = f"/task/{gasflux_done['job_id']}"
    deleted = client.delete(url)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["message"] == "任务及相关文件删除成功"
    assert deleted.json()["details"]["folders_deleted"] == 2
    assert client.get(url).status_code == 404
    assert client.get("/stats").status_code == 200


# --- 003 MRMS --------------------------------------------------------------------------------------------
def test_003_train_logs_download_and_updates(client: httpx.Client) -> None:
    dataset_id = mrms.upload_dataset(client, mrms.cancer_frame(), "target")
    project_id = mrms.create_project(client, dataset_id)
    params = client.post("/mrms/param_set", json={"alg_id": "sgd_classifier", "params": {"steps": 4}})
    assert params.text != "error"
    hist_no = mrms.insert_hist(client, project_id, "sgd_classifier", params.text)
    assert mrms.wait_learn(client, hist_no) == "6", mrms.model_info(client, project_id, hist_no)["message"]
    info = mrms.model_info(client, project_id, hist_no)
    assert info["ml_result_json"]["step"] == 4 and info["end_time"] >= info["start_time"]
    statuses = client.get("/mrms/get_histno_status", params={"project_id": project_id}).json()
    assert statuses == [{"learn_hist_no": hist_no, "learn_sttus_cd": "6"}]

    logs = client.get("/mrms/get_learn_logs", params={"id": hist_no}).json()
    assert list(logs) == ["0"] and "step 4:" in logs["0"]
    download = client.get("/mrms/model_download", params={"learn_hist_no": hist_no})
    assert download.status_code == 200
    model = load_model(download.content, download.headers["x-model-sha256"])
    frame = mrms.cancer_frame()
    assert (model.predict(frame.drop(columns="target")) == frame["target"]).mean() > 0.8

    updates = [
        client.post("/mrms/model_alias_update", json={"learn_hist_no": hist_no, "model_alias": "v1"}),
        client.get("/mrms/bookmark_update", params={"bookmarkYN": "Y", "learn_hist_no": hist_no}),
        client.get("/mrms/update_model_select", params={"learn_hist_no": hist_no, "project_id": project_id}),
        client.post("/mrms/update_projects_status", data={"project_id": project_id, "status": "4"}),
    ]
    assert [u.text for u in updates] == ["1"] * 4
    info = mrms.model_info(client, project_id, hist_no)
    assert (info["model_alias"], info["bookmark_yn"], info["select_yn"]) == ("v1", "Y", "Y")
    assert client.get("/mrms/get_proj_sttus_cd", params={"project_id": project_id}).text == "4"
    [project] = [p for p in client.get("/mrms/get_projects_info").json() if p["project_id"] == project_id]
    assert project["status"] == "4" and project["start_time"] == "20211014170532"


def test_003_external_worker_updates(client: httpx.Client) -> None:
    """The document's worker-side calls: status, eps, result, resources and times of a history."""
    dataset_id = mrms.upload_dataset(client, mrms.cancer_frame().head(60), "target")
    project_id = mrms.create_project(client, dataset_id)
    hist_no = mrms.insert_hist(client, project_id, "sgd_classifier", external="Y")
    calls = [
        ("/mrms/status_update/learn", {"hist_no": hist_no, "task_idx": "1", "sttus_cd": "5", "message": "-"}),
        ("/mrms/eps_update", {"eps": "1520.5", "hist_no": hist_no}),
        ("/mrms/learn_result_update", {"result": json.dumps({"loss": 0.3, "step": 1}), "hist_no": hist_no}),
        ("/mrms/model_resources", {"learn_hist_no": hist_no, "cpu": {"percent": "37.5"}}),
        ("/mrms/time_update", {"type": "start", "curr_time": "20211014170532", "hist_no": hist_no}),
        ("/mrms/time_update", {"type": "end", "curr_time": "20211015170532", "hist_no": hist_no}),
        ("/mrms/status_update/learn", {"hist_no": hist_no, "task_idx": "1", "sttus_cd": "6", "message": "-"}),
    ]
    for path, body in calls:
        assert client.post(path, json=body).text == "1", (path, body)
    assert client.post("/mrms/get_sttus_cd", json={"hist_no": hist_no}).text == "6"
    info = mrms.model_info(client, project_id, hist_no)
    assert (info["start_time"], info["end_time"]) == ("20211014170532", "20211015170532")
    assert info["eps"] == 1520.5 and info["cpu_percent"] == 37.5 and info["trainer"] == "external"


# --- 004 DataFlow ----------------------------------------------------------------------------------------
def _pipeline(source: Path, target: Path) -> dict[str, Any]:
    return {
        "source": {"type": "csv", "path": str(source)},
        "transforms": [{"type": "filter", "expr": "amount > 10"}],
        "target": {"type": "csv", "path": str(target)},
    }


def _run(client: httpx.Client, dataflow_id: int) -> dict[str, Any]:
    started = dataflow.execute(client, dataflow_id)
    assert (started["code"], started["message"]) == (200, "数据流执行成功"), started
    final = dataflow.wait_final(client, dataflow_id)
    assert (final["status"], final["progress"], final["error_message"]) == ("completed", 100, None), final
    assert final["execution_id"] == started["data"]["execution_id"]
    return final


def _lineage(client: httpx.Client, dataflow_id: int, direction: str) -> dict[str, Any]:
    answer = client.get(
        f"{dataflow.BASE}/get-dataflow-lineage/{dataflow_id}", params={"direction": direction}
    )
    assert answer.status_code == 200 and answer.json()["code"] == 200, answer.text
    return answer.json()["data"]


def _flows(lineage: dict[str, Any]) -> dict[int, int]:
    return {n["dataflow_id"]: n["depth"] for n in lineage["nodes"] if n["type"] == "DataFlow"}


def test_004_create_update_execute_status_logs_lineage_delete(client: httpx.Client, tmp_path: Path) -> None:
    base = dataflow.BASE
    dataflow.SALES.to_csv(tmp_path / "in.csv", index=False)
    tag = client.post(f"{base}/add-tag", json={"name": dataflow.unique("ETL")}).json()
    assert tag["code"] == 200, tag
    clean = dataflow.add(
        client, config=_pipeline(tmp_path / "in.csv", tmp_path / "mid.csv"), tag_id=tag["data"]["id"]
    )
    assert clean["status"] == "inactive" and len(clean["created_at"]) == 19

    updated = client.put(
        f"{base}/update-dataflow/{clean['id']}",
        json={"description": "更新后的数据流描述", "status": "active"},
    ).json()
    assert (updated["code"], updated["message"]) == (200, "数据流更新成功"), updated
    detail = client.get(f"{base}/get-dataflow/{clean['id']}").json()["data"]
    assert (detail["description"], detail["status"]) == ("更新后的数据流描述", "active")
    assert detail["tags"] == [tag["data"]] and detail["updated_at"] >= detail["created_at"]
    listed = client.get(f"{base}/get-dataflows-list", params={"search": clean["name"]}).json()["data"]["list"]
    assert [r["id"] for r in listed] == [clean["id"]]

    final = _run(client, clean["id"])
    assert final["completed_at"] >= final["started_at"]
    assert pd.read_csv(tmp_path / "mid.csv")["id"].tolist() == [2, 3, 5, 6]
    lines = dataflow.logs(client, clean["id"])
    assert any("wrote 4 rows" in line["message"] for line in lines), lines

    report = dataflow.add(client, config=_pipeline(tmp_path / "mid.csv", tmp_path / "out.csv"))
    _run(client, report["id"])
    upstream = _lineage(client, report["id"], "upstream")
    assert _flows(upstream) == {report["id"]: 0, clean["id"]: 1}, upstream
    datasets = [n["uri"] for n in upstream["nodes"] if n["type"] == "Dataset"]
    assert len(datasets) == 1 and str(tmp_path / "mid.csv") in datasets[0], upstream
    assert _flows(_lineage(client, clean["id"], "downstream")) == {clean["id"]: 0, report["id"]: 1}

    deleted = client.delete(f"{base}/delete-dataflow/{report['id']}").json()
    assert deleted == {"code": 200, "message": "数据流删除成功", "data": {}}
    for path in ("get-dataflow", "get-dataflow-status", "get-dataflow-logs", "get-dataflow-lineage"):
        gone = client.get(f"{base}/{path}/{report['id']}")
        assert gone.status_code == 404 and gone.json()["code"] == 404, (path, gone.text)
    assert _flows(_lineage(client, clean["id"], "downstream")) == {clean["id"]: 0}


def test_004_a_dataflow_created_after_a_delete_has_no_history(client: httpx.Client, tmp_path: Path) -> None:
    """Delete the newest dataflow after it ran, create another: a new id, no execution, no lineage."""
    base = dataflow.BASE
    dataflow.SALES.to_csv(tmp_path / "in.csv", index=False)
    writer = dataflow.add(client, config=_pipeline(tmp_path / "in.csv", tmp_path / "mid.csv"))
    reader = dataflow.add(client, config=_pipeline(tmp_path / "mid.csv", tmp_path / "out.csv"))
    _run(client, writer["id"])
    _run(client, reader["id"])
    assert client.delete(f"{base}/delete-dataflow/{reader['id']}").json()["code"] == 200

    new = dataflow.add(client)
    problems = []  # every symptom, so a failure names them all
    if new["id"] == reader["id"]:
        problems.append(f"the deleted dataflow's id {reader['id']} was given to the new one")
    for path in ("get-dataflow-status", "get-dataflow-logs"):
        answer = client.get(f"{base}/{path}/{new['id']}")
        body = answer.json()
        if answer.status_code != 404 or body["code"] != 404 or "尚未执行" not in body["message"]:
            problems.append(
                f"{path} of the never-executed new dataflow answered {answer.status_code} {str(body)[:300]}"
            )
    for direction in ("upstream", "downstream"):
        flows = _flows(_lineage(client, new["id"], direction))
        if flows != {new["id"]: 0}:
            problems.append(f"{direction} lineage of the new dataflow is {flows}, not only itself")
    assert not problems, "\n".join(problems)


# --- ids beyond what the columns hold --------------------------------------------------------------------
HUGE = "99999999999999999999999999"  # beyond 64 bits: SQLite's driver raises OverflowError on it


def test_004_an_id_beyond_64_bits_is_not_found(default_stack: StackInfo) -> None:
    base = dataflow.BASE
    calls = [
        ("GET", f"{base}/get-dataflow/{HUGE}", None),
        ("GET", f"{base}/get-dataflow-status/{HUGE}", None),
        ("GET", f"{base}/get-dataflow-logs/{HUGE}", None),
        ("GET", f"{base}/get-dataflow-lineage/{HUGE}", None),
        ("POST", f"{base}/execute-dataflow/{HUGE}", {"params": {}}),
        ("PUT", f"{base}/update-dataflow/{HUGE}", {"status": "active"}),
        ("DELETE", f"{base}/delete-dataflow/{HUGE}", None),
        ("POST", f"{base}/add-dataflow", {"name": "x", "description": "y", "tag_id": int(HUGE)}),
    ]
    problems = []
    for method, path, body in calls:
        with httpx.Client(base_url=default_stack.bridge_url, timeout=60) as fresh:  # a drop spares the rest
            try:
                answer = fresh.request(method, path, json=body)
            except httpx.TransportError as exc:
                problems.append(f"{method} {path}: connection dropped ({type(exc).__name__})")
                continue
        if answer.status_code not in {400, 404} or answer.json().get("code") != answer.status_code:
            problems.append(f"{method} {path}: {answer.status_code} {answer.text[:120]}")
    assert not problems, "\n".join(problems)


def test_001_a_task_id_beyond_64_bits_is_not_found(client: httpx.Client) -> None:
    headers = {"Authorization": DEV_TOKEN}
    calls = [
        client.get("/api/algorithm/task/get", params={"taskId": HUGE}, headers=headers),
        client.post("/api/algorithm/task/cancel", params={"taskId": HUGE}, headers=headers),
    ]
    answers = [(c.request.url.path, c.status_code, c.text[:120]) for c in calls]
    assert all(status in {400, 404} for _p, status, _t in answers), answers
