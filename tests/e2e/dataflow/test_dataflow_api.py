"""The 004 DataFlow endpoints over real HTTP against the real stack (Prefect, runner, bridge, PostgreSQL)."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.support.openlineage import received
from tests.support.polling import poll
from tests.support.services import shared_services
from tests.support.stack import StackInfo, extra_bridge

pytestmark = pytest.mark.e2e
BASE = "/api/data-flow"
SECRET = "pw-never-shown-7f3a"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def add(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": unique("测试数据流"), "description": "e2e", **fields}
    answer = client.post(f"{BASE}/add-dataflow", json=body).json()
    assert answer["code"] == 200, answer
    return answer["data"]


def execute(client: httpx.Client, dataflow_id: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return client.post(f"{BASE}/execute-dataflow/{dataflow_id}", json={"params": params or {}}).json()


def wait_final(client: httpx.Client, dataflow_id: int, timeout: float = 120) -> dict[str, Any]:
    answers: list[dict[str, Any]] = []
    answer = poll(
        lambda: client.get(f"{BASE}/get-dataflow-status/{dataflow_id}").json(),
        lambda a: a["code"] != 200 or a["data"]["status"] in {"completed", "failed"},
        timeout=timeout,
        what=f"dataflow {dataflow_id}",
        interval=0.4,
        seen=answers,
    )
    assert answer["code"] == 200, answer
    seen = [a["data"]["progress"] for a in answers]
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    return answer["data"]


def logs(client: httpx.Client, dataflow_id: int) -> list[dict[str, Any]]:
    answer = client.get(f"{BASE}/get-dataflow-logs/{dataflow_id}", params={"page_size": 200}).json()
    assert answer["code"] == 200, answer
    return answer["data"]["logs"]


def pg_url(stack: StackInfo) -> str:
    """The stack's PostgreSQL database with a password the server ignores (trust auth) but we must hide."""
    return stack.database_url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")


# --- records ---------------------------------------------------------------------------------------------


