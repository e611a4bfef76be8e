"""Issue #12: the 002 GasFlux router modules only translate.

Every DB read and write is in storage/gasflux/repository.py, every path in storage/gasflux/files.py, the
host metrics (psutil) in api_bridge/health.py. A router module that opens a session, selects, joins a
path by hand or reads psutil fails here, with the file and line to move.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROUTERS = Path(__file__).resolve().parents[3] / "api_bridge" / "routers" / "gasflux"
MODULES = sorted(ROUTERS.glob("*.py"))

FORBIDDEN = {
    "a DB session (use storage/gasflux/repository.py)": re.compile(
        r"\bsession_scope\b|\bselect\(|\bsession\."
    ),
    "psutil (use api_bridge/health.py)": re.compile(r"\bpsutil\b"),
    "a hand-joined path (use storage/gasflux/files.py)": re.compile(
        r"os\.path\.join|posixpath\.join|\bPath\([^)]*\)\s*/|\.parents?\b.*\s/\s"
    ),
}


def test_the_router_package_has_modules_to_check() -> None:
    assert {m.name for m in MODULES} >= {"endpoints.py", "service.py", "stats.py", "codes.py"}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_router_module_opens_no_session_joins_no_path_reads_no_psutil(module: Path) -> None:
    found = [
        f"{module.name}:{number}: {what}: {line.strip()}"
        for number, line in enumerate(module.read_text().splitlines(), start=1)
        for what, pattern in FORBIDDEN.items()
        if pattern.search(line) and not line.lstrip().startswith("#")
    ]
    assert not found, "\n".join(found)


def test_the_pattern_catches_what_it_forbids() -> None:
    """Each forbidden form is recognised, so the check above can fail."""
    samples = {
        "with session_scope() as s:": 0,
        "rows = session.scalars(select(GasfluxTask))": 0,
        "memory = psutil.virtual_memory()": 1,
        'PAGE = Path(__file__).resolve().parents[1] / "static"': 2,
        "os.path.join(root, name)": 2,
    }
    patterns = list(FORBIDDEN.values())
    for line, index in samples.items():
        assert patterns[index].search(line), line
