"""The 003 MRMS endpoints over real HTTP against the real stack (Prefect server, runner, bridge),
called as the document's clients call them: JSON or form bodies, query strings, plain-text answers."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from tasks.mrms.training import load_model
from tests.support.polling import poll
from tests.support.stack import StackInfo

pytestmark = pytest.mark.e2e
DONE_LEARN = {"6", "7"}
DONE_PROJECT = {"7", "8"}


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def cancer_frame() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


def upload_dataset(
    client: httpx.Client, frame: pd.DataFrame, target: str, *, parquet: bool = False, **extra: str
) -> str:
    buffer = io.BytesIO()
    if parquet:
        frame.to_parquet(buffer, index=False)
        name = "data.parquet"
    else:
        frame.to_csv(buffer, index=False)
        name = "data.csv"
    response = client.post(
        "/mrms/dataset_upload", files={"file": (name, buffer.getvalue())}, data={"target": target, **extra}
    )
    assert response.status_code == 200
    assert response.text != "error", "dataset upload refused"
    return response.text


def create_project(client: httpx.Client, dataset_id: str, *, status: str = "3", **extra: Any) -> str:
    project_id = uid("proj")
    body = {
        "project_id": project_id,
        "project_purpose_cd": "1",
        "dataset_id": dataset_id,
        "status": status,
        "start_time": "20211014170532",
        "modeling_mode": "1",
        "early_stop_param": json.dumps({"early_type": "0"}),
        "tag": "a,b",
        **extra,
    }
    assert client.post("/mrms/project_create", json=body).text == "1"
    return project_id


def insert_hist(client: httpx.Client, project_id: str, alg_id: str, param_id: str = "", **extra: str) -> str:
    hist_no = uid("hist")
    body = {
        "learn_hist_no": hist_no,
        "param_id": param_id,
        "alg_anal_id": "aa1",
        "alg_id": alg_id,
        "dp_analysis_id": "dp1",
        "project_id": project_id,
        "learn_sttus_cd": "5",
        "start_time": "20211014170532",
        **extra,
    }
    answer = client.post("/mrms/insert_learn_hist", json=body)
    assert answer.text == "1", answer.text
    return hist_no


def wait_learn(client: httpx.Client, hist_no: str, timeout: float = 150) -> str:
    return poll(
        lambda: client.post("/mrms/get_sttus_cd", json={"hist_no": hist_no}).text,
        lambda status: status in DONE_LEARN,
        timeout=timeout,
        what=f"learning history {hist_no}",
    )


def wait_project(client: httpx.Client, project_id: str, timeout: float = 120) -> str:
    return poll(
        lambda: client.get("/mrms/get_proj_sttus_cd", params={"project_id": project_id}).text,
        lambda status: status in DONE_PROJECT,
        timeout=timeout,
        what=f"project {project_id}",
    )


def model_info(client: httpx.Client, project_id: str, hist_no: str) -> dict[str, Any]:
    answer = client.get("/mrms/get_models_info", params={"project_id": project_id, "learn_hist_no": hist_no})
    [info] = answer.json()
    return info


@pytest.fixture(scope="module")
def cancer_dataset(stack: StackInfo) -> str:
    with httpx.Client(base_url=stack.bridge_url, timeout=60) as client:
        return upload_dataset(client, cancer_frame(), "target")


@pytest.fixture(scope="module")
def params_8_steps(stack: StackInfo) -> str:
    with httpx.Client(base_url=stack.bridge_url, timeout=60) as client:
        answer = client.post(
            "/mrms/param_set",
            json={"alg_id": "sgd_classifier", "params": {"steps": 8, "alpha": 0.001}},
        )
        assert answer.text != "error"
        return answer.text


# --- simple endpoints -------------------------------------------------------------------------------
def test_get_uuid_returns_a_fresh_uuid(bridge: httpx.Client) -> None:
    first, second = bridge.get("/mrms/get_uuid").text, bridge.get("/mrms/get_uuid").text
    assert uuid.UUID(first) and first != second


def test_project_create_and_read_back(bridge: httpx.Client, cancer_dataset: str) -> None:
    project_id = create_project(bridge, cancer_dataset)
    assert bridge.get("/mrms/get_proj_sttus_cd", params={"project_id": project_id}).text == "3"
    info = bridge.get("/mrms/get_projects_info").json()
    [mine] = [p for p in info if p["project_id"] == project_id]
    assert mine["project_purpose_cd"] == "1" and mine["start_time"] == "20211014170532"
    assert mine["status"] == "3" and mine["end_time"] == "" and mine["tag"] == "a,b"
    # form bodies work as well as JSON
    form = bridge.post("/mrms/update_projects_status", data={"project_id": project_id, "status": "4"})
    assert form.text == "1"
    assert bridge.get("/mrms/get_proj_sttus_cd", params={"project_id": project_id}).text == "4"


@pytest.mark.parametrize(
    "change",
    [
        {"project_id": ""},
        {"project_purpose_cd": "2"},
        {"status": "12"},
        {"status": ""},
        {"start_time": "2021-10-14"},
        {"modeling_mode": "3"},
        {"early_stop_param": "{not json"},
        {"early_stop_param": json.dumps({"early_type": "1", "early_key": "f1", "early_value": 0.1})},
        {"early_stop_param": json.dumps({"early_type": "1", "early_key": "loss", "early_value": "low"})},
    ],
)
def test_project_create_refuses_bad_fields(bridge: httpx.Client, change: dict[str, str]) -> None:
    body = {"project_id": uid("bad"), "project_purpose_cd": "1", "dataset_id": "x", "status": "1", **change}
    answer = bridge.post("/mrms/project_create", json=body)
    assert answer.status_code == 200 and answer.text == "error"


def test_unknown_ids_wrong_types_and_methods_answer_error(bridge: httpx.Client, cancer_dataset: str) -> None:
    project_id = create_project(bridge, cancer_dataset)
    hist_no = insert_hist(bridge, project_id, "not-in-registry")
    gets = [
        ("/mrms/get_proj_sttus_cd", {"project_id": "nope"}),
        ("/mrms/get_proj_sttus_cd", {}),
        ("/mrms/get_learn_logs", {"id": "nope"}),
        ("/mrms/get_histno_status", {"project_id": "nope"}),
        ("/mrms/get_models_info", {"project_id": "nope"}),
        ("/mrms/get_models_info", {"project_id": project_id, "learn_hist_no": "nope"}),
        ("/mrms/get_project_id", {"hist_no": "nope"}),
        ("/mrms/bookmark_update", {"bookmarkYN": "Y", "learn_hist_no": "nope"}),
        ("/mrms/bookmark_update", {"bookmarkYN": "maybe", "learn_hist_no": hist_no}),
        ("/mrms/model_download", {"learn_hist_no": "nope"}),
        ("/mrms/model_download", {"learn_hist_no": hist_no}),  # external: no model here
        ("/mrms/update_model_select", {"learn_hist_no": hist_no, "project_id": "other"}),
        ("/mrms/update_model_select", {"learn_hist_no": "nope", "project_id": project_id}),
    ]
    for path, params in gets:
        answer = bridge.get(path, params=params)
        assert (answer.status_code, answer.text) == (200, "error"), (path, params)
    posts = [
        ("/mrms/project_create", {"project_id": project_id, "project_purpose_cd": "1", "status": "1"}),
        ("/mrms/get_sttus_cd", {"hist_no": "nope"}),
        ("/mrms/status_update/learn", {"hist_no": "nope", "task_idx": "0", "sttus_cd": "5", "message": "-"}),
        ("/mrms/status_update/learn", {"hist_no": hist_no, "task_idx": "0", "sttus_cd": "9", "message": "-"}),
        ("/mrms/eps_update", {"eps": "fast", "hist_no": hist_no}),
        ("/mrms/eps_update", {"eps": "12", "hist_no": "nope"}),
        ("/mrms/eps_update", {"hist_no": hist_no}),
        ("/mrms/learn_result_update", {"result": "{bad", "hist_no": hist_no}),
        ("/mrms/learn_result_update", {"result": json.dumps({"loss": "x"}), "hist_no": hist_no}),
        ("/mrms/learn_result_update", {"result": json.dumps({"loss": 0.1}), "hist_no": "nope"}),
        ("/mrms/time_update", {"type": "middle", "curr_time": "20211014170532", "hist_no": hist_no}),
        ("/mrms/time_update", {"type": "start", "curr_time": "yesterday", "hist_no": hist_no}),
        ("/mrms/update_projects_status", {"project_id": "nope", "status": "3"}),
        ("/mrms/update_projects_status", {"project_id": project_id, "status": "0"}),
        ("/mrms/update_projects_status", {"project_id": "nope", "status": "5"}),
        ("/mrms/insert_learn_hist", {"learn_hist_no": hist_no, "project_id": project_id, "alg_id": "x"}),
        ("/mrms/insert_learn_hist", {"learn_hist_no": uid("h"), "project_id": "nope", "alg_id": "x"}),
        (
            "/mrms/insert_learn_hist",
            {"learn_hist_no": uid("h"), "project_id": project_id, "alg_id": ""} | {"learn_sttus_cd": "1"},
        ),
        (
            "/mrms/insert_learn_hist",
            {
                "learn_hist_no": uid("h"),
                "project_id": project_id,
                "alg_id": "sgd_classifier",
                "param_id": "no-such-set",
            },
        ),
        (
            "/mrms/insert_learn_hist",
            {"learn_hist_no": uid("h"), "project_id": project_id, "alg_id": "sgd_regressor"},
        ),  # a regressor for a classification
        (
            "/mrms/insert_learn_hist",
            {
                "learn_hist_no": uid("h"),
                "project_id": project_id,
                "alg_id": "sgd_classifier",
                "param_id": '{"bogus_param": 1}',
            },
        ),
        ("/mrms/model_resources", {"learn_hist_no": hist_no, "cpu": {"percent": "lots"}}),
        ("/mrms/model_resources", {"learn_hist_no": "nope", "cpu": {"percent": "5"}}),
        ("/mrms/model_alias_update", {"learn_hist_no": "nope", "model_alias": "a"}),
        ("/mrms/model_alias_update", {"learn_hist_no": hist_no}),
        ("/mrms/param_set", {"alg_id": "sgd_classifier", "params": {"no_such": 1}}),
        ("/mrms/param_set", {"params": "[1, 2]"}),
    ]
    for path, body in posts:
        answer = bridge.post(path, json=body)
        assert (answer.status_code, answer.text) == (200, "error"), (path, body)
    assert (
        bridge.post(
            "/mrms/get_sttus_cd", content=b"{not json", headers={"content-type": "application/json"}
        ).text
        == "error"
    )
    assert bridge.post("/mrms/get_uuid").text == "error"  # documented as GET
    assert bridge.get("/mrms/project_create").text == "error"  # documented as POST
    assert bridge.post("/mrms/get_sttus_cd", json={"hist_no": hist_no}).text == "5"  # nothing changed it


def test_values_postgresql_cannot_hold_answer_error_without_an_unhandled_error(
    bridge: httpx.Client, stack: StackInfo
) -> None:
    """NUL, a step beyond INTEGER, ids longer than their VARCHAR: PostgreSQL refuses them, and the bridge
    used to let that error through (answered "error" by the envelope, logged as unhandled)."""
    project_id = uid("proj")
    form = {"project_id": project_id, "project_purpose_cd": "1", "status": "3"}
    assert bridge.post("/mrms/project_create", data=form).text == "1"
    hist_no = insert_hist(bridge, project_id, "not-in-registry")
    before = len(unhandled_errors(stack, "/mrms/"))
    posts = [
        ("/mrms/project_create", {**form, "project_id": "p\x00"}),
        ("/mrms/project_create", {**form, "project_id": uid("proj"), "dataset_id": "d" * 65}),
        ("/mrms/get_sttus_cd", {"hist_no": "h\x00"}),
        ("/mrms/learn_result_update", {"hist_no": hist_no, "result": json.dumps({"step": 2**31})}),
        ("/mrms/status_update/learn", {"hist_no": hist_no, "sttus_cd": "6", "task_idx": "9" * 33}),
        ("/mrms/model_alias_update", {"hist_no": hist_no, "model_alias": "a\x00"}),
    ]
    for path, body in posts:
        answer = bridge.post(path, json=body)
        assert (answer.status_code, answer.text) == (200, "error"), (path, body)
    answer = bridge.get("/mrms/get_projects_info", params={"project_id": "p\x00"})
    assert (answer.status_code, answer.text) == (200, "error")
    assert unhandled_errors(stack, "/mrms/")[before:] == []
    assert bridge.post("/mrms/get_sttus_cd", json={"hist_no": hist_no}).text == "5"


def test_dataset_upload_checks_file_and_target(bridge: httpx.Client) -> None:
    frame = cancer_frame().head(50)
    dataset_id = upload_dataset(bridge, frame, "target", parquet=True, dataset_id=uid("pq"))
    assert dataset_id.startswith("pq-")
    csv = frame.to_csv(index=False).encode()
    cases = [
        {"files": {"file": ("d.csv", csv)}, "data": {"target": "no_such_column"}},
        {"files": {"file": ("d.csv", csv)}, "data": {}},
        {"files": {"other": ("d.csv", csv)}, "data": {"target": "target"}},
        {"files": {"file": ("d.txt", csv)}, "data": {"target": "target"}},
        {"files": {"file": ("d.parquet", csv)}, "data": {"target": "target"}},
        {"files": {"file": ("d.csv", csv)}, "data": {"target": "target", "dataset_id": dataset_id}},
        {"files": {"file": ("d.csv", csv)}, "data": {"target": "target", "dataset_id": "../x"}},
    ]
    for case in cases:
        assert bridge.post("/mrms/dataset_upload", **case).text == "error", case


# --- analysis flow ----------------------------------------------------------------------------------
def test_analysis_profiles_the_dataset(bridge: httpx.Client, cancer_dataset: str) -> None:
    project_id = create_project(bridge, cancer_dataset, status="5")
    assert wait_project(bridge, project_id) == "7"
    [info] = [p for p in bridge.get("/mrms/get_projects_info").json() if p["project_id"] == project_id]
    profile = info["data_profile"]
    assert profile["rows"] == 569 and profile["class_balance"]["classes"] == {"1": 357, "0": 212}
    assert profile["column_profiles"]["mean radius"]["kind"] == "numeric"
    assert uuid.UUID(info["data_analysis_id"]) and info["end_time"]


def test_trend_analysis_by_status_update_and_a_failing_analysis(bridge: httpx.Client) -> None:
    frame = load_diabetes(as_frame=True).frame
    dataset_id = upload_dataset(bridge, frame, "target")
    trend = create_project(bridge, dataset_id, project_purpose_cd="10")
    missing = create_project(bridge, "no-such-dataset")
    for project_id in (trend, missing):
        assert (
            bridge.post("/mrms/update_projects_status", json={"project_id": project_id, "status": "5"}).text
            == "1"
        )
    assert wait_project(bridge, trend) == "7"
    assert wait_project(bridge, missing) == "8"
    info = {p["project_id"]: p for p in bridge.get("/mrms/get_projects_info").json()}
    assert info[trend]["data_profile"]["trend"]["direction"] in {"up", "down", "flat"}
    assert "no-such-dataset" in info[missing]["message"]


# --- training flow ----------------------------------------------------------------------------------
def test_training_reaches_090_exports_a_model_and_updates_its_record(
    bridge: httpx.Client, cancer_dataset: str, params_8_steps: str
) -> None:
    project_id = create_project(bridge, cancer_dataset)
    hist_no = insert_hist(bridge, project_id, "sgd_classifier", params_8_steps)
    assert wait_learn(bridge, hist_no) == "6", model_info(bridge, project_id, hist_no)["message"]
    info = model_info(bridge, project_id, hist_no)
    assert info["ml_result_json"]["step"] == 8 and info["ml_result_json"]["val_accuracy"] > 0.9
    assert info["eps"] > 0 and info["cpu_percent"] is not None and info["task_idx"] == "0"
    assert info["trainer"] == "flowbridge" and info["message"] == "-" and info["model_file"]
    assert info["start_time"] and info["end_time"] >= info["start_time"]
    statuses = bridge.get("/mrms/get_histno_status", params={"project_id": project_id}).json()
    assert statuses == [{"learn_hist_no": hist_no, "learn_sttus_cd": "6"}]
    assert bridge.get("/mrms/get_project_id", params={"hist_no": hist_no}).text == project_id

    download = bridge.get("/mrms/model_download", params={"learn_hist_no": hist_no})
    assert download.status_code == 200 and download.headers["x-model-format"] == "skops"
    model = load_model(download.content, download.headers["x-model-sha256"])
    frame = cancer_frame()
    assert (model.predict(frame.drop(columns="target")) == frame["target"]).mean() > 0.9

    # tail first: Prefect's last engine lines may still be arriving, and logs only grow, so every line
    # of an earlier tail is in a later full read (the other order raced the final "Finished" line)
    tail = bridge.get("/mrms/get_learn_logs", params={"id": hist_no, "tail": "true"}).json()
    logs = bridge.get("/mrms/get_learn_logs", params={"id": hist_no}).json()
    assert list(logs) == ["0"] and "step 8:" in logs["0"] and "step 1:" in logs["0"]
    assert len(tail["0"].splitlines()) <= 50 and tail["0"].splitlines()[-1] in logs["0"]

    assert (
        bridge.post("/mrms/model_alias_update", json={"learn_hist_no": hist_no, "model_alias": "v1"}).text
        == "1"
    )
    assert (
        bridge.get("/mrms/bookmark_update", params={"bookmarkYN": "Y", "learn_hist_no": hist_no}).text == "1"
    )
    select = bridge.get(
        "/mrms/update_model_select", params={"learn_hist_no": hist_no, "project_id": project_id}
    )
    assert select.text == "1"
    info = model_info(bridge, project_id, hist_no)
    assert (info["model_alias"], info["bookmark_yn"], info["select_yn"]) == ("v1", "Y", "Y")


def test_early_stopping_stops_at_the_documented_step(bridge: httpx.Client, cancer_dataset: str) -> None:
    rule = {"early_type": "2", "early_key": "val_accuracy", "early_value": 0.5, "minsteps": 3}
    project_id = create_project(bridge, cancer_dataset, early_stop_param=json.dumps(rule))
    hist_no = insert_hist(bridge, project_id, "sgd_classifier", json.dumps({"steps": 10}))
    assert wait_learn(bridge, hist_no) == "6"
    info = model_info(bridge, project_id, hist_no)
    # val_accuracy >= 0.5 holds from step 1, so training ends exactly at minsteps
    assert info["stopped_early"] and info["ml_result_json"]["step"] == 3
    assert info["ml_result_json"]["val_accuracy"] >= 0.5
    from storage.mrms.repository import step_results

    assert [r["step"] for r in step_results(hist_no)] == [1, 2, 3]


def test_two_histories_of_one_project_train_concurrently(
    bridge: httpx.Client, cancer_dataset: str, stack: StackInfo
) -> None:
    from api_bridge.gateway import get_gateway
    from storage.mrms.repository import learn_hist

    project_id = create_project(bridge, cancer_dataset)
    params = json.dumps({"steps": 30, "hidden_layer_sizes": [64]})
    hists = [insert_hist(bridge, project_id, "mlp_classifier", params) for _ in range(2)]
    assert [wait_learn(bridge, h) for h in hists] == ["6", "6"]
    gateway = get_gateway()
    # status 6 is the flow's last step; Prefect records the run's end a moment later
    runs = [
        poll(
            lambda h=h: gateway.status(learn_hist(h)["flow_run_id"], fresh=True),
            lambda status: status.ended is not None,
            timeout=60,
            what=f"Prefect's end of {h}'s run",
        )
        for h in hists
    ]
    assert runs[0].run_id != runs[1].run_id
    # Both runs were in flight at once; when each gets a process is the runner's call (limit 4 here, and
    # under a loaded test run a flow-run subprocess can take longer to start than a run takes).
    assert runs[0].created < runs[1].ended and runs[1].created < runs[0].ended, (
        "runs were not in flight together"
    )
    for hist_no in hists:
        logs = bridge.get("/mrms/get_learn_logs", params={"id": hist_no}).json()["0"]
        assert "step 30:" in logs and logs.count("step 1:") == 1  # each run has only its own log lines


def test_training_failure_records_status_7_with_stack_trace(bridge: httpx.Client) -> None:
    frame = pd.DataFrame({"x": range(40), "y": ["up", "down"] * 20})
    dataset_id = upload_dataset(bridge, frame, "y")
    project_id = create_project(bridge, dataset_id, project_purpose_cd="10")
    hist_no = insert_hist(bridge, project_id, "sgd_regressor", json.dumps({"steps": 2}))
    assert wait_learn(bridge, hist_no) == "7"
    info = model_info(bridge, project_id, hist_no)
    assert "numeric target" in info["message"] and "Traceback" in info["message"]
    assert info["end_time"] and not info["model_file"]
    assert bridge.get("/mrms/model_download", params={"learn_hist_no": hist_no}).text == "error"


def test_a_training_cancelled_in_prefect_ends_at_status_7_with_the_reason(
    bridge: httpx.Client, cancer_dataset: str
) -> None:
    """An operator cancels the run in the Prefect UI: the runner kills it, and the history must not stay
    at 5 (running) forever. The flow's cancellation hook, or failing that the bridge reading the run's
    state from Prefect, closes it."""
    from api_bridge.gateway import JobGateway, JobState
    from storage.mrms import repository as records

    project_id = create_project(bridge, cancer_dataset)
    hist_no = insert_hist(bridge, project_id, "mlp_classifier", json.dumps({"steps": 10000}))
    gateway = JobGateway()
    try:
        deadline = time.monotonic() + 120
        while True:
            run_id = records.learn_hist(hist_no)["flow_run_id"]
            if run_id and gateway.status(run_id, fresh=True).state is JobState.RUNNING:
                break
            assert time.monotonic() < deadline, "the training never started"
            time.sleep(0.5)
        time.sleep(2)  # well inside its 10,000 steps
        gateway.cancel(run_id, "stopped by an operator")
        assert wait_learn(bridge, hist_no, timeout=120) == "7"
        assert gateway.status(run_id, fresh=True).state is JobState.CANCELLED
    finally:
        gateway.close()
    info = model_info(bridge, project_id, hist_no)
    assert info["message"].startswith("training run Cancel"), info["message"]
    assert info["end_time"] and not info["model_file"]


# --- external workers -------------------------------------------------------------------------------
def test_external_worker_reports_exactly_as_before(bridge: httpx.Client, cancer_dataset: str) -> None:
    project_id = create_project(bridge, cancer_dataset)
    flagged = insert_hist(bridge, project_id, "sgd_classifier", external="Y")
    unknown = insert_hist(bridge, project_id, "ALG_0042", param_id="P1")
    for hist_no in (flagged, unknown):
        assert (
            bridge.post(
                "/mrms/status_update/learn",
                json={"hist_no": hist_no, "task_idx": "2", "sttus_cd": "5", "message": "-"},
            ).text
            == "1"
        )
        assert bridge.post("/mrms/eps_update", json={"eps": "1520.5", "hist_no": hist_no}).text == "1"
        result = {"loss": 0.40, "accuracy": 0.88, "val_loss": 0.32, "val_accuracy": 0.91, "step": 1}
        assert (
            bridge.post(
                "/mrms/learn_result_update", json={"result": json.dumps(result), "hist_no": hist_no}
            ).text
            == "1"
        )
        assert (
            bridge.post(  # form body, result as text, no step: the next step
                "/mrms/learn_result_update", data={"result": json.dumps({"loss": 0.3}), "hist_no": hist_no}
            ).text
            == "1"
        )
        assert (
            bridge.post(
                "/mrms/model_resources", json={"learn_hist_no": hist_no, "cpu": {"percent": "37.5"}}
            ).text
            == "1"
        )
        assert bridge.post("/mrms/model_resources", data={"learn_hist_no": hist_no, "cpu": "40"}).text == "1"
        for kind, when in (("start", "20211014170532"), ("end", "20211015170532")):
            assert (
                bridge.post(
                    "/mrms/time_update", json={"type": kind, "curr_time": when, "hist_no": hist_no}
                ).text
                == "1"
            )
        assert (
            bridge.post(
                "/mrms/status_update/learn",
                json={"hist_no": hist_no, "task_idx": "2", "sttus_cd": "6", "message": "-"},
            ).text
            == "1"
        )
        assert bridge.post("/mrms/get_sttus_cd", json={"learn_hist_no": hist_no}).text == "6"
        info = model_info(bridge, project_id, hist_no)
        assert info["trainer"] == "external" and info["task_idx"] == "2" and info["eps"] == 1520.5
        assert info["ml_result_json"] == {"loss": 0.3, "step": 2} and info["cpu_percent"] == 40.0
        assert (info["start_time"], info["end_time"]) == ("20211014170532", "20211015170532")
        assert bridge.get("/mrms/get_learn_logs", params={"id": hist_no, "tail": "true"}).json() == {}
    time.sleep(3)  # a flagged history must not have been trained by a flow meanwhile
    assert model_info(bridge, project_id, flagged)["ml_result_json"]["step"] == 2


# --- the OpenAPI contract, fuzzed --------------------------------------------------------------------
def unhandled_errors(stack: StackInfo, prefix: str) -> list[str]:
    """The bridge's log lines of unhandled errors on paths under `prefix`: 003 answers even those with its
    HTTP 200 "error", so the log is where a server error shows."""
    logs = (Path(stack.data_dir).parent / "logs").glob("*.log")
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    return [line for line in text.splitlines() if re.search(rf"unhandled error on [A-Z]+ {prefix}", line)]


def fuzz(stack: StackInfo, path_regex: str, prefix: str, headers: dict[str, str], examples: int) -> list[str]:
    """Schemathesis over the operations of one API in the live bridge's /openapi.json (fixed seed,
    bounded examples, valid and invalid data): every server error, as a line. Operations answering
    something else than an error are printed, to show the generated calls reach the handlers."""
    import schemathesis
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{stack.bridge_url}/openapi.json").include(path_regex=path_regex)
    failures: list[str] = []
    answers: Counter[tuple[str, int, str]] = Counter()
    before = len(unhandled_errors(stack, prefix))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, f"no operation matches {path_regex}"

    def runner(operation: Any, mode: GenerationMode) -> Any:
        @seed(1003)
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            response = case.call(headers=headers, timeout=60)
            answers[(operation.label, response.status_code, response.text[:8])] += 1
            if response.status_code >= 500:
                failures.append(
                    f"{operation.label} [{mode.value}] -> {response.status_code}: {response.text[:200]!r}"
                    f" (query={case.query!r}, body={str(case.body)[:200]!r})"
                )

        return run

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                runner(operation, mode)()
            except Unsatisfiable:  # nothing to make invalid (an operation without fields)
                assert mode is GenerationMode.NEGATIVE, operation.label
    for (label, status, text), count in sorted(answers.items()):
        print(f"{label}: {status} {text!r} x{count}")
    return failures + unhandled_errors(stack, prefix)[before:]


def test_the_mrms_contract_holds_under_fuzzing(stack: StackInfo) -> None:
    """Every /mrms operation is declared once, with the fields it reads: generated calls reach the
    handlers, and none of them, valid or not, gets a server error."""
    operations = httpx.get(f"{stack.bridge_url}/openapi.json").json()["paths"]
    mrms = {path: item for path, item in operations.items() if path.startswith("/mrms/")}
    assert len(mrms) == 22 and all(len(item) == 1 for item in mrms.values())
    assert fuzz(stack, "^/mrms/", "/mrms/", {}, examples=25) == []
