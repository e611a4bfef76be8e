"""The 001 and 003 operations of /openapi.json tell the truth: one operation per documented method, unique
operationIds, the fields each handler reads and the answers it gives; the other methods keep their
documented answers outside the schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from storage.mrms.domain import ProjectStatus

PREFIXES = ("/mrms/", "/api/algorithm/")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    from api_bridge.app import create_app

    return create_app().openapi()


def operations(document: dict[str, Any], prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, item in document["paths"].items()
        if path.startswith(prefix)
        for method, operation in item.items()
    }


def test_the_document_is_valid_openapi_with_unique_operation_ids(document: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    # only the 001 and 003 paths: the other APIs' routes are another change's
    mine = {path: item for path, item in document["paths"].items() if path.startswith(PREFIXES)}
    validate({**document, "paths": mine})
    ids = [op["operationId"] for prefix in PREFIXES for op in operations(document, prefix).values()]
    assert len(ids) == len(set(ids)) == 22 + 4


def test_each_mrms_endpoint_is_declared_once_for_its_documented_method(document: dict[str, Any]) -> None:
    declared = operations(document, "/mrms/")
    methods = {path: method for path, method in declared}
    assert len(methods) == len(declared) == 22
    assert methods["/mrms/project_create"] == "post" and methods["/mrms/get_proj_sttus_cd"] == "get"
    assert methods["/mrms/get_sttus_cd"] == "post" and methods["/mrms/bookmark_update"] == "get"


def test_mrms_fields_and_answers_are_declared(document: dict[str, Any]) -> None:
    declared = operations(document, "/mrms/")
    create = declared[("/mrms/project_create", "post")]["requestBody"]["content"]
    assert set(create) == {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
    for content in create.values():
        schema = content["schema"]
        assert {"project_id", "status", "project_purpose_cd"} <= set(schema["required"])
        assert schema["properties"]["status"]["enum"] == [s.value for s in ProjectStatus]
    result = create["application/json"]["schema"]["properties"]["early_stop_param"]
    assert {"object", "string"} == {s["type"] for s in result["anyOf"]}
    query = {p["name"]: p for p in declared[("/mrms/get_models_info", "get")]["parameters"]}
    assert query["project_id"]["required"] and not query["hist_no"]["required"]
    ok = declared[("/mrms/eps_update", "post")]["responses"]["200"]["content"]
    assert ok == {"text/plain": {"schema": {"type": "string", "enum": ["1", "error"]}}}
    info = declared[("/mrms/get_projects_info", "get")]["responses"]["200"]["content"]
    assert info["application/json"]["schema"]["type"] == "array"
    assert info["text/plain"]["schema"]["enum"] == ["error"]
    upload = declared[("/mrms/dataset_upload", "post")]["requestBody"]["content"]
    assert list(upload) == ["multipart/form-data"]
    assert upload["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    download = declared[("/mrms/model_download", "get")]["responses"]["200"]["content"]
    assert set(download) == {"application/octet-stream", "text/plain"}


def test_offline_operations_declare_the_task_id_token_and_error_body(document: dict[str, Any]) -> None:
    declared = operations(document, "/api/algorithm/")
    assert {op["operationId"] for op in declared.values()} == {
        "offline_submit_task",
        "offline_get_task",
        "offline_cancel_task",
        "offline_list_algorithms",
    }
    for (path, _), operation in declared.items():
        assert operation["security"] == [{"OfflineToken": []}]
        assert "422" not in operation["responses"], path  # malformed requests answer 400
        names = [p["name"] for p in operation.get("parameters", [])]
        assert "authorization" not in [n.lower() for n in names], path
        assert operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorAnswer"
        )
    task_id = declared[("/api/algorithm/task/get", "get")]["parameters"]
    assert task_id == [
        {
            "name": "taskId",
            "in": "query",
            "required": True,
            "description": "The taskId submit answered.",
            "schema": {"type": "integer", "minimum": 1},
        }
    ]
    answer = declared[("/api/algorithm/task/get", "get")]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["$ref"].endswith("/TaskAnswer")
    assert document["components"]["securitySchemes"]["OfflineToken"]["name"] == "Authorization"
    listing = declared[("/api/algorithm/list", "get")]["responses"]["200"]["content"]["application/json"]
    assert listing["schema"]["$ref"].endswith("/AlgorithmList")


@pytest.fixture()
def mrms_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from fastapi import FastAPI

    from api_bridge import errors
    from api_bridge.routers.mrms import endpoints as mrms
    from flowbridge.settings import get_settings
    from storage import metadata

    monkeypatch.setenv("FLOWBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'meta.db'}")
    get_settings.cache_clear()
    metadata.migrate()
    app = FastAPI()
    errors.install(app)
    app.include_router(mrms.router)
    with TestClient(app) as client:
        yield client
    get_settings.cache_clear()


def test_undeclared_methods_keep_the_documented_error_answer(mrms_client: TestClient) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = mrms_client.request(method, "/mrms/eps_update", params={"hist_no": "h", "eps": "1"})
        assert (response.status_code, response.text) == (200, "error"), method
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = mrms_client.request(method, "/mrms/get_uuid")
        assert (response.status_code, response.text) == (200, "error"), method
    assert len(mrms_client.get("/mrms/get_uuid").text) == 36
    assert mrms_client.get("/mrms/no_such_endpoint").status_code == 404
