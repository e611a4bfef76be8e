"""Storage builds every path itself and refuses anything that could leave its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.filesystems import Storage, UnsafePathError, safe_relpath


@pytest.mark.parametrize(
    "hostile",
    [
        "../etc/passwd",
        "a/../../b",
        "/etc/passwd",
        "..%2f..%2fetc",
        "%2e%2e/secret",
        "%252e%252e%252fsecret",
        "a\\..\\b",
        "C:/Windows",
        "a/\x00b",
        "",
        ".",
    ],
)
def test_hostile_relative_paths_are_refused(hostile: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_relpath(hostile)


def test_ordinary_names_pass_unchanged() -> None:
    assert safe_relpath("abc/08_34_01_5m.processed/2026-01-14_10-33-29-961698_processing_run/x.html") == (
        "abc/08_34_01_5m.processed/2026-01-14_10-33-29-961698_processing_run/x.html"
    )
    assert safe_relpath("数据/流量 (1).csv") == "数据/流量 (1).csv"


def test_results_round_trip_under_the_run_folder(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "root"))
    storage.write_result("run-1", "sub/a.csv", b"x,y\n1,2\n")
    storage.write_summary("run-1", {"mase": 0.25})
    assert [f.path for f in storage.list_results("run-1")] == ["sub/a.csv"]
    assert storage.read_summary("run-1") == {"mase": 0.25}
    assert (tmp_path / "root" / "runs" / "run-1" / "sub" / "a.csv").read_bytes() == b"x,y\n1,2\n"
    assert storage.delete_run("run-1") > 0
    assert storage.list_results("run-1") == []
    with pytest.raises(UnsafePathError):
        storage.run_path("run-1", "../run-2/secret")
