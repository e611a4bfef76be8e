"""The caller's file systems of the offline platform (001): HDFS through WebHDFS, CEPH through S3.

This is the only module that knows HDFS and CEPH specifics. It turns the document's `fileSystemInfo`
into a client with bounded connect/read timeouts and translates every client error into one of a few
`RemoteError`s whose message names the problem (and never a secret), so a task can tell a transient
failure (retry) from a permanent one (fail at once with that message).
"""

from __future__ import annotations

import io
import posixpath
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any, ClassVar, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

COPY_CHUNK = 1024 * 1024
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-.]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class FileSystemType(StrEnum):
    HDFS = "HDFS"
    CEPH = "CEPH"


# --- errors ---------------------------------------------------------------------------------------------
class RemoteError(Exception):
    """A problem with the caller's file system; `transient` ones are worth a retry."""

    transient: ClassVar[bool] = False


class RemoteUnreachable(RemoteError):
    transient = True


class RemoteAuthError(RemoteError):
    """The file system rejected the credentials."""


class RemoteNotFound(RemoteError):
    """The input path (or bucket) does not exist."""


class RemoteNotWritable(RemoteError):
    """The output path cannot be written (permission, missing bucket, existing output)."""


# --- the document's fileSystemInfo ----------------------------------------------------------------------
class FileSystemInfo(BaseModel):
    """`inputFileSystemInfo` / `outputFileSystemInfo` with exactly the document's field names.

    HDFS: host/port of the namenode's HTTP (WebHDFS) server, spareHost the fallback namenode (`host` or
    `host:port`), userName the HDFS user, password an optional delegation token. CEPH: host/port of the
    S3 gateway, userName the access key, password the secret key, paths written `bucket#path`.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    fileSystemType: FileSystemType = Field(description="HDFS or CEPH.")
    host: str = Field(min_length=1, max_length=253, description="Namenode HTTP host (HDFS) or CEPH host.")
    port: int = Field(ge=1, le=65535, description="Namenode HTTP port (HDFS) or CEPH port.")
    spareHost: str | None = Field(None, description="HDFS only: fallback namenode, `host` or `host:port`.")
    userName: str | None = Field(None, min_length=1, max_length=256, description="HDFS user / CEPH key.")
    password: SecretStr | None = Field(
        None, description="CEPH secret key (HDFS: optional delegation token). Never echoed or logged."
    )
    inputPath: str | None = Field(None, description="Input file or folder (CEPH: `bucket#path`).")
    outputPath: str | None = Field(None, description="Output folder (CEPH: `bucket#path`).")

    @field_validator("fileSystemType", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("host")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        if not _HOST.match(value):
            raise ValueError("must be a bare host name or IP address (no scheme, port or path)")
        return value

    @field_validator("spareHost")
    @classmethod
    def _spare(cls, value: str | None) -> str | None:
        if not value:
            return None
        host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
        if not _HOST.match(host) or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise ValueError("must be `host` or `host:port`")
        return value

    @field_validator("inputPath", "outputPath")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value or "\x00" in value or any(p == ".." for p in re.split(r"[/#]", value)):
            raise ValueError("must be a non-empty path without '..' or NUL")
        return value

    @model_validator(mode="after")
    def _complete(self) -> FileSystemInfo:
        if not self.userName:
            who = "the access key" if self.fileSystemType is FileSystemType.CEPH else "the HDFS user"
            raise ValueError(f"userName ({who}) is required")
        if self.fileSystemType is FileSystemType.CEPH:
            if not self.password or not self.password.get_secret_value():
                raise ValueError("password (the CEPH secret key) is required")
            if self.spareHost:
                raise ValueError("spareHost applies to HDFS only")
            for path in (self.inputPath, self.outputPath):
                if path is not None:
                    split_ceph_path(path)
        return self

    def public(self) -> dict[str, Any]:
        """Everything but the secret: safe for the metadata DB, flow parameters and logs."""
        return self.model_dump(mode="json", exclude={"password"}, exclude_none=True)

    def secret(self) -> str | None:
        return self.password.get_secret_value() if self.password else None

    @classmethod
    def resolve(cls, public: dict[str, Any], secret: str | None) -> FileSystemInfo:
        """The stored public part plus the secret, as a worker rebuilds it; errors never echo the input."""
        try:
            return cls.model_validate({**public, "password": secret})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'info'}: {e['msg']}" for e in exc.errors()
            )
            raise RemoteError(f"invalid file system info: {problems}") from None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self, path: str | None = None) -> str:
        """A human name of the location for messages: type, endpoint, path — never a credential."""
        where = f" {path}" if path else ""
        return f"{self.fileSystemType.value} {self.endpoint}{where}"


def split_ceph_path(value: str) -> tuple[str, str]:
    """`bucket#path` into (bucket, key prefix without leading or trailing slashes)."""
    bucket, sep, path = value.partition("#")
    if not sep:
        raise ValueError("CEPH paths are written `bucket#path`")
    if not _BUCKET.match(bucket):
        raise ValueError(f"invalid bucket name {bucket!r}")
    return bucket, path.strip("/")


# --- clients --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteFile:
    path: str  # the file system's own path (what `read_into` takes)
    relpath: str  # relative to the input path; the file's name when the input is one file
    size: int


class RemoteFiles(Protocol):
    info: FileSystemInfo

    def list_input(self, path: str) -> list[RemoteFile]: ...

    def read_into(self, path: str, target: IO[bytes]) -> int: ...

    def output_dir(self, path: str, task_id: int) -> str: ...

    def is_empty(self, folder: str) -> bool: ...

    def write(self, path: str, source: IO[bytes]) -> None: ...

    def probe_writable(self, folder: str) -> None: ...

    def delete(self, path: str) -> None: ...


def connect(info: FileSystemInfo, *, timeout: float, attempts: int = 2) -> RemoteFiles:
    """A client for `info` (which carries its secret) with bounded timeouts and client-level retries."""
    if info.fileSystemType is FileSystemType.CEPH:
        return CephFiles(info, timeout=timeout, attempts=attempts)
    return HdfsFiles(info, timeout=timeout)


class CephFiles:
    """CEPH through its S3 gateway with s3fs, path-style addressing at http://host:port."""

    def __init__(self, info: FileSystemInfo, *, timeout: float, attempts: int) -> None:
        import s3fs

        self.info = info
        self.fs = s3fs.S3FileSystem(
            key=info.userName,
            secret=info.secret(),
            client_kwargs={"endpoint_url": info.endpoint, "region_name": "us-east-1"},
            config_kwargs={
                "s3": {"addressing_style": "path"},
                "connect_timeout": timeout,
                "read_timeout": timeout,
                "retries": {"max_attempts": attempts, "mode": "standard"},
            },
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        self.fs.retries = 1  # botocore retries already; s3fs's own loop would multiply the wait

    def _full(self, path: str) -> str:
        bucket, key = split_ceph_path(path)
        return f"{bucket}/{key}" if key else bucket

    def list_input(self, path: str) -> list[RemoteFile]:
        full = self._full(path)
        with _translated(self.info, path, writing=False):
            if self.fs.isfile(full):
                return [RemoteFile(full, posixpath.basename(full), int(self.fs.size(full)))]
            found = self.fs.find(full, detail=True)
        if not found:
            raise RemoteNotFound(f"input path {path} does not exist on {self.info.describe()}")
        prefix = full.rstrip("/") + "/"
        files = [
            RemoteFile(name, name[len(prefix) :], int(meta.get("size") or 0))
            for name, meta in found.items()
            if meta.get("type") == "file" and name.startswith(prefix) and not name.endswith("/")
        ]
        return sorted(files, key=lambda f: f.relpath)

    def read_into(self, path: str, target: IO[bytes]) -> int:
        with _translated(self.info, path, writing=False), self.fs.open(path, "rb") as source:
            return _copy(source, target)

    def output_dir(self, path: str, task_id: int) -> str:
        return posixpath.join(self._full(path), str(task_id))

    def is_empty(self, folder: str) -> bool:
        with _translated(self.info, folder, writing=True):
            return not self.fs.find(folder)  # a missing bucket raises here, a wrong key too

    def write(self, path: str, source: IO[bytes]) -> None:
        with _translated(self.info, path, writing=True), self.fs.open(path, "wb") as target:
            _copy(source, target)

    def delete(self, path: str) -> None:
        with _translated(self.info, path, writing=True):
            self.fs.rm(path)

    def probe_writable(self, folder: str) -> None:
        _probe(self, folder)


class HdfsFiles:
    """HDFS through WebHDFS with the `hdfs` package; spareHost is tried when host does not answer."""

    def __init__(self, info: FileSystemInfo, *, timeout: float) -> None:
        import hdfs

        self.info = info
        urls = [info.endpoint]
        if info.spareHost:
            spare = info.spareHost if ":" in info.spareHost else f"{info.spareHost}:{info.port}"
            urls.append(f"http://{spare}")
        url = ";".join(urls)  # the hdfs client fails over between ';'-separated namenodes
        token = info.secret()
        if token:
            self.client: Any = hdfs.TokenClient(url, token, timeout=(timeout, timeout))
        else:
            self.client = hdfs.InsecureClient(url, user=info.userName, timeout=(timeout, timeout))

    def list_input(self, path: str) -> list[RemoteFile]:
        with _translated(self.info, path, writing=False):
            status = self.client.status(path, strict=False)
            if status is None:
                raise RemoteNotFound(f"input path {path} does not exist on {self.info.describe()}")
            root = self.client.resolve(path)
            if status["type"] == "FILE":
                return [RemoteFile(root, posixpath.basename(root), int(status["length"]))]
            files = []
            for folder, _dirs, names in self.client.walk(root, status=True):
                for name, meta in names:
                    full = posixpath.join(folder[0], name)
                    files.append(RemoteFile(full, full[len(root.rstrip("/")) + 1 :], int(meta["length"])))
        return sorted(files, key=lambda f: f.relpath)

    def read_into(self, path: str, target: IO[bytes]) -> int:
        with _translated(self.info, path, writing=False), self.client.read(path) as source:
            return _copy(source, target)

    def output_dir(self, path: str, task_id: int) -> str:
        return posixpath.join(path, str(task_id))

    def is_empty(self, folder: str) -> bool:
        with _translated(self.info, folder, writing=True):
            status = self.client.status(folder, strict=False)
            return status is None or (status["type"] == "DIRECTORY" and not self.client.list(folder))

    def write(self, path: str, source: IO[bytes]) -> None:
        with _translated(self.info, path, writing=True):
            self.client.write(path, data=iter(lambda: source.read(COPY_CHUNK), b""), overwrite=True)

    def delete(self, path: str) -> None:
        with _translated(self.info, path, writing=True):
            self.client.delete(path, recursive=True)

    def probe_writable(self, folder: str) -> None:
        _probe(self, folder)


PROBE_FILE = ".flowbridge-write-test"


def _probe(files: RemoteFiles, folder: str) -> None:
    """Write and remove an empty file, so an unwritable output fails before the algorithm runs."""
    probe = posixpath.join(folder, PROBE_FILE)
    files.write(probe, io.BytesIO(b""))
    files.delete(probe)


def _copy(source: IO[bytes], target: IO[bytes]) -> int:
    copied = 0
    while chunk := source.read(COPY_CHUNK):
        target.write(chunk)
        copied += len(chunk)
    return copied


# --- error translation ----------------------------------------------------------------------------------
_AUTH_WORDS = ("signature", "accesskeyid", "access key", "authentication", "credential", "token")


@contextmanager
def _translated(info: FileSystemInfo, path: str, *, writing: bool) -> Iterator[None]:
    """Every client error of either file system as a RemoteError naming the location."""
    try:
        yield
    except RemoteError:
        raise
    except Exception as exc:
        raise translate(exc, info, path, writing=writing) from exc


def translate(exc: BaseException, info: FileSystemInfo, path: str, *, writing: bool) -> RemoteError:
    where = info.describe(path)
    text = _message(exc)
    lowered = text.lower()
    kind = _classify(exc, lowered)
    if kind == "unreachable":
        return RemoteUnreachable(f"cannot reach {info.describe()}: {text}")
    if kind == "auth" or (kind == "denied" and any(w in lowered for w in _AUTH_WORDS)):
        what = "access key / secret key" if info.fileSystemType is FileSystemType.CEPH else "credentials"
        return RemoteAuthError(f"{info.describe()} rejected the {what}: {text}")
    if kind == "denied":
        verb = "write to" if writing else "read"
        return (RemoteNotWritable if writing else RemoteAuthError)(f"not allowed to {verb} {where}: {text}")
    if kind == "missing":
        if writing:
            return RemoteNotWritable(f"cannot write to {where}: {text}")
        return RemoteNotFound(f"input path {path} does not exist on {info.describe()} ({text})")
    if kind == "busy":
        return RemoteUnreachable(f"{info.describe()} is busy: {text}")
    return (RemoteNotWritable if writing else RemoteError)(f"{where}: {type(exc).__name__}: {text}")


def _classify(exc: BaseException, lowered: str) -> str:
    import requests
    from botocore import exceptions as boto

    name = type(exc).__name__
    hdfs_exception = getattr(exc, "exception", None)
    if isinstance(
        exc,
        requests.ConnectionError
        | requests.Timeout
        | boto.EndpointConnectionError
        | boto.ConnectTimeoutError
        | boto.ReadTimeoutError
        | ConnectionError
        | TimeoutError,
    ) or name in {"ClientConnectorError", "ServerDisconnectedError", "ServerTimeoutError"}:
        return "unreachable"
    if hdfs_exception in {"RetriableException", "StandbyException"}:
        return "busy"
    if hdfs_exception in {"SecurityException", "InvalidToken"} or "authentication failure" in lowered:
        return "auth"
    if isinstance(exc, PermissionError) or hdfs_exception == "AccessControlException":
        return "denied"
    if isinstance(exc, FileNotFoundError) or hdfs_exception == "FileNotFoundException":
        return "missing"
    if hdfs_exception in {"FileAlreadyExistsException", "ParentNotDirectoryException"}:
        return "denied"
    if "slowdown" in lowered or "503" in lowered:
        return "busy"
    return "other"


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(text, bytes):  # the hdfs client passes a raw body when it is not JSON
        text = text.decode("utf-8", "replace")
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, RemoteError) and exc.transient
