"""A WebHDFS protocol server for tests: no Hadoop can be installed on the test machines.

It speaks the subset of the WebHDFS REST API the `hdfs` package uses (GETFILESTATUS, LISTSTATUS,
GETHOMEDIRECTORY, OPEN with the namenode→datanode redirect, CREATE with its two-step redirect, MKDIRS,
DELETE), with Hadoop's JSON shapes and RemoteException errors, over a local folder. It is a protocol
double, not HDFS: permissions are one read-only prefix list, there are no blocks or replicas. The test in
tests/e2e/offline/test_offline_api.py marked by FLOWBRIDGE_TEST_WEBHDFS_URL runs the same client against a
real namenode.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

PREFIX = "/webhdfs/v1"


@dataclass
class WebHdfsServer:
    """Start with `start()`; `url` is what a client passes as host:port; `root` is the backing folder."""

    root: Path
    read_only: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 0
    calls: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> WebHdfsServer:
        self.root.mkdir(parents=True, exist_ok=True)
        owner = self

        class Handler(_Handler):
            server_state = owner

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="webhdfs", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def local(self, hdfs_path: str) -> Path:
        parts = [p for p in hdfs_path.split("/") if p not in {"", "."}]
        if ".." in parts:
            raise ValueError(f"bad path {hdfs_path}")
        return self.root.joinpath(*parts)

    def __enter__(self) -> WebHdfsServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: WebHdfsServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    # --- plumbing ----------------------------------------------------------------------------------
    def _parse(self) -> tuple[str, dict[str, str]]:
        split = urlsplit(self.path)
        if not split.path.startswith(PREFIX):
            return "", {}
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        return unquote(split.path[len(PREFIX) :]) or "/", params

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, exception: str, message: str) -> None:
        self._json(
            status,
            {
                "RemoteException": {
                    "exception": exception,
                    "javaClassName": f"org.apache.hadoop.{exception}",
                    "message": message,
                }
            },
        )

    def _redirect(self, params: dict[str, str]) -> None:
        query = "&".join(f"{k}={quote(v)}" for k, v in {**params, "datanode": "true"}.items())
        split = urlsplit(self.path)
        self.send_response(307)
        self.send_header("Location", f"http://{self.headers['Host']}{split.path}?{query}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in {b"\r\n", b"\n", b""}:
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _status(self, path: Path, suffix: str) -> dict[str, Any]:
        stat = path.stat()
        is_dir = path.is_dir()
        return {
            "pathSuffix": suffix,
            "type": "DIRECTORY" if is_dir else "FILE",
            "length": 0 if is_dir else stat.st_size,
            "owner": "hdfs",
            "group": "supergroup",
            "permission": "755" if is_dir else "644",
            "accessTime": int(stat.st_atime * 1000),
            "modificationTime": int(stat.st_mtime * 1000),
            "blockSize": 134217728,
            "replication": 0 if is_dir else 1,
            "childrenNum": len(list(path.iterdir())) if is_dir else 0,
            "fileId": stat.st_ino,
        }

    def _dispatch(self, method: str) -> None:
        state = self.server_state
        hdfs_path, params = self._parse()
        op = params.get("op", "").upper()
        user = params.get("user.name")
        state.calls.append((method, op, hdfs_path, user))
        if not hdfs_path:
            self._error(404, "FileNotFoundException", f"no WebHDFS endpoint at {self.path}")
            return
        try:
            local = state.local(hdfs_path)
        except ValueError as exc:
            self._error(400, "IllegalArgumentException", str(exc))
            return
        handler = getattr(self, f"_op_{method}_{op.lower()}", None)
        if handler is None:
            self._error(400, "IllegalArgumentException", f"Invalid value for webhdfs parameter op: {op}")
            return
        if method in {"PUT", "DELETE"} and any(hdfs_path.startswith(p) for p in state.read_only):
            if method == "PUT" and params.get("datanode") == "true":
                self._body()
            self._error(
                403,
                "AccessControlException",
                f'Permission denied: user={user}, access=WRITE, inode="{hdfs_path}"',
            )
            return
        handler(hdfs_path, local, params, user)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- operations --------------------------------------------------------------------------------
    def _missing(self, hdfs_path: str) -> None:
        self._error(404, "FileNotFoundException", f"File does not exist: {hdfs_path}")

    def _op_GET_gethomedirectory(self, _p: str, _l: Path, _params: dict[str, str], user: str | None) -> None:
        self._json(200, {"Path": f"/user/{user or 'dr.who'}"})

    def _op_GET_getfilestatus(self, hdfs_path: str, local: Path, _params: dict[str, str], _u: Any) -> None:
        if not local.exists():
            self._missing(hdfs_path)
            return
        self._json(200, {"FileStatus": self._status(local, "")})

    def _op_GET_liststatus(self, hdfs_path: str, local: Path, _params: dict[str, str], _u: Any) -> None:
        if not local.exists():
            self._missing(hdfs_path)
            return
        entries = (
            [self._status(child, child.name) for child in sorted(local.iterdir())]
            if local.is_dir()
            else [self._status(local, "")]
        )
        self._json(200, {"FileStatuses": {"FileStatus": entries}})

    def _op_GET_open(self, hdfs_path: str, local: Path, params: dict[str, str], _u: Any) -> None:
        if not local.is_file():
            self._missing(hdfs_path)
            return
        if params.get("datanode") != "true":
            self._redirect(params)
            return
        offset = int(params.get("offset") or 0)
        length = params.get("length")
        size = local.stat().st_size
        end = size if length in {None, "", "None"} else min(size, offset + int(length))  # type: ignore[arg-type]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(max(0, end - offset)))
        self.end_headers()
        with local.open("rb") as handle:
            handle.seek(offset)
            remaining = end - offset
            while remaining > 0 and (chunk := handle.read(min(remaining, 65536))):
                self.wfile.write(chunk)
                remaining -= len(chunk)

    def _op_PUT_create(self, hdfs_path: str, local: Path, params: dict[str, str], _u: Any) -> None:
        if params.get("datanode") != "true":
            self._body()  # the namenode step carries no data
            if local.exists() and params.get("overwrite", "false").lower() != "true":
                self._error(403, "FileAlreadyExistsException", f"{hdfs_path} already exists")
                return
            self._redirect(params)
            return
        data = self._body()
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        self.send_response(201)
        self.send_header("Location", f"hdfs://{self.headers['Host']}{hdfs_path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _op_PUT_mkdirs(self, _p: str, local: Path, _params: dict[str, str], _u: Any) -> None:
        local.mkdir(parents=True, exist_ok=True)
        self._json(200, {"boolean": True})

    def _op_DELETE_delete(self, _p: str, local: Path, params: dict[str, str], _u: Any) -> None:
        if not local.exists():
            self._json(200, {"boolean": False})
            return
        if local.is_dir():
            if params.get("recursive", "false").lower() != "true" and any(local.iterdir()):
                self._error(403, "PathIsNotEmptyDirectoryException", f"{local.name} is non empty")
                return
            shutil.rmtree(local)
        else:
            local.unlink()
        self._json(200, {"boolean": True})
