"""Answers every legacy API builds the same way: the {"code","message","data"} envelope and a stored file
sent as a download.

One place, so each router translates its domain answer with the same helpers instead of its own copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from storage.filesystems import Storage


def code_message_data(code: int, message: str, data: Any = None) -> JSONResponse:
    """The {"code","message","data"} envelope (GasFlux, DataFlow), with `code` as the HTTP status too."""
    return JSONResponse({"code": int(code), "message": message, "data": data}, status_code=int(code))


def stored_file(
    storage: Storage,
    path: str,
    filename: str,
    media_type: str,
    *,
    headers: dict[str, str] | None = None,
    disposition: str = "attachment",
    streamed_disposition: str | None = None,
) -> Response:
    """A stored file as a download: served from disk when storage is local (ranges, sendfile), streamed in
    chunks from object storage otherwise. `streamed_disposition` replaces the streamed answer's
    Content-Disposition (default `attachment; filename="<filename>"`), e.g. for RFC 5987 encoded names."""
    return file_or_stream(
        storage.local_path(path),
        lambda: storage.iter_chunks(path),
        filename,
        media_type,
        headers=headers,
        disposition=disposition,
        streamed_disposition=streamed_disposition,
    )


def file_or_stream(
    local: str | None,
    chunks: Callable[[], Iterator[bytes]],
    filename: str,
    media_type: str,
    *,
    headers: dict[str, str] | None = None,
    disposition: str = "attachment",
    streamed_disposition: str | None = None,
) -> Response:
    """`local` handed to the OS when the file is on local disk, else `chunks()` streamed (object storage)."""
    headers = dict(headers or {})
    if local:
        return FileResponse(
            local,
            media_type=media_type,
            filename=filename,
            headers=headers,
            content_disposition_type=disposition,
        )
    headers["Content-Disposition"] = streamed_disposition or f'{disposition}; filename="{filename}"'
    return StreamingResponse(chunks(), media_type=media_type, headers=headers)
