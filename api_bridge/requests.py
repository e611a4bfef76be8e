"""Reading legacy request parameters and uploads the way old clients send them.

Legacy clients post JSON, urlencoded or multipart bodies, or put parameters in the query string; they
all end up in one dict here. Uploads are parsed while streaming, counted against a byte limit as they
arrive (never trusting Content-Length alone), spooled to a temporary file rather than memory, and
copied into storage.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request

from storage.filesystems import Storage

_DIGITS = re.compile(r"[0-9]+")


def positive_digits(raw: str | None) -> str | None:
    """The ASCII digits of a positive integer id as the client wrote it, without leading zeros; None for
    anything else. Kept as text so the caller can refuse an id longer than its column before int()."""
    digits = (raw or "").strip()
    if not _DIGITS.fullmatch(digits) or not digits.strip("0"):
        return None
    return digits.lstrip("0")


def canonical_uuid(raw: str) -> str | None:
    """The dashed lowercase form of a UUID id (work_id, task_id), or None when it is not one."""
    try:
        return str(uuid.UUID(raw.strip()))
    except (ValueError, AttributeError):
        return None


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the {limit} byte limit")
        self.limit = limit


class BadBody(ValueError):
    """The body could not be parsed as the content type it claims."""


@dataclass
class Body:
    fields: dict[str, str]
    files: dict[str, UploadFile]

    async def close(self) -> None:
        for upload in self.files.values():
            await upload.close()


async def _limited(request: Request, limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge(limit)
        yield chunk


async def read_body(request: Request, *, max_bytes: int, max_files: int = 4, max_fields: int = 100) -> Body:
    """Query parameters plus whatever the body carries (JSON object, form fields, files)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(max_bytes)
    fields: dict[str, str] = {k: v for k, v in request.query_params.items()}
    files: dict[str, UploadFile] = {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "multipart/form-data":
            parser = MultiPartParser(
                request.headers, _limited(request, max_bytes), max_files=max_files, max_fields=max_fields
            )
            form = await parser.parse()
        elif content_type == "application/x-www-form-urlencoded":
            form = await FormParser(request.headers, _limited(request, max_bytes)).parse()
        else:
            form = None
            raw = b"".join([chunk async for chunk in _limited(request, max_bytes)])
            if raw.strip():
                data = json.loads(raw)
                if not isinstance(data, dict):
                    raise BadBody("JSON body must be an object")
                fields.update({k: _as_text(v) for k, v in data.items()})
    except (BodyTooLarge, BadBody):
        raise
    except (MultiPartException, UnicodeDecodeError) as exc:
        raise BadBody(f"malformed request body: {exc}") from exc
    except ValueError as exc:  # not JSON, or a number longer than Python converts (4300 digits)
        raise BadBody(f"malformed request body: {exc}") from exc
    except RecursionError as exc:  # a small body can nest JSON arrays deeper than the parser recurses
        raise BadBody("malformed request body: JSON nested too deeply") from exc
    if form is not None:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[key] = value
            else:
                fields[key] = value
    return Body(fields, files)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


def strict_json(raw: bytes | str) -> Any:
    """JSON as RFC 8259 has it: no NaN/Infinity, no number that overflows a double (stored or sent on,
    they would make invalid JSON for the database or Prefect)."""
    return json.loads(raw, parse_constant=_no_constant, parse_float=_finite)


async def read_json_object(request: Request, *, max_bytes: int, required: bool = True) -> dict[str, Any]:
    """A body that must be one JSON object (strict JSON); an empty body is {} unless `required`.

    Raises BadBody naming the problem, for the router to put in its own envelope. The body is read in
    chunks and given up past `max_bytes`, so an oversized one never sits in memory whole."""
    too_large = BadBody(f"request body larger than {max_bytes} bytes")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            raise too_large
    if not raw.strip():
        if required:
            raise BadBody("the request body must be a JSON object")
        return {}
    try:
        body = strict_json(bytes(raw))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadBody(f"body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadBody("the request body must be a JSON object")
    return body  # fields the API does not use are ignored, whatever they hold


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def save_upload(upload: UploadFile, storage: Storage, path: str) -> int:
    """Copy a spooled upload into storage; returns its size in bytes."""
    upload.file.seek(0)
    with storage.open(path, "wb") as target:
        shutil.copyfileobj(upload.file, target, length=1024 * 1024)
    upload.file.seek(0, 2)
    return int(upload.file.tell())