def test_add_get_list_update_delete(bridge: httpx.Client) -> None:
    tag = bridge.post(f"{BASE}/add-tag", json={"name": unique("ETL")}).json()["data"]
    child_a = add(bridge, name=unique("数据清洗子流程"))
    child_b = add(bridge, name=unique("数据转换子流程"))
    config = {"source": "mysql", "target": "elasticsearch", "batch_size": 1000, "retry_count": 3}
    created = bridge.post(
        f"{BASE}/add-dataflow",
        json={
            "name": "用户数据ETL流程",
            "description": "处理用户数据的ETL流程",
            "config": config,
            "children_ids": [child_b["id"], child_a["id"]],
            "tag_id": tag["id"],
        },
    ).json()
    assert (created["code"], created["message"]) == (200, "数据流创建成功")
    record = created["data"]
    assert record["en_name"].startswith("user_data_etl_process")
    assert (record["status"], record["created_by"]) == ("inactive", "system")
    assert json.loads(record["config"]) == config
    assert len(record["created_at"]) == 19 and record["created_at"][10] == " "

    again = add(bridge, name="用户数据ETL流程")
    assert again["en_name"] != record["en_name"] and again["en_name"].startswith("user_data_etl_process_")
    customer = add(bridge, name="客户数据同步流程", status="active", created_by="admin")
    assert customer["en_name"].startswith("customer_data_sync_process")
    assert (customer["status"], customer["created_by"]) == ("active", "admin")

    detail = bridge.get(f"{BASE}/get-dataflow/{record['id']}").json()["data"]
    assert detail["tags"] == [tag]
    assert detail["children"] == [
        {"id": child_b["id"], "name": child_b["name"]},
        {"id": child_a["id"], "name": child_a["name"]},
    ]
    assert detail["parents"] == []
    parents = bridge.get(f"{BASE}/get-dataflow/{child_a['id']}").json()["data"]["parents"]
    assert parents == [{"id": record["id"], "name": "用户数据ETL流程"}]

    marker = unique("searchme")
    for i in range(3):
        add(bridge, name=unique("订单"), description=f"{marker} {i}")
    page = bridge.get(
        f"{BASE}/get-dataflows-list", params={"page": 2, "page_size": 2, "search": marker}
    ).json()
    assert page["code"] == 200
    assert page["data"]["pagination"] == {"page": 2, "page_size": 2, "total": 3, "total_pages": 2}
    assert len(page["data"]["list"]) == 1 and marker in page["data"]["list"][0]["description"]
    by_name = bridge.get(f"{BASE}/get-dataflows-list", params={"search": "客户数据同步"}).json()["data"][
        "list"
    ]
    assert customer["id"] in [r["id"] for r in by_name]

    updated = bridge.put(
        f"{BASE}/update-dataflow/{record['id']}",
        json={"description": "更新后的数据流描述", "status": "active"},
    ).json()
    assert (updated["code"], updated["message"]) == (200, "数据流更新成功")
    assert updated["data"]["description"] == "更新后的数据流描述"
    assert updated["data"]["name"] == "用户数据ETL流程" and json.loads(updated["data"]["config"]) == config

    deleted = bridge.delete(f"{BASE}/delete-dataflow/{record['id']}").json()
    assert deleted == {"code": 200, "message": "数据流删除成功", "data": {}}
    gone = bridge.get(f"{BASE}/get-dataflow/{record['id']}")
    assert gone.status_code == 404 and gone.json() == {"code": 404, "message": "数据流不存在", "data": None}
    assert bridge.delete(f"{BASE}/delete-dataflow/{record['id']}").json()["code"] == 404
    assert bridge.get(f"{BASE}/get-dataflow/{child_a['id']}").json()["data"]["parents"] == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"description": "x"}, "参数错误: 缺少必填字段: name"),
        ({"name": "x"}, "缺少必填字段: description"),
        ({"name": "x", "description": "y", "status": "paused"}, "status must be one of active, inactive"),
        ({"name": "x", "description": "y", "tag_id": 987654321}, "tag_id 987654321 does not exist"),
        ({"name": "x", "description": "y", "children_ids": [987654321]}, "[987654321] do not exist"),
        ({"name": "x", "description": "y", "children_ids": "1,2"}, "children_ids must be a list"),
        ({"name": "x", "description": "y", "config": [1]}, "config must be a JSON object"),
        ({"name": "x", "description": "y", "config": {"schedule": "every day"}}, "config.schedule"),
    ],
)
def test_add_refuses_bad_input_with_400(bridge: httpx.Client, body: dict, fragment: str) -> None:
    response = bridge.post(f"{BASE}/add-dataflow", json=body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == 400 and fragment in answer["message"] and answer["data"] is None


def test_client_mistakes_never_answer_500(bridge: httpx.Client) -> None:
    checks = [
        bridge.post(
            f"{BASE}/add-dataflow", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        bridge.get(f"{BASE}/get-dataflows-list", params={"page_size": 101}),
        bridge.get(f"{BASE}/get-dataflows-list", params={"page": "x"}),
        bridge.get(f"{BASE}/get-dataflow/abc"),
        bridge.post(f"{BASE}/execute-dataflow/1", json={"params": [1]}),
        bridge.get(f"{BASE}/get-dataflow-lineage/1", params={"direction": "sideways"}),
        bridge.post(f"{BASE}/create-script", json={}),
    ]
    for response in checks:
        assert response.status_code == 400, response.text
        assert response.json()["code"] == 400
    for path in ("get-dataflow", "get-dataflow-status", "get-dataflow-logs", "get-dataflow-lineage"):
        response = bridge.get(f"{BASE}/{path}/987654321")
        assert response.status_code == 404 and response.json()["code"] == 404, path
    assert bridge.post(f"{BASE}/execute-dataflow/987654321").json()["code"] == 404
    assert bridge.put(f"{BASE}/update-dataflow/987654321", json={"status": "active"}).json()["code"] == 404
    never_run = add(bridge)
    answer = bridge.get(f"{BASE}/get-dataflow-status/{never_run['id']}").json()
    assert answer["code"] == 404 and "尚未执行" in answer["message"]


# --- execution -------------------------------------------------------------------------------------------


SALES = pd.DataFrame(
    {
        "id": [1, 2, 3, 4, 5, 6],
        "region": ["north", "south", "north", "east", "south", "north"],
        "amount": [5.0, 20.0, 30.0, 8.0, 40.0, 12.5],
    }
)


def test_csv_to_postgres_and_back_with_lineage(
    bridge: httpx.Client, stack: StackInfo, tmp_path: Path
) -> None:
    SALES.to_csv(tmp_path / "sales.csv", index=False)
    table = unique("df_sales_")
    url = pg_url(stack)
    load = add(
        bridge,
        name=unique("销售数据入库"),
        config={
            "source": {"type": "csv", "path": str(tmp_path / "sales.csv")},
            "transforms": [{"type": "filter", "expr": "amount > 10"}],
            "target": {"type": "postgresql", "url": url, "table": table, "if_exists": "replace"},
        },
    )
    report = add(
        bridge,
        name=unique("销售汇总"),
        config={
            "source": {
                "type": "postgresql",
                "url": url,
                "query": f"SELECT * FROM {table} WHERE amount >= :floor",
            },
            "transforms": [
                {"type": "aggregate", "by": ["region"], "aggs": {"amount": "sum", "id": "count"}},
                {"type": "select", "columns": ["region", "amount", "id"], "rename": {"id": "orders"}},
            ],
            "target": {"type": "csv", "path": str(tmp_path / "out" / "by_region.csv")},
            "schedule_note": "kept as given",
        },
    )
    started = execute(bridge, load["id"])
    assert (started["code"], started["message"]) == (200, "数据流执行成功"), started
    data = started["data"]
    assert data["dataflow_id"] == load["id"] and data["execution_id"].startswith(f"exec_{load['id']}_")
    assert data["status"] in {"pending", "running"} and data["progress"] == 0 and data["started_at"]
    final = wait_final(bridge, load["id"])
    assert final["status"] == "completed", final
    assert (final["progress"], final["error_message"]) == (100, None)
    assert final["completed_at"] >= final["started_at"]

    engine = sa.create_engine(stack.database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, region, amount FROM {table} ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        (2, "south", 20.0),
        (3, "north", 30.0),
        (5, "south", 40.0),
        (6, "north", 12.5),
    ]

    assert execute(bridge, report["id"], {"floor": 0})["code"] == 200
    final = wait_final(bridge, report["id"])
    assert final["status"] == "completed", final
    out = pd.read_csv(tmp_path / "out" / "by_region.csv")
    assert out.to_dict("records") == [
        {"region": "north", "amount": 42.5, "orders": 2},
        {"region": "south", "amount": 60.0, "orders": 2},
    ]

    lines = logs(bridge, load["id"])
    components = {line["component"] for line in lines}
    assert {"source", "transform_filter", "target"} <= components, components
    assert any("wrote 4 rows" in line["message"] and line["component"] == "target" for line in lines)
    assert {line["level"] for line in lines} <= {"INFO", "WARNING", "ERROR"}
    assert [line["id"] for line in lines] == list(range(1, len(lines) + 1))
    page = bridge.get(f"{BASE}/get-dataflow-logs/{load['id']}", params={"page": 2, "page_size": 2}).json()[
        "data"
    ]
    assert [line["id"] for line in page["logs"]] == [3, 4]
    assert page["pagination"]["total"] == len(lines)
    everything = json.dumps(lines) + json.dumps(bridge.get(f"{BASE}/get-dataflow-status/{load['id']}").json())
    assert SECRET not in everything

    lineage = bridge.get(
        f"{BASE}/get-dataflow-lineage/{report['id']}", params={"direction": "upstream", "depth": 3}
    )
    graph = lineage.json()["data"]
    flows = {n["dataflow_id"]: n for n in graph["nodes"] if n["type"] == "DataFlow"}
    assert flows[load["id"]]["depth"] == 1 and flows[report["id"]]["depth"] == 0
    assert flows[load["id"]]["name"] == load["name"]
    datasets = [n["uri"] for n in graph["nodes"] if n["type"] == "Dataset"]
    assert datasets == [f"postgresql://127.0.0.1:5432/{stack.database_url.rsplit('/', 1)[1]}#{table}"]
    assert {
        "source": f"dataflow:{load['id']}",
        "target": f"dataset:{datasets[0]}",
        "type": "WRITES",
    } in graph["edges"]
    down = bridge.get(f"{BASE}/get-dataflow-lineage/{load['id']}", params={"direction": "downstream"}).json()[
        "data"
    ]
    assert report["id"] in {n.get("dataflow_id") for n in down["nodes"]}

    from storage.dataflow.graph import get_graph

    run = get_graph().run(str(_flow_run_id(report["id"])))
    assert run is not None and (run["status"], run["rows_read"], run["rows_written"]) == ("completed", 4, 2)


def _run_key(dataflow_id: int) -> str:
    from storage.dataflow.repository import get_record

    key = get_record(dataflow_id).run_key
    assert key
    return key


def _flow_run_id(dataflow_id: int) -> Any:
    from api_bridge.gateway import get_gateway

    latest = get_gateway().latest_run("dataflow_run", f"dataflow:{dataflow_id}")
    assert latest is not None
    return latest.run_id


def test_simplest_form_exactly_as_written_and_params_override(bridge: httpx.Client, tmp_path: Path) -> None:
    SALES.to_csv(tmp_path / "in.csv", index=False)
    config = {
        "source": {"type": "csv", "path": str(tmp_path / "in.csv")},
        "transforms": [{"type": "filter", "expr": "amount > 10"}],
        "target": {"type": "csv", "path": f"file://{tmp_path / 'out.csv'}"},
    }
    flow = add(bridge, config=config)
    assert json.loads(flow["config"]) == config
    execute(bridge, flow["id"])
    assert wait_final(bridge, flow["id"])["status"] == "completed"
    assert pd.read_csv(tmp_path / "out.csv")["id"].tolist() == [2, 3, 5, 6]

    params = {
        "transforms.0.expr": "amount > @low and region == @region",
        "low": 15,
        "region": "south",
        "target.path": str(tmp_path / "{region}.csv"),
    }
    assert execute(bridge, flow["id"], params)["data"]["params"] == params
    assert wait_final(bridge, flow["id"])["status"] == "completed"
    assert pd.read_csv(tmp_path / "south.csv")["id"].tolist() == [2, 5]
    stored = bridge.get(f"{BASE}/get-dataflow/{flow['id']}").json()["data"]["config"]
    assert json.loads(stored) == config  # overrides apply to the run only


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"source": "mysql", "target": "elasticsearch"}, "'source' is 'mysql', a description"),
        ({"batch_size": 1000, "retry_count": 3}, "no 'source' and no 'target'"),
        ({"transforms": [{"type": "pivot"}]}, "unknown transform type 'pivot'"),
        ({"transforms": [{"type": "filter", "expr": "price > 1"}]}, "column 'price' not found"),
        (
            {"transforms": [{"type": "filter", "expr": "__import__('os').system('id')"}]},
            "Call, which is not allowed",
        ),
        (
            {"transforms": [{"type": "aggregate", "by": ["zone"], "aggs": {"amount": "sum"}}]},
            "'zone' not found",
        ),
        (
            {"source": {"type": "postgresql", "url": f"postgresql://u:{SECRET}@127.0.0.1:1/x", "table": "t"}},
            "unreachable",
        ),
        ({"source": {"type": "csv", "path": "/nonexistent/in.csv"}}, "source file not found"),
    ],
)
def test_bad_pipelines_fail_with_a_named_problem(
    bridge: httpx.Client, tmp_path: Path, config: dict, fragment: str
) -> None:
    SALES.to_csv(tmp_path / "in.csv", index=False)
    runnable = {
        "source": {"type": "csv", "path": str(tmp_path / "in.csv")},
        "target": {"type": "csv", "path": str(tmp_path / "out.csv")},
    }
    descriptive = ("source" not in config and "transforms" not in config) or config.get("source") == "mysql"
    flow = add(bridge, config=config if descriptive else {**runnable, **config})
    assert execute(bridge, flow["id"])["code"] == 200
    final = wait_final(bridge, flow["id"])
    assert final["status"] == "failed"
    assert fragment in final["error_message"], final["error_message"]
    assert SECRET not in final["error_message"]
    errors = [line for line in logs(bridge, flow["id"]) if line["level"] == "ERROR"]
    assert any(fragment in line["message"] for line in errors), errors
    assert SECRET not in json.dumps(logs(bridge, flow["id"]))


