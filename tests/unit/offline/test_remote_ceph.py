"""storage.offline.remote against a real S3 server (moto, signatures checked) standing in for CEPH."""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path

import pytest

from flowbridge.stack import free_port
from storage.offline.remote import (
    FileSystemInfo,
    RemoteAuthError,
    RemoteNotFound,
    RemoteNotWritable,
    RemoteUnreachable,
    connect,
)
from tests.support.services import ServicesInfo, session_services


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> ServicesInfo:
    return session_services(Path(tmp_path_factory.mktemp("services")))


@pytest.fixture()
def bucket(s3: ServicesInfo) -> str:
    name = f"unit-{uuid.uuid4().hex[:12]}"
    client = s3.s3_client()
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="in/a.csv", Body=b"a,b\n1,2\n")
    client.put_object(Bucket=name, Key="in/sub/b.csv", Body=b"xyz")
    return name


def ceph(s3: ServicesInfo, **change: object) -> FileSystemInfo:
    info = {
        "fileSystemType": "CEPH",
        "host": s3.s3_host,
        "port": s3.s3_port,
        "userName": s3.access_key,
        "password": s3.secret_key,
    }
    return FileSystemInfo.model_validate({**info, **change})


def test_folder_and_file_inputs_list_and_read(s3: ServicesInfo, bucket: str) -> None:
    files = connect(ceph(s3), timeout=5)
    listed = files.list_input(f"{bucket}#in")
    assert [(f.relpath, f.size) for f in listed] == [("a.csv", 8), ("sub/b.csv", 3)]
    single = files.list_input(f"{bucket}#in/a.csv")
    assert [(f.relpath, f.size) for f in single] == [("a.csv", 8)]
    target = io.BytesIO()
    assert files.read_into(single[0].path, target) == 8
    assert target.getvalue() == b"a,b\n1,2\n"


def test_output_goes_to_a_task_folder_and_is_detected_as_taken(s3: ServicesInfo, bucket: str) -> None:
    files = connect(ceph(s3), timeout=5)
    folder = files.output_dir(f"{bucket}#out/", 7)
    assert folder == f"{bucket}/out/7"
    assert files.is_empty(folder)
    files.probe_writable(folder)
    assert files.is_empty(folder), "the write probe must not leave a file behind"
    files.write(f"{folder}/r.csv", io.BytesIO(b"result"))
    assert not files.is_empty(folder)
    body = s3.s3_client().get_object(Bucket=bucket, Key="out/7/r.csv")["Body"].read()
    assert body == b"result"


def test_wrong_secret_key_is_an_auth_error_naming_the_keys(s3: ServicesInfo, bucket: str) -> None:
    files = connect(ceph(s3, password="not-the-secret"), timeout=5)
    with pytest.raises(RemoteAuthError) as raised:
        files.list_input(f"{bucket}#in")
    assert "access key / secret key" in str(raised.value)
    assert "not-the-secret" not in str(raised.value)
    with pytest.raises(RemoteAuthError):
        files.is_empty(f"{bucket}/out/1")


def test_missing_input_and_missing_output_bucket(s3: ServicesInfo, bucket: str) -> None:
    files = connect(ceph(s3), timeout=5)
    with pytest.raises(RemoteNotFound, match="does not exist"):
        files.list_input(f"{bucket}#nothing/here")
    with pytest.raises(RemoteNotFound, match="does not exist"):
        files.list_input("no-such-bucket-x#in")
    with pytest.raises(RemoteNotWritable, match="no-such-bucket-y"):
        files.is_empty("no-such-bucket-y/out/1")


def test_unreachable_host_fails_fast_and_is_transient(s3: ServicesInfo) -> None:
    files = connect(ceph(s3, port=free_port()), timeout=2)
    started = time.monotonic()
    with pytest.raises(RemoteUnreachable) as raised:
        files.list_input("bucket-1#in")
    assert raised.value.transient
    assert "cannot reach CEPH" in str(raised.value)
    assert time.monotonic() - started < 15
