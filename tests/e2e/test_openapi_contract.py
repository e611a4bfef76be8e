"""The bridge's /openapi.json tells the truth about the five legacy APIs, and fuzzing it finds no server
error (issue 10, items 2 and 3).

- The document is valid OpenAPI (openapi-spec-validator), its operationIds are unique, /docs renders,
  and every API declares exactly the methods its legacy document gives each endpoint (the documented
  wrong-method answers stay, outside the schema).
- schemathesis 4 fuzzes every operation of the live stack, per API: the `not_a_server_error` check plus
  one for the bridge's `X-Flowbridge-Error: internal` header (000 and 003 answer server errors with
  HTTP 200, so a status check alone would not see them). Deterministic (derandomized) and bounded:
  FUZZ_EXAMPLES cases per operation.
- A stateful run follows the OpenAPI links (000: upload -> get_flow -> progress -> download) so the fuzzer
  reaches real records, not only unknown ids.

The stack is shared with every other e2e test, so the fuzzer must not touch their records: integer ids
(001 taskId, 004 dataflow, tag and children ids) that it did not create are moved beyond any id the
suite creates (they still exercise the not-found and range checks).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Set
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response as StResponse

from tests.support.stack import StackInfo

pytestmark = pytest.mark.e2e

TOKEN = "test-token-1"  # the shared stack's FLOWBRIDGE_API_TOKENS
FUZZ_EXAMPLES = 25
STATEFUL_EXAMPLES = 12
STATEFUL_STEPS = 6

# --- what each legacy document gives ------------------------------------------------------------------
# Service -> OpenAPI tag and, per path, the methods the document (or, beyond it, the README) gives.
SERVICES: dict[str, tuple[str, dict[str, set[str]]]] = {
    "000": (
        "000 traffic forecast",
        {
            "/healthcheck.do": {"get", "post"},
            "/upload_file": {"post"},
            "/get_flow": {"post"},
            "/get_resu_process": {"post"},
            "/get_download_resu": {"post"},
            "/static/upload/{filename}": {"get"},
            "/static/download/{filename}": {"get"},
        },
    ),
    "001": (
        "001 offline algorithm platform",
        {
            "/api/algorithm/task/submit": {"post"},
            "/api/algorithm/task/get": {"get"},
            "/api/algorithm/task/cancel": {"post"},
            "/api/algorithm/list": {"get"},
        },
    ),
    "002": (
        "002 GasFlux",
        {
            "/health": {"get"},
            "/stats": {"get"},
            "/stats/reset": {"post"},
            "/config": {"get"},
            "/upload": {"post"},
            "/task/{task_id}": {"get", "put", "delete"},
            "/reports": {"get"},
            "/download/{filename}": {"get"},
        },
    ),
    "003": (
        "003 MRMS",
        {
            "/mrms/project_create": {"post"},
            "/mrms/get_proj_sttus_cd": {"get"},
            "/mrms/get_sttus_cd": {"post"},
            "/mrms/status_update/learn": {"post"},
            "/mrms/eps_update": {"post"},
            "/mrms/learn_result_update": {"post"},
            "/mrms/time_update": {"post"},
            "/mrms/get_projects_info": {"get"},
            "/mrms/update_projects_status": {"post"},
            "/mrms/insert_learn_hist": {"post"},
            "/mrms/get_learn_logs": {"get"},
            "/mrms/get_uuid": {"get"},
            "/mrms/model_resources": {"post"},
            "/mrms/get_histno_status": {"get"},
            "/mrms/get_models_info": {"get"},
            "/mrms/get_project_id": {"get"},
            "/mrms/model_alias_update": {"post"},
            "/mrms/bookmark_update": {"get"},
            "/mrms/model_download": {"get"},
            "/mrms/update_model_select": {"get"},
            "/mrms/dataset_upload": {"post"},  # beyond the document (README)
            "/mrms/param_set": {"post"},  # beyond the document (README)
        },
    ),
    "004": (
        "004 DataFlow",
        {
            "/api/data-flow/get-dataflows-list": {"get"},
            "/api/data-flow/get-dataflow/{dataflow_id}": {"get"},
            "/api/data-flow/add-dataflow": {"post"},
            "/api/data-flow/update-dataflow/{dataflow_id}": {"put"},
            "/api/data-flow/delete-dataflow/{dataflow_id}": {"delete"},
            "/api/data-flow/execute-dataflow/{dataflow_id}": {"post"},
            "/api/data-flow/get-dataflow-status/{dataflow_id}": {"get"},
            "/api/data-flow/get-dataflow-logs/{dataflow_id}": {"get"},
            "/api/data-flow/create-script": {"post"},
            "/api/data-flow/get-dataflow-lineage/{dataflow_id}": {"get"},  # beyond the document (README)
            "/api/data-flow/add-tag": {"post"},  # beyond the document (README)
            "/api/data-flow/get-tags-list": {"get"},  # beyond the document (README)
        },
    ),
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# Routers that another branch is fixing when this test was written: their OpenAPI still declares
# methods their document does not give. The final state is no entry here.
PENDING_METHODS: dict[str, str] = {}
# Operations the fuzzer found answering a server error when this test was written, left out of the fuzzing
# until their router's branch (issue 10, item 1: range checks) is merged. The final state is empty.
PENDING_FUZZ: dict[str, dict[str, str]] = {}


def _service_params(pending: Mapping[str, str]) -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(reason=pending[name], strict=False))
        if name in pending
        else name
        for name in SERVICES
    ]


@pytest.fixture(scope="module")
def document(stack: StackInfo) -> dict[str, Any]:
    response = httpx.get(f"{stack.bridge_url}/openapi.json", timeout=60)
    assert response.status_code == 200
    return response.json()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


# --- the document ---------------------------------------------------------------------------------------
def test_openapi_document_is_valid(document: dict[str, Any]) -> None:
    validate(document)


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = Counter(op.get("operationId") for _path, _method, op in _operations(document))
    assert None not in ids, "every operation has an operationId"
    assert [i for i, n in ids.items() if n > 1] == []


def test_every_operation_belongs_to_one_api(document: dict[str, Any]) -> None:
    tags = {tag for tag, _paths in SERVICES.values()}
    strays = [
        f"{method.upper()} {path}"
        for path, method, op in _operations(document)
        if len(tags.intersection(op.get("tags", []))) != 1
    ]
    assert strays == []


def test_docs_page_renders(stack: StackInfo) -> None:
    page = httpx.get(f"{stack.bridge_url}/docs", timeout=60)
    assert page.status_code == 200
    assert "swagger-ui" in page.text and "/openapi.json" in page.text


@pytest.mark.parametrize("service", _service_params(PENDING_METHODS))
def test_declared_methods_are_the_documents(document: dict[str, Any], service: str) -> None:
    tag, documented = SERVICES[service]
    declared: dict[str, set[str]] = {}
    for path, method, op in _operations(document):
        if tag in op.get("tags", []):
            declared.setdefault(path, set()).add(method)
    assert declared == documented


# --- fuzzing ----------------------------------------------------------------------------------------
def _header(response: StResponse, name: str) -> str | None:
    values = response.headers.get(name.lower())
    if isinstance(values, list):
        return values[0] if values else None
    return values


def no_internal_error(ctx: Any, response: StResponse, case: schemathesis.Case) -> bool | None:
    """The bridge marks every answer to an unhandled exception, whatever status its API uses."""
    marker = _header(response, "x-flowbridge-error")
    assert marker is None, f"{case.operation.label} answered an unhandled error: {response.text[:300]!r}"
    return None


CHECKS = [not_a_server_error, no_internal_error]

ID_OFFSET = 2_000_000_000  # beyond any id the suite creates, still a 32-bit integer
SHIFTED_BELOW = 100_000_000
_SHARED_IDS = ("/api/algorithm/", "/api/data-flow/")  # APIs whose ids are small sequential integers


def _is_id_key(key: str) -> bool:
    return bool(re.search(r"(^|_)ids?$", key, re.IGNORECASE) or re.search(r"[a-z]Ids?$", key))


def _off_shared(value: Any, mine: Set[int]) -> Any:
    """`value` moved beyond the suite's ids when the server would read it as a small id not in `mine`."""
    if isinstance(value, list):
        return [_off_shared(item, mine) for item in value]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return value
    try:
        number = int(value)  # as the server parses it: "١", " 7 ", "+7" and 7.0 are all 7
    except (ValueError, OverflowError):
        return value
    if isinstance(value, float) and number != value:
        return value
    if 0 <= number < SHIFTED_BELOW and number not in mine:
        return type(value)(number + ID_OFFSET) if not isinstance(value, float) else float(number + ID_OFFSET)
    return value


