"""operationIds are unique and stable, even for a route declared for several methods (FastAPI's default
gives all of that route's operations one id, ending in whichever method its set yields first)."""

from __future__ import annotations

from fastapi import APIRouter

from api_bridge.app import Bridge, operation_id


def _operation_ids() -> dict[tuple[str, str], str]:
    app = Bridge(generate_unique_id_function=operation_id)
    router = APIRouter()

    @router.api_route("/legacy", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def legacy() -> None: ...

    @router.get("/item/{item_id}")
    def item(item_id: int) -> None: ...

    app.include_router(router)
    return {(m, p): op["operationId"] for p, ops in app.openapi()["paths"].items() for m, op in ops.items()}


def test_every_method_of_a_multi_method_route_gets_its_own_operation_id() -> None:
    ids = _operation_ids()
    for method in ("get", "post", "put", "delete", "patch"):
        assert ids[(method, "/legacy")] == f"legacy_legacy_{method}"
    assert len(set(ids.values())) == len(ids)


def test_single_method_routes_keep_fastapis_default_id() -> None:
    assert _operation_ids()[("get", "/item/{item_id}")] == "item_item__item_id__get"