def test_runs_send_openlineage_start_and_complete_or_fail_events(
    bridge: httpx.Client, tmp_path: Path
) -> None:
    """The shared stack's runner has FLOWBRIDGE_OPENLINEAGE_URL pointing at the tests' collector."""
    services = shared_services()
    assert services is not None
    SALES.to_csv(tmp_path / "in.csv", index=False)
    good = add(
        bridge,
        config={
            "source": {"type": "csv", "path": str(tmp_path / "in.csv")},
            "transforms": [{"type": "filter", "expr": "amount > 10"}],
            "target": {"type": "parquet", "path": str(tmp_path / "out.parquet")},
        },
    )
    bad = add(
        bridge,
        config={
            "source": {"type": "csv", "path": str(tmp_path / "in.csv")},
            "transforms": [{"type": "filter", "expr": "price > 10"}],
            "target": {"type": "csv", "path": str(tmp_path / "never.csv")},
        },
    )
    for flow, outcome in ((good, "completed"), (bad, "failed")):
        assert execute(bridge, flow["id"])["code"] == 200
        assert wait_final(bridge, flow["id"])["status"] == outcome

    def events(flow: dict[str, Any]) -> dict[str, dict[str, Any]]:
        mine = [e for e in received(services.openlineage_dir) if e["job"]["name"] == f"dataflow-{flow['id']}"]
        return {e["eventType"]: e for e in mine}

    done = events(good)
    assert set(done) == {"START", "COMPLETE"}
    assert done["START"]["run"]["runId"] == done["COMPLETE"]["run"]["runId"]
    assert done["COMPLETE"]["inputs"] == [{"namespace": "file", "name": str(tmp_path / "in.csv")}]
    (output,) = done["COMPLETE"]["outputs"]
    assert output["name"] == str(tmp_path / "out.parquet")
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 4
    failed = events(bad)
    assert set(failed) == {"START", "FAIL"}
    assert "price" in failed["FAIL"]["run"]["facets"]["errorMessage"]["message"]
    assert failed["FAIL"]["outputs"] == []


