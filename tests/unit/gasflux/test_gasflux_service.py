"""002 GasFlux service: the upload is removed again when Prefect refuses the run, and a download URL
finds only files inside the task's run folder.

Real storage (a local folder) and a real SQLite metadata DB; only the job gateway is faked, since what is
tested is what happens around its answer.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import UploadFile

from api_bridge.routers.gasflux import service
from flowbridge.settings import get_settings
from storage.filesystems import get_storage
from storage.gasflux import files, repository
from storage.gasflux.files import Lookup


class Gateway:
    """Submits by returning a fixed run id, or refuses like an unreachable Prefect."""

    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.run_id = uuid.uuid4()
        self.params: dict[str, Any] = {}

    def submit(self, job_type: str, params: dict[str, Any], **_: Any) -> uuid.UUID:
        if self.refuse:
            raise ConnectionError("Prefect unreachable")
        self.params = params
        return self.run_id


@pytest.fixture()
def meta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from storage import metadata

    monkeypatch.setenv("FLOWBRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLOWBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'meta.db'}")
    monkeypatch.delenv("FLOWBRIDGE_STORAGE_URL", raising=False)
    get_settings.cache_clear()
    metadata.migrate()
    yield tmp_path
    get_settings.cache_clear()


def _upload(name: str, content: bytes) -> UploadFile:
    return UploadFile(io.BytesIO(content), filename=name)


def _local(path: str) -> Path:
    local = get_storage().local_path(path)
    assert local is not None
    return Path(local)


def test_a_refused_submission_leaves_no_upload_and_no_row(meta: Path) -> None:
    job_id = str(uuid.uuid4())
    with pytest.raises(service.SubmitFailed) as failed:
        service.submit_upload(
            Gateway(refuse=True), job_id, _upload("../flight.xlsx", b"rows"), _upload("c.yaml", b"{}")
        )
    assert failed.value.kind == "ConnectionError"
    folder = _local(get_storage().path(files.upload_folder(job_id)))
    assert not folder.exists() and folder.parent.is_dir()
    assert repository.get_task(job_id) is None


def test_an_accepted_upload_is_stored_under_its_job_and_recorded(meta: Path) -> None:
    job_id = str(uuid.uuid4())
    gateway = Gateway(refuse=False)
    data = service.submit_upload(gateway, job_id, _upload("..\\evil/flight 1.XLSX", b"rows"), None)
    assert data == {"status": "accepted", "job_id": job_id, "task_status_url": f"/task/{job_id}"}
    folder = files.upload_folder(job_id)
    assert gateway.params == {"input_path": f"{folder}/flight 1.xlsx", "job_id": job_id}
    assert _local(get_storage().path(gateway.params["input_path"])).read_bytes() == b"rows"
    row = repository.get_task(job_id)
    assert row is not None
    assert (row.flow_run_id, row.filename, row.upload_dir, row.size_bytes) == (
        str(gateway.run_id),
        "flight 1.xlsx",
        folder,
        4,
    )


def test_a_download_finds_only_files_inside_the_run_folder(meta: Path, tmp_path: Path) -> None:
    run_id = str(uuid.uuid4())
    storage = get_storage()
    storage.write_result(run_id, "out/report_ch4_1.html", b"<html>")
    storage.write_summary(run_id, {"files": []})
    secret = tmp_path / "outside.txt"
    secret.write_text("secret")
    os.symlink(secret, _local(storage.run_path(run_id, "out/leak.txt")))

    found = files.find_run_file(run_id, "out/report_ch4_1.html")
    assert (found.outcome, found.name) == (Lookup.FOUND, "report_ch4_1.html")
    assert b"".join(found.chunks()) == b"<html>"
    assert files.find_run_file(run_id, "out/leak.txt").outcome is Lookup.DENIED
    assert files.find_run_file(run_id, "result.json").outcome is Lookup.MISSING
    assert files.find_run_file(run_id, "out/none.csv").outcome is Lookup.MISSING
    assert files.find_run_file(run_id, "out").outcome is Lookup.NOT_A_FILE
    assert service.find_download(str(uuid.uuid4()), "out/report_ch4_1.html").outcome is Lookup.MISSING
