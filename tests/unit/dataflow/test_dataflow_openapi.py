"""/openapi.json tells the truth about the 004 DataFlow API: one operation per documented method, unique
operation ids, declared query parameters and JSON bodies, and the {"code","message","data"} envelope as
every answer (no FastAPI 422, which the API never sends)."""

from __future__ import annotations

from typing import Any

import pytest

PREFIX = "/api/data-flow"
DOCUMENTED = {
    "/get-dataflows-list": ("get", ["page", "page_size", "search"], False),
    "/get-dataflow/{dataflow_id}": ("get", ["dataflow_id"], False),
    "/add-dataflow": ("post", [], True),
    "/update-dataflow/{dataflow_id}": ("put", ["dataflow_id"], True),
    "/delete-dataflow/{dataflow_id}": ("delete", ["dataflow_id"], False),
    "/execute-dataflow/{dataflow_id}": ("post", ["dataflow_id"], True),
    "/get-dataflow-status/{dataflow_id}": ("get", ["dataflow_id"], False),
    "/get-dataflow-logs/{dataflow_id}": ("get", ["dataflow_id", "page", "page_size"], False),
    "/get-dataflow-lineage/{dataflow_id}": ("get", ["dataflow_id", "direction", "depth"], False),
    "/add-tag": ("post", [], True),
    "/get-tags-list": ("get", [], False),
    "/create-script": ("post", [], True),
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    from api_bridge.app import create_app

    return create_app().openapi()


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_each_endpoint_once_with_its_parameters_and_body(document: dict[str, Any]) -> None:
    paths = {p.removeprefix(PREFIX): ops for p, ops in document["paths"].items() if p.startswith(PREFIX)}
    assert set(paths) == set(DOCUMENTED)
    ids = [op["operationId"] for p, ops in document["paths"].items() for op in ops.values()]
    for path, (method, parameters, body) in DOCUMENTED.items():
        operations = paths[path]
        assert list(operations) == [method], path
        operation = operations[method]
        assert ids.count(operation["operationId"]) == 1
        assert [p["name"] for p in operation.get("parameters", [])] == parameters, path
        for parameter in operation.get("parameters", []):
            if parameter["name"] in {"dataflow_id", "page", "page_size", "depth"}:
                assert parameter["schema"]["type"] == "integer", (path, parameter)
        if body:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert schema["type"] == "object" and schema["properties"], path
        else:
            assert "requestBody" not in operation, path


def test_every_answer_is_the_envelope_and_no_422(document: dict[str, Any]) -> None:
    for path, (method, _parameters, _body) in DOCUMENTED.items():
        responses = document["paths"][PREFIX + path][method]["responses"]
        assert "422" not in responses, path
        assert {"200", "400" if path != "/get-tags-list" else "200", "500"} <= set(responses), path
        for code, answer in responses.items():
            schema = _resolve(document, answer["content"]["application/json"]["schema"])
            assert {"code", "message", "data"} <= set(schema["properties"]), (path, code)
    ok = document["paths"][PREFIX + "/add-dataflow"]["post"]["responses"]["200"]["content"]
    data = _resolve(document, _resolve(document, ok["application/json"]["schema"])["properties"]["data"])
    assert {"id", "name", "en_name", "config", "created_at"} <= set(data["properties"])


def test_ids_in_bodies_are_declared_with_the_columns_range(document: dict[str, Any]) -> None:
    body = document["paths"][PREFIX + "/add-dataflow"]["post"]["requestBody"]["content"]["application/json"]
    properties = body["schema"]["properties"]
    assert properties["children_ids"]["items"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    assert {"type": "integer", "minimum": 1, "maximum": 2**31 - 1} in properties["tag_id"]["anyOf"]
    assert body["schema"]["required"] == ["name", "description"]


def test_the_004_part_of_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    part = {**document, "paths": {p: ops for p, ops in document["paths"].items() if p.startswith(PREFIX)}}
    validate(part)


def test_links_lead_from_a_created_dataflow_to_execution_status_and_logs(document: dict[str, Any]) -> None:
    operations = {op["operationId"] for ops in document["paths"].values() for op in ops.values()}
    added = document["paths"][PREFIX + "/add-dataflow"]["post"]["responses"]["200"]["links"]
    executed = document["paths"][PREFIX + "/execute-dataflow/{dataflow_id}"]["post"]["responses"]["200"][
        "links"
    ]
    assert {"GetDataflow", "ExecuteDataflow", "DeleteDataflow"} <= set(added)
    assert {"GetDataflowStatus", "GetDataflowLogs"} <= set(executed)
    for link in [*added.values(), *executed.values()]:
        assert link["operationId"] in operations
        assert link["parameters"]["dataflow_id"].startswith("$response.body#/data/")
