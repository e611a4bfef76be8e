"""Moving an offline task's (001) files between the caller's HDFS/CEPH and project storage.

Each task is idempotent (a retry starts its copy over) and retries only transient errors (host not
answering, a busy namenode); wrong keys, a missing input or an unwritable output fail at once with the
`RemoteError` message naming the problem. Credentials are resolved here, inside the worker, from the
Prefect Secret block whose name is all the flow run carries.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from flowbridge.settings import get_settings
from storage.filesystems import UnsafePathError, get_storage, safe_relpath, upload_relpath
from storage.offline.remote import (
    FileSystemInfo,
    RemoteError,
    RemoteFiles,
    RemoteNotFound,
    RemoteNotWritable,
    connect,
)
from tasks.retries import retry_if_transient

STAGING_API = "001"  # staged inputs live under uploads/001/<taskId>/, like other APIs' uploads
SCRATCH_PREFIX = "work/"  # a job type's intermediates, not results
_UNSAFE_CHARS = re.compile(r"[^\w\-. ()\[\]+@=,\u00a0-\uffff]")


_clients: dict[str, RemoteFiles] = {}  # per flow-run process; never serialized
_secrets: dict[str, dict[str, str]] = {}


class StagedInput(BaseModel):
    folder: str  # storage-relative
    files: list[str]  # relative to `folder`
    bytes: int


def secret_for(block: str | None, side: str) -> str | None:
    """The `side` ("input"/"output") secret from the task's Secret block, resolved in the worker."""
    if not block:
        return None
    if block not in _secrets:
        from prefect.blocks.system import Secret

        try:
            stored = Secret.load(block).get()
        except ValueError:  # Prefect's "Unable to find block document"
            gone = "the task's credentials are gone (the task was cancelled or has ended)"
            raise RemoteError(gone) from None
        _secrets[block] = json.loads(stored) if isinstance(stored, str) else dict(stored)
    return _secrets[block].get(side)


def open_remote(info: dict[str, Any], block: str | None, side: str) -> RemoteFiles:
    """One client per file system and credentials within a flow-run process (input and output usually
    share one): building an S3 client and reading the Secret block cost more than a small transfer."""
    full = FileSystemInfo.resolve(info, secret_for(block, side))
    endpoint = full.model_dump(exclude={"inputPath", "outputPath", "password"}, mode="json")
    key = hashlib.sha256(json.dumps([endpoint, full.secret()], sort_keys=True).encode()).hexdigest()
    if key not in _clients:
        _clients[key] = connect(full, timeout=get_settings().remote_timeout_seconds)
    return _clients[key]


def local_relpath(relpath: str) -> str:
    """A remote file name as a storage path: characters storage refuses become '_'."""
    parts = [_UNSAFE_CHARS.sub("_", p) for p in relpath.split("/") if p not in {"", ".", ".."}]
    try:
        return safe_relpath("/".join(parts))
    except UnsafePathError:
        return "input"


@task(name="check_output", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def check_output(task_id: int, output_info: dict[str, Any], credentials: str | None) -> str:
    """Fail before any work when the output cannot be written or another task's output is there."""
    remote = open_remote(output_info, credentials, "output")
    target = remote.output_dir(output_info["outputPath"], task_id)
    if not remote.is_empty(target):
        raise RemoteNotWritable(
            f"output folder {target} on {remote.info.describe()} already exists and is not empty; "
            "refusing to overwrite another task's output"
        )
    remote.probe_writable(target)
    get_run_logger().info("output folder %s on %s is writable", target, remote.info.describe())
    return target


@task(name="stage_input", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def stage_input(task_id: int, input_info: dict[str, Any], credentials: str | None) -> StagedInput:
    """Copy the input file, or every file of the input folder, into storage."""
    remote = open_remote(input_info, credentials, "input")
    path = input_info["inputPath"]
    files = remote.list_input(path)
    if not files:
        raise RemoteNotFound(f"input folder {path} on {remote.info.describe()} holds no files")
    storage = get_storage()
    folder = storage.upload_dir(STAGING_API, str(task_id))
    storage.delete(folder)
    staged, total = [], 0
    for remote_file in files:
        relpath = local_relpath(remote_file.relpath)
        with storage.open(storage.upload_path(STAGING_API, str(task_id), relpath), "wb") as target:
            total += remote.read_into(remote_file.path, target)
        staged.append(relpath)
    where = remote.info.describe(path)
    get_run_logger().info("staged %d file(s), %d bytes, from %s", len(staged), total, where)
    return StagedInput(folder=upload_relpath(STAGING_API, str(task_id)), files=staged, bytes=total)


@task(name="publish_output", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def publish_output(
    task_id: int, run_id: str, output_info: dict[str, Any], credentials: str | None
) -> list[str]:
    """Copy every result file of the job type's run to outputPath/<taskId>/ (overwriting only this task's
    own files from an earlier attempt)."""
    remote = open_remote(output_info, credentials, "output")
    target = remote.output_dir(output_info["outputPath"], task_id)
    storage = get_storage()
    produced = storage.list_files(storage.run_dir(run_id))
    results = [f for f in produced if not f.path.startswith(SCRATCH_PREFIX)]
    written = []
    for result in results:
        destination = posixpath.join(target, result.path)
        with storage.open(storage.run_path(run_id, result.path), "rb") as source:
            remote.write(destination, source)
        written.append(destination)
    get_run_logger().info("wrote %d result file(s) to %s", len(written), remote.info.describe(target))
    return written


def remove_staged_input(task_id: int) -> None:
    storage = get_storage()
    storage.delete(storage.upload_dir(STAGING_API, str(task_id)))