def test_parent_runs_two_children_in_order_then_itself(bridge: httpx.Client, tmp_path: Path) -> None:
    SALES.to_csv(tmp_path / "raw.csv", index=False)
    clean = add(
        bridge,
        name=unique("数据清洗子流程"),
        config={
            "source": {"type": "csv", "path": str(tmp_path / "raw.csv")},
            "transforms": [{"type": "filter", "expr": "amount > 10"}],
            "target": {"type": "parquet", "path": str(tmp_path / "clean.parquet")},
        },
    )
    convert = add(  # reads what the first child wrote: passes only if the children run in order
        bridge,
        name=unique("数据转换子流程"),
        config={
            "source": {"type": "parquet", "path": str(tmp_path / "clean.parquet")},
            "transforms": [{"type": "aggregate", "by": ["region"], "aggs": {"amount": "sum"}}],
            "target": {"type": "json", "path": str(tmp_path / "regions.jsonl")},
        },
    )
    parent = add(
        bridge,
        name=unique("主数据流"),
        children_ids=[clean["id"], convert["id"]],
        config={
            "source": {"type": "json", "path": str(tmp_path / "regions.jsonl")},
            "transforms": [{"type": "filter", "expr": "amount > 50"}],
            "target": {"type": "csv", "path": str(tmp_path / "final.csv")},
        },
    )
    assert execute(bridge, parent["id"])["code"] == 200
    final = wait_final(bridge, parent["id"])
    assert final["status"] == "completed", final
    assert pd.read_csv(tmp_path / "final.csv").to_dict("records") == [{"region": "south", "amount": 60.0}]
    lines = logs(bridge, parent["id"])
    messages = " ".join(line["message"] for line in lines)
    assert f"child(ren) [{clean['id']}, {convert['id']}]" in messages
    components = [line["component"] for line in lines]  # the children's steps are in the parent's log
    for child in (clean["id"], convert["id"]):
        assert f"dataflow-{child}/source" in components and f"dataflow-{child}/target" in components
    assert "source" in components and "target" in components
    stamps = [line["timestamp"] for line in lines]
    assert stamps == sorted(stamps)
    assert components.index(f"dataflow-{convert['id']}/source") < components.index("source")
    up = bridge.get(f"{BASE}/get-dataflow-lineage/{parent['id']}", params={"depth": 2}).json()["data"]
    depths = {n["dataflow_id"]: n["depth"] for n in up["nodes"] if n["type"] == "DataFlow"}
    assert depths == {parent["id"]: 0, convert["id"]: 1, clean["id"]: 2}


