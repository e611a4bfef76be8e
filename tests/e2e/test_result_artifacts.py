"""Every job type's result in the Prefect UI: after one job of each type, the Prefect API lists its result
artifacts under the README's keys, with numbers equal to what the job's legacy API and result.json give;
the runs are named after what they are; and a finished forecast's page in Prefect's own UI (headless
Chromium) shows the backtest table and the chart.

All five jobs start together (module fixture `jobs`), so the module costs about as long as the slowest.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

from api_bridge.gateway import JobState, get_gateway
from storage.dataflow.graph import get_graph
from storage.filesystems import get_storage
from tasks import result_artifacts as ra
from tasks.mrms.artifacts import STEP_COLUMNS
from tests.e2e.dataflow.test_dataflow_api import SALES
from tests.e2e.dataflow.test_dataflow_api import add as add_dataflow
from tests.e2e.dataflow.test_dataflow_api import execute as execute_dataflow
from tests.e2e.gasflux.test_gasflux_api import CONFIG_YAML
from tests.e2e.gasflux.test_gasflux_api import _upload as upload_gasflux
from tests.e2e.mrms.test_mrms_api import cancer_frame, create_project, insert_hist, upload_dataset
from tests.e2e.offline.test_offline_api import SMALL_CSV, ceph, flow_run_id
from tests.e2e.offline.test_offline_api import submit as submit_offline
from tests.e2e.traffic.test_traffic_api import start as start_traffic
from tests.e2e.traffic.test_traffic_api import upload as upload_traffic
from tests.support.browser import chromium
from tests.support.plume import PlumeFlight, simulate
from tests.support.services import API_TOKEN, ServicesInfo, shared_services
from tests.support.stack import StackInfo
from tests.support.traffic import traffic_csv

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def services() -> ServicesInfo:
    info = shared_services()
    if info is None:
        pytest.fail("the S3/SMTP test services were not started by the pytest controller")
    return info


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium (tests/support/browser.py)."""
    yield from chromium()


@pytest.fixture(scope="module")
def jobs(
    stack: StackInfo, services: ServicesInfo, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One job of each type, submitted at once through the legacy APIs; values are what each needs."""
    folder = tmp_path_factory.mktemp("artifacts")
    out: dict[str, Any] = {}
    with httpx.Client(base_url=stack.bridge_url, timeout=60) as client:
        upload_id = upload_traffic(client, traffic_csv(days=21, sensors=2))["work_id"]
        out["traffic"] = start_traffic(client, upload_id)["work_id"]

        data = folder / "artifact_flight.xlsx"
        simulate(PlumeFlight(seed=1, n_transects=8)).frame.to_excel(data, index=False, engine="openpyxl")
        (folder / "config.yaml").write_text(CONFIG_YAML)
        out["gasflux"] = upload_gasflux(client, data, folder / "config.yaml").json()["job_id"]

        params = client.post(
            "/mrms/param_set", json={"alg_id": "sgd_classifier", "params": {"steps": 5, "alpha": 0.001}}
        ).text
        project_id = create_project(client, upload_dataset(client, cancer_frame(), "target"))
        out["mrms"] = insert_hist(client, project_id, "sgd_classifier", params)

        SALES.to_csv(folder / "sales.csv", index=False)
        config = {
            "source": {"type": "csv", "path": str(folder / "sales.csv")},
            "transforms": [{"type": "filter", "expr": "amount > 10"}],
            "target": {"type": "csv", "path": f"file://{folder / 'big_sales.csv'}"},
        }
        flow = add_dataflow(client, config=config)
        execute_dataflow(client, flow["id"])
        out["dataflow"] = {"id": flow["id"], "name": flow["name"], "target": folder / "big_sales.csv"}

        bucket = f"e2e-{uuid.uuid4().hex[:12]}"
        s3 = services.s3_client()
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="input/flow.csv", Body=SMALL_CSV)
        client.headers["Authorization"] = API_TOKEN
        answer = submit_offline(
            client,
            ceph(services, "inputPath", f"{bucket}#input/flow.csv"),
            ceph(services, "outputPath", f"{bucket}#out"),
            "owner@example.com",
            params={"horizon": 12},
        )
        assert answer.status_code == 200, answer.text
        out["offline"] = {"task_id": answer.json()["taskId"], "bucket": bucket}
    return out


@pytest.fixture(scope="module")
def prefect(stack: StackInfo) -> Iterator[SyncPrefectClient]:
    with SyncPrefectClient(stack.prefect_api_url) as client:
        yield client


def _finished(run_id: Any, timeout: float = 240) -> None:
    """Wait for the flow run's final state (artifacts are created before the run completes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = get_gateway().status(run_id, fresh=True)
        if status.state.is_final:
            assert status.state is JobState.COMPLETED, status
            return
        time.sleep(0.3)
    raise AssertionError(f"flow run {run_id} not final after {timeout} s")


def _artifacts(client: SyncPrefectClient, run_id: Any, keys: list[str]) -> dict[str, Any]:
    """The run's artifacts under `keys` (read with a key filter), one per key."""
    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=keys), flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])
        )
    )
    by_key = {a.key: a for a in found}
    if sorted(by_key) != sorted(keys):  # say why: publish() logs a warning when it skips them
        warnings = [line.message for line in get_gateway().logs(run_id, limit=500) if line.level != "INFO"]
        raise AssertionError(f"artifacts {sorted(by_key)} != {sorted(keys)}; run warnings: {warnings}")
    assert len(found) == len(keys), "one artifact per key and run"
    return by_key


