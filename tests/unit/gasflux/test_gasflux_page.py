"""GET / serves GasFlux's web page from api_bridge/static.

After the routers moved one folder deeper (#12 step 1) the page's path still climbed one level from the
router, to api_bridge/routers/static, which does not exist: GET / raised instead of serving the page.
The e2e browser test shows it too, but only with the whole stack running.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api_bridge.pages import static_page
from storage.filesystems import UnsafePathError


def test_the_page_is_served() -> None:
    from api_bridge.routers.gasflux import endpoints

    app = FastAPI()
    app.include_router(endpoints.router)
    page = TestClient(app).get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.content == static_page("gasflux.html").read_bytes()
    assert b"<html" in page.content.lower()


@pytest.mark.parametrize("name", ["../app.py", "..", "sub/page.html", ""])
def test_a_static_page_is_named_by_its_bare_name_only(name: str) -> None:
    with pytest.raises(UnsafePathError):
        static_page(name)