def test_a_child_run_by_its_parent_reports_that_run_as_its_own(bridge: httpx.Client, tmp_path: Path) -> None:
    from api_bridge.gateway import get_gateway
    from storage.dataflow.graph import get_graph

    SALES.to_csv(tmp_path / "raw.csv", index=False)
    child = add(
        bridge,
        name=unique("子数据流"),
        config={
            "source": {"type": "csv", "path": str(tmp_path / "raw.csv")},
            "transforms": [{"type": "filter", "expr": "amount > 10"}],
            "target": {"type": "parquet", "path": str(tmp_path / "child.parquet")},
        },
    )
    parent = add(
        bridge,
        name=unique("父数据流"),
        children_ids=[child["id"]],
        config={
            "source": {"type": "parquet", "path": str(tmp_path / "child.parquet")},
            "target": {"type": "csv", "path": str(tmp_path / "parent.csv")},
        },
    )
    never = bridge.get(f"{BASE}/get-dataflow-status/{child['id']}")
    assert never.status_code == 404 and "尚未执行" in never.json()["message"]
    assert execute(bridge, parent["id"])["code"] == 200
    parent_final = wait_final(bridge, parent["id"])
    assert parent_final["status"] == "completed", parent_final
    assert parent_final["execution_id"].startswith(f"exec_{parent['id']}_")  # not the child's subflow

    status = bridge.get(f"{BASE}/get-dataflow-status/{child['id']}").json()
    assert status["code"] == 200, status  # was 404 "has no execution yet" although it ran
    data = status["data"]
    assert (data["status"], data["progress"], data["error_message"]) == ("completed", 100, None)
    assert data["execution_id"].startswith(f"exec_{child['id']}_")
    assert data["started_at"] and data["completed_at"] and data["completed_at"] >= data["started_at"]
    assert parent_final["started_at"] <= data["started_at"] <= data["completed_at"]
    assert data["completed_at"] <= parent_final["completed_at"]

    lines = logs(bridge, child["id"])
    components = {line["component"] for line in lines}
    assert {"source", "transform_filter", "target"} <= components, components  # its own, unprefixed
    assert any("wrote 4 rows" in line["message"] and line["component"] == "target" for line in lines)
    assert not any(f"dataflow {parent['id']} " in line["message"] for line in lines)  # none of the parent's

    child_run = get_gateway().latest_run(
        "dataflow_run", f"dataflow-run:{_run_key(child['id'])}", subflows=True
    )
    assert child_run is not None and child_run.deployment_id is None  # the subflow run itself
    recorded = get_graph().run(str(child_run.run_id))
    assert recorded is not None
    assert (recorded["dataflow_id"], recorded["status"], recorded["rows_written"]) == (
        child["id"],
        "completed",
        4,
    )
    down = bridge.get(
        f"{BASE}/get-dataflow-lineage/{child['id']}", params={"direction": "downstream", "depth": 1}
    ).json()["data"]
    writes = [e for e in down["edges"] if e["source"] == f"dataflow:{child['id']}" and e["type"] == "WRITES"]
    assert len(writes) == 1 and writes[0]["target"].endswith("child.parquet"), down["edges"]
    assert parent["id"] in {n.get("dataflow_id") for n in down["nodes"]}

    again = execute(bridge, child["id"])  # its subflow run is final: the child may run on its own
    assert again["code"] == 200, again
    own = wait_final(bridge, child["id"])
    assert own["status"] == "completed" and own["execution_id"] == again["data"]["execution_id"]