def _table(artifact: Any) -> list[dict[str, Any]]:
    assert artifact.type == "table"
    return json.loads(artifact.data)


def _run_name(run_id: Any) -> str:
    return get_gateway().status(run_id, fresh=True).flow_run_name or ""


def test_traffic_forecast_artifacts_match_the_result(
    jobs: dict[str, Any], prefect: SyncPrefectClient, bridge: httpx.Client, stack: StackInfo
) -> None:
    work_id = jobs["traffic"]
    run_id = get_gateway().find("000", work_id).flow_run_id
    _finished(run_id)
    found = _artifacts(prefect, run_id, list(ra.KEYS["traffic-forecast"]))
    result = get_storage().read_summary(str(run_id))
    assert result is not None
    rows = _table(found["traffic-forecast-backtest"])
    assert [r["series"] for r in rows] == ["road_1", "road_2"]
    for row in rows:
        metrics = result["metrics"][row["series"]]
        assert (row["method"], row["mase"], row["wape"], row["mae"]) == (
            metrics["method"], metrics["mase"], metrics["wape"], metrics["mae"],
        )  # fmt: skip
        assert row["filled_share"] == result["input"]["filled_share"][row["series"]]
    summary = found["traffic-forecast-summary"].data
    assert "24 steps (1 day" in summary and "80%" in summary
    assert f"{stack.bridge_url}/static/download/{work_id}.csv" in summary

    # the links are the legacy downloads and give exactly the files get_download_resu gives
    link = re.search(r"\((http[^)]+)\)", found["traffic-forecast-file"].data)
    assert link and link.group(1) == f"{stack.bridge_url}/static/download/{work_id}.csv"
    via_link = httpx.get(link.group(1), timeout=30)
    assert via_link.status_code == 200
    assert via_link.content == bridge.post("/get_download_resu", data={"work_id": work_id}).content
    bounds = re.search(r"\((http[^)]+)\)", found["traffic-forecast-bounds-file"].data)
    assert bounds and pd.read_csv(io.BytesIO(httpx.get(bounds.group(1)).content)).shape == (24, 5)
    chart = found["traffic-forecast-chart"].data
    assert chart.count("data:image/svg+xml;base64,") == 2  # one chart per series
    assert _run_name(run_id) == f"traffic-{work_id}"


