"""002 GasFlux files in storage: where an upload goes, which result file a download URL names, and
whether the bridge can still write.

Every GasFlux path is built or checked here on top of storage.filesystems, so the router and its service
never join a path or trust a client-supplied one (issue #12). Layout (see storage/filesystems.py):

    <GASFLUX_UPLOAD_FOLDER>/<job id>/<cleaned file name>   the client's flight table and optional config
    runs/<flow run id>/...                                  what the flow run wrote
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath, PureWindowsPath

from flowbridge.settings import get_settings
from storage.filesystems import RESULT_SUMMARY, UnsafePathError, get_storage, safe_relpath

UPLOAD_API = "gasflux"  # the uploads/<api>/ folder used when GASFLUX_UPLOAD_FOLDER is unusable
RUNS = "runs"


# --- uploads -------------------------------------------------------------------------------------------
def upload_root() -> str:
    """GASFLUX_UPLOAD_FOLDER as a storage-relative folder (an absolute or unsafe one falls back)."""
    try:
        return safe_relpath(get_settings().gasflux_upload_folder.strip("/") or "uploads")
    except UnsafePathError:
        return posixpath.join("uploads", UPLOAD_API)


def upload_folder(job_id: str) -> str:
    """The storage-relative folder of one task's upload (what the task row keeps as `upload_dir`)."""
    return posixpath.join(upload_root(), safe_relpath(job_id))


def upload_relpath(folder: str, filename: str) -> str:
    """A file of an upload folder, relative to the storage root (what the flow gets as a parameter)."""
    return posixpath.join(folder, safe_relpath(filename))


def upload_path(folder: str, filename: str) -> str:
    """A file of an upload folder as a storage path (where the bridge writes it)."""
    return get_storage().path(folder, filename)


def delete_upload(folder: str) -> int:
    """Remove an upload folder (a failed submission leaves nothing behind); returns bytes freed."""
    storage = get_storage()
    return storage.delete(storage.path(folder))


def clean_name(filename: str, default: str) -> str:
    """The client's file name without folders or characters storage paths refuse (keeps the suffix)."""
    base = PureWindowsPath(PurePosixPath(filename or "").name).name
    base = re.sub(r"[^\w\-. ()]", "_", base).lstrip(". ") or default
    stem, suffix = os.path.splitext(base)
    return f"{stem[:150] or 'data'}{suffix[:10].lower()}"


def folder_urls() -> tuple[str, str]:
    """(upload folder, output folder) as URLs a worker on another machine could open (GET /config)."""
    storage = get_storage()
    return storage.full_url(storage.path(upload_root())), storage.full_url(storage.path(RUNS))


# --- result files and download URLs ---------------------------------------------------------------------
def download_relpath(job_id: str, relpath: str) -> str:
    """The `<job id>/<file in the run folder>` path the legacy download URLs and replies use."""
    return f"{job_id}/{relpath}"


def split_download(filename: str) -> tuple[str, str]:
    """A download URL's path as (job id, path inside the run folder); UnsafePathError if it could escape."""
    job_id, _, rest = safe_relpath(filename).partition("/")
    return job_id, rest


class Lookup(StrEnum):
    FOUND = "found"
    MISSING = "missing"
    DENIED = "denied"  # a link inside the run folder points out of it
    NOT_A_FILE = "not_a_file"


@dataclass(frozen=True)
class RunFile:
    """What a download URL names in a run folder, and how to hand it out."""

    outcome: Lookup
    name: str = ""
    path: str = ""  # storage path
    local: str | None = None  # OS path when storage is a local folder

    def chunks(self) -> Iterator[bytes]:
        return get_storage().iter_chunks(self.path)


def find_run_file(flow_run_id: str, relpath: str) -> RunFile:
    """A file of a run folder for download; never result.json, never outside the run folder."""
    if relpath == RESULT_SUMMARY:
        return RunFile(Lookup.MISSING)
    storage = get_storage()
    run_dir = storage.run_dir(flow_run_id)
    target = storage.run_path(flow_run_id, relpath) if relpath else run_dir
    local = storage.local_path(target)
    if local is not None and os.path.lexists(local) and not _inside(local, run_dir):
        return RunFile(Lookup.DENIED)
    if not storage.exists(target):
        return RunFile(Lookup.MISSING)
    if not storage.is_file(target):
        return RunFile(Lookup.NOT_A_FILE)
    return RunFile(Lookup.FOUND, PurePosixPath(relpath).name, target, local)


def _inside(local: str, folder: str) -> bool:
    """Whether `local`, links resolved, is `folder` or below it."""
    root = os.path.realpath(folder)
    real = os.path.realpath(local)
    return real == root or real.startswith(root + os.sep)


# --- write probe (/health) -----------------------------------------------------------------------------
@dataclass(frozen=True)
class StorageProbe:
    uploads_writable: bool
    outputs_writable: bool


def probe_storage() -> StorageProbe:
    """Whether the bridge can write where uploads and run results go (a file written and removed)."""
    storage = get_storage()

    def writable(path: str) -> bool:
        try:
            storage.write_bytes(path, b"ok")
            storage.delete(path)
            return True
        except Exception:
            return False

    return StorageProbe(
        uploads_writable=writable(storage.path(upload_root(), ".write-probe")),
        outputs_writable=writable(storage.path(RUNS, ".gasflux-write-probe")),
    )