def test_a_deleted_dataflows_history_never_reaches_another_record(
    bridge: httpx.Client, tmp_path: Path
) -> None:
    from storage.dataflow.models import DataFlow
    from storage.metadata import session_scope

    SALES.to_csv(tmp_path / "in.csv", index=False)
    config = {
        "source": {"type": "csv", "path": str(tmp_path / "in.csv")},
        "target": {"type": "csv", "path": str(tmp_path / "out.csv")},
    }
    old = add(bridge, config=config)
    assert execute(bridge, old["id"])["code"] == 200
    assert wait_final(bridge, old["id"])["status"] == "completed"
    assert len(logs(bridge, old["id"])) > 0
    assert bridge.delete(f"{BASE}/delete-dataflow/{old['id']}").json()["code"] == 200

    newcomer = add(bridge, config=config)
    assert newcomer["id"] != old["id"]
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    with session_scope() as session:  # the old id handed out again (SQLite used to; a restored backup may)
        session.add(
            DataFlow(
                id=old["id"], name=unique("复用"), en_name=unique("reused_"), description="",
                status="inactive", created_by="system", config=config, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    try:
        for dataflow_id in (newcomer["id"], old["id"]):
            for path in ("get-dataflow-status", "get-dataflow-logs"):
                answer = bridge.get(f"{BASE}/{path}/{dataflow_id}")
                assert answer.status_code == 404, (path, dataflow_id, answer.text)
                assert answer.json()["code"] == 404 and "数据流尚未执行" in answer.json()["message"]
        assert execute(bridge, old["id"])["code"] == 200  # its own first run, not a conflict with the old
        assert wait_final(bridge, old["id"])["status"] == "completed"
    finally:
        bridge.delete(f"{BASE}/delete-dataflow/{old['id']}")


def test_ids_beyond_the_id_columns_answer_404_and_keep_the_connection(bridge: httpx.Client) -> None:
    for dataflow_id in ("99999999999999999999999999", str(2**31), str(2**63)):
        calls = [
            bridge.post(f"{BASE}/execute-dataflow/{dataflow_id}", json={}),
            bridge.get(f"{BASE}/get-dataflow/{dataflow_id}"),
            bridge.get(f"{BASE}/get-dataflow-status/{dataflow_id}"),
            bridge.get(f"{BASE}/get-dataflow-logs/{dataflow_id}"),
            bridge.put(f"{BASE}/update-dataflow/{dataflow_id}", json={"description": "x"}),
            bridge.delete(f"{BASE}/delete-dataflow/{dataflow_id}"),
        ]
        for response in calls:
            assert response.status_code == 404, (response.request.url, response.text)
            assert response.json()["message"] == "数据流不存在"
    for body in ({"tag_id": 2**31}, {"children_ids": [2**31]}, {"children_ids": [10**30]}):
        answer = bridge.post(f"{BASE}/add-dataflow", json={"name": "n", "description": "d", **body})
        assert answer.status_code == 400, answer.text


def test_params_prefect_cannot_keep_answer_400_and_never_poison_the_status(bridge: httpx.Client) -> None:
    """Prefect keeps parameters as jsonb: 2.7e160 comes back as a 161-digit integer its JSON encoder
    refuses, and every later status/logs/execute read of that dataflow answered 500 (schemathesis)."""
    flow = add(bridge, config={"batch_size": 1})
    for params in ({"x": [1, {"y": 2.7e160}]}, {"x": 2**64}, {"x": "a\x00b"}):
        answer = bridge.post(f"{BASE}/execute-dataflow/{flow['id']}", json={"params": params})
        assert answer.status_code == 400, answer.text
    assert bridge.get(f"{BASE}/get-dataflow-status/{flow['id']}").status_code == 404  # never executed
    assert execute(bridge, flow["id"], {"x": 2.5e15})["code"] == 200
    assert wait_final(bridge, flow["id"])["status"] == "failed"  # a descriptive config: not runnable
    assert bridge.get(f"{BASE}/get-dataflow-logs/{flow['id']}").status_code == 200


def test_one_execution_at_a_time_across_bridges(
    bridge: httpx.Client, stack: StackInfo, tmp_path: Path
) -> None:
    SALES.to_csv(tmp_path / "in.csv", index=False)
    flow = add(
        bridge,
        config={
            "source": {"type": "csv", "path": str(tmp_path / "in.csv")},
            "target": {"type": "csv", "path": str(tmp_path / "out.csv")},
        },
    )
    with extra_bridge(stack) as other, httpx.Client(base_url=other.url, timeout=60) as second:
        clients = [bridge, second] * 3
        barrier = threading.Barrier(len(clients))

        def fire(client: httpx.Client) -> httpx.Response:
            barrier.wait()
            return client.post(f"{BASE}/execute-dataflow/{flow['id']}", json={"params": {}})

        with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
            answers = list(pool.map(fire, clients))
        codes = sorted(a.json()["code"] for a in answers)
        assert codes == [200] + [409] * (len(clients) - 1), [a.json() for a in answers]
        conflict = next(a for a in answers if a.json()["code"] == 409)
        assert conflict.status_code == 409 and "正在执行" in conflict.json()["message"]
        winner = next(a for a in answers if a.json()["code"] == 200).json()["data"]
        assert conflict.json()["data"]["execution_id"] == winner["execution_id"]
        late = second.post(f"{BASE}/execute-dataflow/{flow['id']}").json()
        assert late["code"] in {409, 200}
        if late["code"] == 409:
            assert wait_final(bridge, flow["id"])["status"] == "completed"
            assert second.post(f"{BASE}/execute-dataflow/{flow['id']}").json()["code"] == 200
    assert wait_final(bridge, flow["id"])["status"] == "completed"
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    from api_bridge.gateway import get_gateway

    runs = get_gateway().client.read_flow_runs(
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"dataflow:{flow['id']}"]))
    )
    assert len(runs) == 2