def test_gasflux_artifacts_match_the_task(
    jobs: dict[str, Any], prefect: SyncPrefectClient, bridge: httpx.Client
) -> None:
    job_id = jobs["gasflux"]
    run_id = get_gateway().find("gasflux", job_id).flow_run_id
    _finished(run_id)
    task = bridge.get(f"/task/{job_id}").json()
    gases = ["ch4", "co2"]
    keys = [k for k in ra.KEYS["gasflux"] if "<gas>" not in k] + [f"gasflux-report-{g}" for g in gases]
    found = _artifacts(prefect, run_id, keys)
    result = get_storage().read_summary(str(run_id))
    assert result is not None
    rows = _table(found["gasflux-emission-rates"])
    assert [r["gas"] for r in rows] == gases
    for row in rows:
        assert row["emission_rate_kg_h"] == result["emission_rates_kg_h"][row["gas"]]
        assert row["uncertainty_kg_h"] == result["uncertainty_kg_h"][row["gas"]]
        assert row["uncertainty_kriging_kg_h"] > 0
    assert "### Wind" in found["gasflux-summary"].data and "### Curtain" in found["gasflux-summary"].data
    # every link is the document's /download URL of a file GET /task lists, and it serves that file
    listed = {f["download_url"] for f in task["results"]} if "results" in task else None
    for key in ("gasflux-report-ch4", "gasflux-data-csv", "gasflux-output-json", "gasflux-config-yaml"):
        url = re.search(r"\((http[^)]+)\)", found[key].data)
        assert url, found[key].data
        path = "/" + url.group(1).split("/", 3)[3]
        if listed is not None:
            assert path in listed
        assert httpx.get(url.group(1), timeout=30).status_code == 200
    assert _run_name(run_id) == f"gasflux-artifact_flight.xlsx-{job_id}"


def test_mrms_training_artifacts_match_the_logs_and_model(
    jobs: dict[str, Any], prefect: SyncPrefectClient, bridge: httpx.Client
) -> None:
    from storage.mrms import repository as mrms_records

    hist_no = jobs["mrms"]
    run_id = mrms_records.learn_hist(hist_no)["flow_run_id"]
    assert run_id
    _finished(run_id)
    found = _artifacts(prefect, run_id, list(ra.KEYS["mrms-training"]))
    rows = _table(found["mrms-training-steps"])
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert set(rows[0]) == set(STEP_COLUMNS)
    # the same numbers as the legacy log lines ("step 3: loss=0.1234 …") and the model record
    log = bridge.get("/mrms/get_learn_logs", params={"id": hist_no}).json()["0"]
    for row in rows:
        line = re.search(rf"step {row['step']}: loss=([\d.]+) accuracy=([\d.]+) val_loss=([\d.]+)", log)
        assert line, log
        assert [float(v) for v in line.groups()] == [
            round(row["loss"], 4), round(row["accuracy"], 4), round(row["val_loss"], 4),
        ]  # fmt: skip
    project_id = bridge.get("/mrms/get_project_id", params={"hist_no": hist_no}).text
    [info] = bridge.get(
        "/mrms/get_models_info", params={"project_id": project_id, "learn_hist_no": hist_no}
    ).json()
    assert rows[-1]["val_accuracy"] == info["ml_result_json"]["val_accuracy"]
    best = min(rows, key=lambda r: r["val_loss"])
    assert f"| best step | {best['step']} (" in found["mrms-training-summary"].data
    assert "ran all 5 steps" in found["mrms-training-summary"].data
    link = re.search(r"\((http[^)]+)\)", found["mrms-model"].data)
    assert link
    model = httpx.get(link.group(1), timeout=30)
    assert model.status_code == 200 and model.headers["x-model-format"] == "skops"
    assert _run_name(run_id) == f"learn-sgd_classifier-{hist_no}"


