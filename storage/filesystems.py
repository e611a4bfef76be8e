"""Job files through fsspec: one root URL (local folder, s3://, webhdfs://) shared by bridge and workers.

Every storage path is built here from validated parts, so no router or flow joins paths itself or trusts
a client-supplied path. Layout under the root:

    uploads/<api>/<upload id>/<file name>    what a legacy client uploaded
    runs/<flow run id>/...                   what a flow run wrote (result files, result.json)
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Any
from urllib.parse import unquote

import fsspec
from fsspec.core import url_to_fs

RESULT_SUMMARY = "result.json"
_SAFE_PART = re.compile(r"^[\w\-. ()\[\]+@=,\u00a0-\uffff]+$")


class UnsafePathError(ValueError):
    """A client-supplied path tried to leave its folder (traversal, absolute, encoded, control chars)."""


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the folder that was listed, with forward slashes
    size: int
    modified: float | None


def safe_part(part: str) -> str:
    """One path component, accepted only if it cannot escape or alias its parent."""
    decoded = part
    for _ in range(3):  # double- and triple-encoded `%2e%2e%2f` must fail as well
        decoded = unquote(decoded)
    if (
        not part
        or part in {".", ".."}
        or decoded in {".", ".."}
        or any(sep in decoded for sep in ("/", "\\", "\x00"))
        or decoded != part
        or not _SAFE_PART.match(part)
    ):
        raise UnsafePathError(f"unsafe path component: {part!r}")
    return part


def safe_relpath(relpath: str) -> str:
    """A client-supplied relative path (e.g. from a download URL), validated component by component."""
    if relpath.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relpath):
        raise UnsafePathError(f"absolute path not allowed: {relpath!r}")
    parts = [p for p in relpath.split("/") if p != ""]
    if not parts:
        raise UnsafePathError("empty path")
    return "/".join(safe_part(p) for p in parts)


def upload_relpath(api: str, upload_id: str, *filename: str) -> str:
    """An upload's folder (or a file in it) relative to the storage root: what flow parameters carry, since
    a worker may reach the same storage under another root."""
    return "/".join(safe_part(part) for part in ("uploads", api, upload_id, *filename))


class Storage:
    """A root folder on any fsspec file system, with the project's path layout."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.fs, root = url_to_fs(url, **(storage_options or {}))
        self.root = root.rstrip("/") or "/"
        self.protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        if self.protocol in {"file", "local"}:
            self.fs.makedirs(self.root, exist_ok=True)

    # --- path layout -------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *(safe_relpath(p) for p in parts))

    def upload_dir(self, api: str, upload_id: str) -> str:
        return self.path("uploads", api, upload_id)

    def upload_path(self, api: str, upload_id: str, filename: str) -> str:
        return self.path("uploads", api, upload_id, filename)

    def run_dir(self, run_id: str) -> str:
        return self.path("runs", str(run_id))

    def run_path(self, run_id: str, relpath: str) -> str:
        return posixpath.join(self.run_dir(run_id), safe_relpath(relpath))

    def full_url(self, path: str) -> str:
        """A URL a worker on another machine can open with the same storage options."""
        return path if self.protocol in {"file", "local"} else f"{self.protocol}://{path}"

    # --- file operations ---------------------------------------------------------------------------
    def open(self, path: str, mode: str = "rb") -> IO[Any]:
        if "w" in mode and self.protocol in {"file", "local"}:
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        return self.fs.open(path, mode)

    def write_bytes(self, path: str, data: bytes) -> None:
        with self.open(path, "wb") as handle:
            handle.write(data)

    def read_bytes(self, path: str) -> bytes:
        with self.open(path, "rb") as handle:
            return handle.read()

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def is_file(self, path: str) -> bool:
        return bool(self.fs.isfile(path))

    def size(self, path: str) -> int:
        return int(self.fs.size(path))

    def delete(self, path: str) -> int:
        """Remove a file or folder; returns bytes freed (0 if it was not there)."""
        if not self.fs.exists(path):
            return 0
        freed = sum(f.size for f in self.list_files(path)) if self.fs.isdir(path) else self.size(path)
        self.fs.rm(path, recursive=True)
        return freed

    def list_files(self, folder: str) -> list[StoredFile]:
        """Every file below `folder`, sorted, with paths relative to it."""
        if not self.fs.exists(folder):
            return []
        found = self.fs.find(folder, detail=True)
        prefix = folder.rstrip("/") + "/"
        files = []
        for name, info in found.items():
            if info.get("type") != "file":
                continue
            rel = name[len(prefix) :] if name.startswith(prefix) else posixpath.basename(name)
            files.append(StoredFile(rel, int(info.get("size") or 0), _mtime(info)))
        return sorted(files, key=lambda f: f.path)

    # --- run results -------------------------------------------------------------------------------
    def write_result(self, run_id: str, relpath: str, data: bytes) -> str:
        path = self.run_path(run_id, relpath)
        self.write_bytes(path, data)
        return path

    def write_summary(self, run_id: str, summary: dict[str, Any]) -> None:
        """The small JSON a flow leaves beside its files, which the bridge reads back as the job's result."""
        self.write_result(
            run_id, RESULT_SUMMARY, json.dumps(summary, default=str, ensure_ascii=False).encode()
        )

    def read_summary(self, run_id: str) -> dict[str, Any] | None:
        path = self.run_path(run_id, RESULT_SUMMARY)
        if not self.exists(path):
            return None
        return json.loads(self.read_bytes(path))

    def list_results(self, run_id: str) -> list[StoredFile]:
        return [f for f in self.list_files(self.run_dir(run_id)) if f.path != RESULT_SUMMARY]

    def delete_run(self, run_id: str) -> int:
        return self.delete(self.run_dir(run_id))

    def iter_chunks(self, path: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        with self.open(path, "rb") as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def local_path(self, path: str) -> str | None:
        """The OS path when storage is a local folder (lets the bridge hand files to the OS directly)."""
        return path if self.protocol in {"file", "local"} else None


def _mtime(info: dict[str, Any]) -> float | None:
    value = info.get("mtime") or info.get("LastModified") or info.get("modificationTime")
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    value = float(value)
    return value / 1000 if value > 1e11 else value  # WebHDFS reports milliseconds


def open_url(url: str, mode: str = "rb", **storage_options: Any) -> IO[Any]:
    """Open any fsspec URL (used for inputs that live outside the project's storage root)."""
    return fsspec.open(url, mode, **storage_options).open()


@lru_cache(maxsize=8)
def _cached_storage(url: str, options_json: str) -> Storage:
    return Storage(url, json.loads(options_json))


def get_storage() -> Storage:
    """The project's storage, from settings; cached per process."""
    from flowbridge.settings import get_settings

    settings = get_settings()
    return _cached_storage(
        settings.effective_storage_url, json.dumps(settings.storage_options, sort_keys=True)
    )