def test_schedule_follows_status_and_survives_runner_reapply(bridge: httpx.Client, stack: StackInfo) -> None:
    from api_bridge.gateway import get_gateway

    gateway = get_gateway()
    flow = add(bridge, status="active", config={"source": {"type": "mysql"}, "schedule": "0 2 * * *"})
    slug = f"dataflow-{flow['id']}"
    schedule = gateway.schedules("dataflow_run").get(slug)
    key = _run_key(flow["id"])  # the schedule's runs refuse to run another record that gets this id
    parameters = {"dataflow_id": flow["id"], "run_key": key}
    assert schedule == {"cron": "0 2 * * *", "active": True, "parameters": parameters}

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.serve import build_deployments
    from flows.registry import JOB_TYPES

    applied = 0
    with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
        for deployment in build_deployments():
            if deployment.flow_name == JOB_TYPES["dataflow_run"].flow_name:
                deployment.apply()  # what the runner does on every (re)start
                applied += 1
    assert applied == 1
    assert slug in gateway.schedules("dataflow_run"), "a runner restart wiped the dataflow schedule"

    bridge.put(f"{BASE}/update-dataflow/{flow['id']}", json={"status": "inactive"})
    assert slug not in gateway.schedules("dataflow_run")
    bridge.put(
        f"{BASE}/update-dataflow/{flow['id']}",
        json={"status": "active", "config": {"schedule": "*/5 * * * *"}},
    )
    assert gateway.schedules("dataflow_run")[slug]["cron"] == "*/5 * * * *"
    bridge.delete(f"{BASE}/delete-dataflow/{flow['id']}")
    assert slug not in gateway.schedules("dataflow_run")


