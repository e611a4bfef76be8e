"""storage/mrms/files.py: the recorded form of a dataset or model path is exactly what the records held
before (uploads/003/<id>/data.<format>, runs/<run id>/model.skops) on a local folder, an in-memory file
system and a bucket-style root without a leading slash, and reads back to the same storage path."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.filesystems import Storage, UnsafePathError
from storage.mrms.files import dataset_filename, recorded_path, stored_path


def _storages(tmp_path: Path) -> list[Storage]:
    bucket = Storage("memory://flowbridge-bucket")
    bucket.root = "flowbridge-bucket"  # what s3://flowbridge-bucket gives: no leading slash
    return [Storage(str(tmp_path / "store")), Storage("memory://mrms"), bucket]


def test_recorded_paths_are_root_relative_and_round_trip(tmp_path: Path) -> None:
    for storage in _storages(tmp_path):
        upload = storage.upload_path("003", "d-1", dataset_filename("csv"))
        model = storage.run_path("0b8f6a2e-run", "model.skops")
        assert recorded_path(storage, upload) == "uploads/003/d-1/data.csv", storage.url
        assert recorded_path(storage, model) == "runs/0b8f6a2e-run/model.skops", storage.url
        assert stored_path(storage, recorded_path(storage, upload)) == upload
        assert stored_path(storage, recorded_path(storage, model)) == model


def test_a_tampered_record_cannot_leave_the_root(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "store"))
    for recorded in ("../outside/model.skops", "/etc/passwd", "runs/%2e%2e/x"):
        with pytest.raises(UnsafePathError):
            stored_path(storage, recorded)