def keep_off_other_tests_records(case: schemathesis.Case, mine: Set[int] = frozenset()) -> None:
    """Move integer ids the fuzzer did not create out of the range the other tests' records use."""
    if not case.operation.path.startswith(_SHARED_IDS):
        return
    for container in (case.path_parameters, case.query, case.body):
        if isinstance(container, dict):
            for key in [k for k in container if _is_id_key(str(k))]:
                container[key] = _off_shared(container[key], mine)


FUZZ_CONFIG = {
    "generation": {"max-examples": FUZZ_EXAMPLES, "deterministic": True},
    # the coverage phase adds hundreds of boundary cases per operation: too many for a CI budget
    "phases": {"coverage": {"enabled": False}},
    "headers": {"Authorization": TOKEN},
    "operations": [
        # GasFlux's /health answers 503 by design when the service is degraded (the fuzzer's own 4xx
        # raise its error rate)
        {
            "include-path": "/health",
            "checks": {"not_a_server_error": {"expected-statuses": ["2XX", "3XX", "4XX", "503"]}},
        }
    ],
}


def _document(stack: StackInfo, service: str) -> dict[str, Any]:
    """The live document restricted to one API's operations (so each API is its own test)."""
    raw = httpx.get(f"{stack.bridge_url}/openapi.json", timeout=60).json()
    tag = SERVICES[service][0]
    paths = {}
    for path, item in raw["paths"].items():
        kept = {m: op for m, op in item.items() if m not in HTTP_METHODS or tag in op.get("tags", [])}
        if set(kept) & HTTP_METHODS:
            paths[path] = kept
    raw["paths"] = paths
    return raw


