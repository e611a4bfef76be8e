"""What /openapi.json says about the 002 GasFlux API: valid, one entry per documented method, unique
operationIds, the parameters and bodies the router reads, and the envelope it answers with."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import pytest
from openapi_spec_validator import validate

EXPECTED = {
    "/health": {"get"},
    "/stats": {"get"},
    "/stats/reset": {"post"},
    "/config": {"get"},
    "/upload": {"post"},
    "/task/{task_id}": {"get", "put", "delete"},
    "/reports": {"get"},
    "/download/{filename}": {"get"},
}


@functools.cache
def document() -> dict[str, Any]:
    from api_bridge.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_app().openapi()


def gasflux_document() -> dict[str, Any]:
    """The bridge's document cut down to the 002 paths (other APIs are not this module's business)."""
    spec = document()
    return dict(spec, paths={p: ops for p, ops in spec["paths"].items() if p in EXPECTED})


def operation(path: str, method: str) -> dict[str, Any]:
    return document()["paths"][path][method]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_the_002_document_is_valid_openapi_with_one_operation_per_documented_method() -> None:
    sub = gasflux_document()
    validate(sub)
    assert {path: set(ops) for path, ops in sub["paths"].items()} == EXPECTED
    ids = [op["operationId"] for ops in document()["paths"].values() for op in ops.values()]
    mine = [op["operationId"] for ops in sub["paths"].values() for op in ops.values()]
    assert all(i.startswith("gasflux_") and ids.count(i) == 1 for i in mine), mine


def test_reports_declares_its_query_parameters_with_their_ranges() -> None:
    params = {p["name"]: p for p in operation("/reports", "get")["parameters"]}
    assert set(params) == {"page", "per_page", "sort_by", "sort_order", "status"}
    assert all(p["in"] == "query" and not p["required"] for p in params.values())
    assert params["per_page"]["schema"] | {"default": 20} == {
        "type": "integer", "minimum": 1, "maximum": 100, "default": 20
    }  # fmt: skip
    assert params["page"]["schema"]["minimum"] == 1 and params["page"]["schema"]["maximum"] == 2**31 - 1
    assert params["sort_by"]["schema"]["enum"] == ["created_at", "task_id", "file_size", "processing_time"]
    assert params["status"]["schema"]["enum"] == ["pending", "processing", "completed", "failed"]


def test_upload_is_multipart_and_put_task_a_json_object() -> None:
    upload = operation("/upload", "post")["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["required"] == ["file"]
    assert {k: v["format"] for k, v in upload["properties"].items()} == {"file": "binary", "config": "binary"}
    put = operation("/task/{task_id}", "put")["requestBody"]["content"]["application/json"]["schema"]
    assert set(put["properties"]) == {"status", "priority", "message"}
    assert put["properties"]["priority"]["enum"] == ["normal", "high", "low"]
    assert [p["name"] for p in operation("/task/{task_id}", "put")["parameters"]] == ["task_id"]


@pytest.mark.parametrize(("path", "method", "code"), [
    ("/task/{task_id}", "get", "200"), ("/task/{task_id}", "get", "404"), ("/task/{task_id}", "put", "200"),
    ("/task/{task_id}", "delete", "409"), ("/upload", "post", "202"), ("/reports", "get", "200"),
    ("/stats", "get", "200"), ("/health", "get", "503"),
])  # fmt: skip
def test_answers_are_the_envelope_with_datas_keys_mirrored(path: str, method: str, code: str) -> None:
    responses = operation(path, method)["responses"]
    assert "422" not in responses and "default" in responses
    body = resolve(responses[code]["content"]["application/json"]["schema"])
    assert set(body["required"]) == {"code", "message", "data"}
    data = resolve(body["properties"]["data"])
    assert set(data["properties"]) <= set(body["properties"])  # mirrored at the top level


def test_download_answers_a_file_and_links_lead_from_upload_to_the_task() -> None:
    download = operation("/download/{filename}", "get")["responses"]
    assert list(download["200"]["content"]) == ["*/*"]
    links = operation("/upload", "post")["responses"]["202"]["links"]
    assert {link["operationId"] for link in links.values()} == {
        "gasflux_get_task", "gasflux_update_task", "gasflux_delete_task"
    }  # fmt: skip
    assert all(link["parameters"] == {"task_id": "$response.body#/data/job_id"} for link in links.values())