def test_dataflow_artifacts_match_the_rows_and_lineage(
    jobs: dict[str, Any], prefect: SyncPrefectClient, bridge: httpx.Client
) -> None:
    from tests.e2e.dataflow.test_dataflow_api import _flow_run_id, wait_final

    flow = jobs["dataflow"]
    assert wait_final(bridge, flow["id"])["status"] == "completed"
    run_id = _flow_run_id(flow["id"])
    _finished(run_id)
    found = _artifacts(prefect, run_id, list(ra.KEYS["dataflow-run"]))
    written = len(pd.read_csv(flow["target"]))
    assert _table(found["dataflow-steps"]) == [
        {"step": "source", "kind": "csv", "rows_in": None, "rows_out": len(SALES)},
        {"step": "transform_filter", "kind": "filter", "rows_in": len(SALES), "rows_out": written},
        {"step": "target", "kind": "csv", "rows_in": written, "rows_out": written},
    ]
    edges = _table(found["dataflow-lineage"])
    node = f"dataflow:{flow['id']}"
    assert [(e["from"], e["edge"]) for e in edges] == [
        (f"run:{run_id}", "OF"),
        (node, "READS"),
        (node, "WRITES"),
    ]
    assert edges[2]["to"].endswith("big_sales.csv") and edges[2]["to"] in found["dataflow-summary"].data
    # the graph store holds the same run with the same row counts
    recorded = get_graph().run(str(run_id))
    assert recorded and (recorded["rows_read"], recorded["rows_written"]) == (len(SALES), written)
    assert _run_name(run_id).startswith(f"dataflow-{flow['name']}-exec_{flow['id']}_")


def test_offline_artifact_shows_locations_and_the_inner_summary(
    jobs: dict[str, Any],
    prefect: SyncPrefectClient,
    services: ServicesInfo,
) -> None:
    task_id = jobs["offline"]["task_id"]
    run_id = flow_run_id(task_id)
    _finished(run_id)
    found = _artifacts(prefect, run_id, list(ra.KEYS["offline-task"]))
    text = found["offline-task-summary"].data
    bucket = jobs["offline"]["bucket"]
    assert f"CEPH://{services.s3_host}:{services.s3_port}/{bucket}#input/flow.csv" in text
    assert f"out/{task_id}" in text and "forecast.csv" in text
    assert '"horizon": 12' in text  # the inner forecast's own result.json
    assert services.access_key not in text and services.secret_key not in text
    assert _run_name(run_id) == f"offline-traffic_forecast-flow.csv-{task_id}"


def test_prefect_ui_shows_the_forecast_table_and_chart(
    jobs: dict[str, Any], stack: StackInfo, browser: Any
) -> None:
    """Prefect's own UI (served by the stack's Prefect server): the run's Artifacts tab lists the result,
    the backtest table shows each series with its chosen method, the chart's images decode."""
    run_id = get_gateway().find("000", jobs["traffic"]).flow_run_id
    _finished(run_id)
    result = get_storage().read_summary(str(run_id))
    assert result is not None
    ui = stack.prefect_api_url.removesuffix("/api")
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()

    def artifacts_tab() -> None:
        page.goto(f"{ui}/runs/flow-run/{run_id}", wait_until="networkidle")
        page.get_by_text("Artifacts", exact=True).last.click()

    artifacts_tab()
    for key in ra.KEYS["traffic-forecast"]:
        page.get_by_text(key, exact=True).first.wait_for(timeout=30_000)

    page.get_by_text("traffic-forecast-backtest", exact=True).first.click()
    page.wait_for_selector("table th", timeout=30_000)
    headers = page.eval_on_selector_all("table th", "ths => ths.map(t => t.textContent.trim())")
    assert headers[:4] == ["series", "method", "mase", "wape"], headers
    rows = page.eval_on_selector_all(
        "table tbody tr", "trs => trs.map(r => [...r.cells].map(c => c.textContent.trim()))"
    )
    assert [r[:2] for r in rows] == [[s, result["metrics"][s]["method"]] for s in ("road_1", "road_2")], rows

    artifacts_tab()
    page.get_by_text("traffic-forecast-chart", exact=True).first.click()
    page.wait_for_function(
        "[...document.images].filter(i => i.src.startsWith('data:image/svg+xml') && i.naturalWidth > 0)"
        ".length >= 2",
        timeout=30_000,
    )
