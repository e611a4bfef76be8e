"""The shared body reader turns every malformed body into BadBody (the APIs' documented 400), never a 500."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from api_bridge.requests import BadBody, BodyTooLarge, read_body


def _request(body: bytes, content_type: str = "application/json") -> Request:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(b"content-type", content_type.encode())],
    }
    return Request(scope, receive)


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": ' + b"1" * 5000 + b"}",  # longer than Python converts to int
        b"[" * 100_000,  # deeper than the parser recurses
        b'{"a": ',  # not JSON
        b"\xff\xfe{}",  # not UTF-8
        b"[1, 2]",  # JSON, but not an object
    ],
)
def test_malformed_json_is_a_bad_body(body: bytes) -> None:
    with pytest.raises(BadBody):
        asyncio.run(read_body(_request(body), max_bytes=1_000_000))


def test_too_large_stays_too_large() -> None:
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body(_request(b'{"a": "' + b"x" * 2000 + b'"}'), max_bytes=100))


def test_a_good_body_is_read() -> None:
    body = asyncio.run(read_body(_request(b'{"id": 12, "name": "x"}'), max_bytes=1000))
    assert body.fields == {"id": "12", "name": "x"}
