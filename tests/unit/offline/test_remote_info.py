"""The document's fileSystemInfo: field names, validation, and that the secret never leaves the model."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from storage.offline.remote import FileSystemInfo, RemoteError, split_ceph_path

CEPH = {
    "fileSystemType": "CEPH",
    "host": "ceph.example.com",
    "port": "7480",
    "userName": "AKIAEXAMPLE",
    "password": "very-secret-key",
    "inputPath": "bucket-1#in/data.csv",
}
HDFS = {
    "fileSystemType": "HDFS",
    "host": "namenode",
    "port": "9870",
    "spareHost": "namenode2",
    "userName": "etl",
    "outputPath": "/results",
}


def test_document_examples_parse_with_string_ports() -> None:
    ceph = FileSystemInfo.model_validate(CEPH)
    assert ceph.port == 7480 and ceph.endpoint == "http://ceph.example.com:7480"
    hdfs = FileSystemInfo.model_validate(HDFS)
    assert hdfs.spareHost == "namenode2" and hdfs.secret() is None


def test_secret_is_kept_out_of_public_dump_repr_and_messages() -> None:
    info = FileSystemInfo.model_validate(CEPH)
    assert info.secret() == "very-secret-key"
    public = info.public()
    assert "password" not in public
    for text in (json.dumps(public), repr(info), str(info), info.describe(info.inputPath)):
        assert "very-secret-key" not in text
    assert FileSystemInfo.resolve(public, "k2").secret() == "k2"
    with pytest.raises(RemoteError) as raised:
        FileSystemInfo.resolve({**public, "port": "x"}, "very-secret-key")
    assert "port" in str(raised.value) and "very-secret-key" not in str(raised.value)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"password": None}, "secret key"),
        ({"userName": None}, "access key"),
        ({"inputPath": "no-hash-here"}, "bucket#path"),
        ({"inputPath": "Bad_Bucket#x"}, "invalid bucket"),
        ({"inputPath": "bucket-1#a/../../b"}, ".."),
        ({"host": "http://ceph:7480"}, "bare host"),
        ({"port": "70000"}, "65535"),
        ({"fileSystemType": "FTP"}, "HDFS"),
        ({"spareHost": "other"}, "HDFS only"),
    ],
)
def test_invalid_ceph_info_is_rejected_with_a_reason(change: dict, problem: str) -> None:
    with pytest.raises(ValidationError) as raised:
        FileSystemInfo.model_validate({**CEPH, **change})
    assert problem in str(raised.value)
    assert "very-secret-key" not in str(raised.value)


def test_hdfs_spare_host_may_carry_its_own_port() -> None:
    assert FileSystemInfo.model_validate({**HDFS, "spareHost": "nn2:50070"}).spareHost == "nn2:50070"
    with pytest.raises(ValidationError):
        FileSystemInfo.model_validate({**HDFS, "spareHost": "nn2:notaport"})


def test_ceph_path_splits_into_bucket_and_prefix() -> None:
    assert split_ceph_path("bucket-1#/in/data/") == ("bucket-1", "in/data")
    assert split_ceph_path("bucket-1#") == ("bucket-1", "")