@pytest.mark.slow
def test_cron_schedule_runs_the_dataflow_end_to_end(bridge: httpx.Client, tmp_path: Path) -> None:
    SALES.to_csv(tmp_path / "in.csv", index=False)
    config = {
        "source": {"type": "csv", "path": str(tmp_path / "in.csv")},
        "transforms": [{"type": "filter", "expr": "region == 'north'"}],
        "target": {"type": "csv", "path": str(tmp_path / "scheduled.csv")},
        "schedule": "* * * * *",
    }
    flow = add(bridge, status="active", config=config)
    try:
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline and not (tmp_path / "scheduled.csv").exists():
            time.sleep(2)
        assert (tmp_path / "scheduled.csv").exists(), "the cron schedule never ran the dataflow"
        final = wait_final(bridge, flow["id"])  # the scheduled run tagged itself, so status finds it
        assert final["status"] == "completed", final
        assert pd.read_csv(tmp_path / "scheduled.csv")["id"].tolist() == [1, 3, 6]
    finally:
        bridge.put(f"{BASE}/update-dataflow/{flow['id']}", json={"status": "inactive"})


# --- scripts ---------------------------------------------------------------------------------------------


def test_create_script_offline(bridge: httpx.Client) -> None:
    answer = bridge.post(
        f"{BASE}/create-script",
        json={"request_data": "创建一个简单的CSV文件处理脚本,读取销售数据并计算月度汇总"},
    ).json()
    assert answer["code"] == 200 and "offline" in answer["message"]
    data = answer["data"]
    assert data["format"] == "txt" and data["provider"] == "offline"
    assert data["script_content"].startswith("#!/usr/bin/env python3")
    compile(data["script_content"], "generated.py", "exec")


class _FakeLlm(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeLlm.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        content = "```python\nprint('hello from the model')\n```"
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture()
def fake_llm() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeLlm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_create_script_through_an_openai_compatible_llm(stack: StackInfo, fake_llm: str) -> None:
    env = {
        "FLOWBRIDGE_LLM_BASE_URL": fake_llm,
        "FLOWBRIDGE_LLM_MODEL": "deepseek-chat",
        "FLOWBRIDGE_LLM_API_KEY": "sk-test-key",
    }
    with extra_bridge(stack, env) as other, httpx.Client(base_url=other.url, timeout=60) as client:
        answer = client.post(f"{BASE}/create-script", json={"request_data": "从MySQL读取用户表写入ES"}).json()
    assert (answer["code"], answer["message"]) == (200, "脚本生成成功")
    assert answer["data"]["script_content"] == "print('hello from the model')\n"
    assert (answer["data"]["provider"], answer["data"]["model"]) == ("llm", "deepseek-chat")
    sent = _FakeLlm.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test-key"
    assert sent["body"]["model"] == "deepseek-chat"
    assert sent["body"]["messages"][-1] == {"role": "user", "content": "从MySQL读取用户表写入ES"}
