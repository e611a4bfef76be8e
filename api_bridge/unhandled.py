"""Unhandled errors end in an answer, never in a dropped connection.

Starlette's ServerErrorMiddleware (the outermost layer of every FastAPI app) sends the response of the
app's `Exception` handler — our per-API envelope, `errors.install` — and then re-raises the exception "so
servers can log it". Uvicorn, seeing an exception after the response started, closes the transport:
the client gets its envelope but loses the keep-alive connection, and a client that pipelines or reuses
connections sees a reset. `GuardedFastAPI` wraps the whole middleware stack in `KeepConnection`, which
swallows an exception once a complete response went out (the handler logged it with its traceback), sends
a last-resort envelope when nothing went out (the handler itself failed), and re-raises only when a
response was cut half-way, where closing the connection is the only honest signal left.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("flowbridge.errors")

# Set on the request scope by the `Exception` handler once it has logged the exception it answers.
LOGGED_KEY = "flowbridge.logged_exception"
# Marks every answer to an unhandled exception, whatever the API's envelope (000 and 003 answer HTTP 200),
# so monitoring and the fuzzing tests can tell a server error from a documented failure code.
ERROR_HEADER = "X-Flowbridge-Error"
ERROR_VALUE = "internal"


class KeepConnection:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def tracked(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if scope.get(LOGGED_KEY) is not exc:
                log.error("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
            if finished:
                return
            if started:
                raise  # a response cut half-way: closing the connection is the only signal left
            await _last_resort(send)


async def _last_resort(send: Send) -> None:
    body = b'{"code": 500, "message": "internal error", "data": null}'
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (ERROR_HEADER.lower().encode(), ERROR_VALUE.encode()),
    ]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardedFastAPI(FastAPI):
    """A FastAPI app whose whole middleware stack, user middleware included, sits inside KeepConnection."""

    def build_middleware_stack(self) -> ASGIApp:
        return KeepConnection(super().build_middleware_stack())