def _schema(stack: StackInfo, raw: dict[str, Any]) -> Any:
    config = schemathesis.Config.from_dict({**FUZZ_CONFIG, "base-url": stack.bridge_url})
    return schemathesis.openapi.from_dict(raw, config=config)


@pytest.fixture(scope="module", params=list(SERVICES))
def api_schema(request: pytest.FixtureRequest, stack: StackInfo) -> Any:
    raw = _document(stack, request.param)
    pending = PENDING_FUZZ.get(request.param, {})
    for path, item in raw["paths"].items():
        for method in [m for m in item if f"{m.upper()} {path}" in pending]:
            del item[method]
    return _schema(stack, raw)


fuzzed = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy schema reads `node._nodeid`, which pytest 9.2 replaced by `nodeid`."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@fuzzed.parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck), derandomize=True)
def test_fuzzing_finds_no_server_error(case: schemathesis.Case) -> None:
    keep_off_other_tests_records(case)
    case.call_and_validate(checks=CHECKS, headers={"Authorization": TOKEN}, timeout=60)


# APIs whose documents imply a stateful flow; the final state is no pending entry.
STATEFUL = ["000", "004"]
PENDING_STATEFUL: dict[str, str] = {}


def _links(raw: dict[str, Any]) -> list[str]:
    return [
        name
        for item in raw["paths"].values()
        for method, op in item.items()
        if method in HTTP_METHODS
        for response in op.get("responses", {}).values()
        for name in response.get("links", {})
    ]


def _created_ids(response: StResponse) -> set[int]:
    """Integer ids in an answer (DataFlow's data.id, the offline platform's taskId): the fuzzer's own."""
    try:
        body = response.json()
    except Exception:
        return set()
    found = set()
    for holder in (body, body.get("data") if isinstance(body, dict) else None):
        if isinstance(holder, dict):
            found |= {v for k, v in holder.items() if k in {"id", "taskId"} and type(v) is int}
    return found


@pytest.mark.parametrize(
    "service",
    [
        pytest.param(name, marks=pytest.mark.xfail(reason=PENDING_STATEFUL[name], strict=False))
        if name in PENDING_STATEFUL
        else name
        for name in STATEFUL
    ],
)
def test_stateful_fuzzing_follows_the_documents_links(stack: StackInfo, service: str) -> None:
    raw = _document(stack, service)
    assert _links(raw), f"{service}: the document implies a flow, but its OpenAPI declares no links"
    schema = _schema(stack, raw)

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            self.mine: set[int] = set()

        def before_call(self, case: schemathesis.Case) -> None:
            keep_off_other_tests_records(case, self.mine)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": {"Authorization": TOKEN}, "timeout": 60}

        def after_call(self, response: StResponse, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            self.mine |= _created_ids(response)

        def validate_response(self, response: StResponse, case: schemathesis.Case, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Machine.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
