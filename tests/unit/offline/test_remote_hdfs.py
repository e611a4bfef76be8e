"""storage.offline.remote's HDFS client path (the `hdfs` package over WebHDFS) against the WebHDFS
server of tests/support/webhdfs.py — no Hadoop can be installed here; see test_offline_api for the test
against a real namenode."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowbridge.stack import free_port
from storage.offline.remote import (
    FileSystemInfo,
    RemoteNotFound,
    RemoteNotWritable,
    RemoteUnreachable,
    connect,
)
from tests.support.webhdfs import WebHdfsServer


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[WebHdfsServer]:
    root = tmp_path / "hdfs"
    (root / "data" / "in" / "sub").mkdir(parents=True)
    (root / "data" / "in" / "a.csv").write_bytes(b"a,b\n1,2\n")
    (root / "data" / "in" / "sub" / "b.csv").write_bytes(b"x" * 200_000)
    (root / "locked").mkdir()
    with WebHdfsServer(root, read_only=("/locked",)) as running:
        yield running


def hdfs(server: WebHdfsServer, **change: object) -> FileSystemInfo:
    info = {"fileSystemType": "HDFS", "host": "127.0.0.1", "port": server.port, "userName": "etl"}
    return FileSystemInfo.model_validate({**info, **change})


def test_lists_a_folder_recursively_and_reads_through_the_datanode_redirect(server: WebHdfsServer) -> None:
    files = connect(hdfs(server), timeout=5)
    listed = files.list_input("/data/in")
    assert [(f.relpath, f.size) for f in listed] == [("a.csv", 8), ("sub/b.csv", 200_000)]
    target = io.BytesIO()
    assert files.read_into("/data/in/sub/b.csv", target) == 200_000
    opens = [c for c in server.calls if c[1] == "OPEN"]
    assert len(opens) == 2, "OPEN must go to the namenode, then follow the redirect to the datanode"
    assert all(user == "etl" for _m, _op, _p, user in server.calls), "userName is sent as user.name"


def test_writes_with_the_two_step_create_into_a_task_folder(server: WebHdfsServer) -> None:
    files = connect(hdfs(server), timeout=5)
    folder = files.output_dir("/results", 12)
    assert folder == "/results/12" and files.is_empty(folder)
    files.probe_writable(folder)
    files.write(f"{folder}/forecast.csv", io.BytesIO(b"t,v\n" * 10_000))
    assert (server.root / "results" / "12" / "forecast.csv").read_bytes() == b"t,v\n" * 10_000
    assert not files.is_empty(folder)
    creates = [c for c in server.calls if c[1] == "CREATE"]
    assert len(creates) == 4  # probe and result, each namenode then datanode


def test_relative_paths_resolve_under_the_users_home(server: WebHdfsServer) -> None:
    (server.root / "user" / "etl").mkdir(parents=True)
    (server.root / "user" / "etl" / "mine.csv").write_bytes(b"1")
    listed = connect(hdfs(server), timeout=5).list_input("mine.csv")
    assert [f.path for f in listed] == ["/user/etl/mine.csv"]


def test_spare_host_is_used_when_host_does_not_answer(server: WebHdfsServer) -> None:
    info = hdfs(server, port=free_port(), spareHost=f"127.0.0.1:{server.port}")
    assert [f.relpath for f in connect(info, timeout=2).list_input("/data/in/a.csv")] == ["a.csv"]


def test_problems_are_named(server: WebHdfsServer) -> None:
    files = connect(hdfs(server), timeout=5)
    with pytest.raises(RemoteNotFound, match="/data/nope does not exist"):
        files.list_input("/data/nope")
    with pytest.raises(RemoteNotWritable, match="Permission denied"):
        files.probe_writable("/locked/1")
    with pytest.raises(RemoteUnreachable, match="cannot reach HDFS"):
        connect(hdfs(server, port=free_port()), timeout=2).list_input("/data/in")
