"""Routers only translate (issue #12): no module of a router package opens a database session, selects,
reads process metrics or joins a storage path; that work lives in storage/<service>/repository.py, the
service's api_bridge/routers/<service>/service.py and storage/filesystems.py.

Checked for all five routers, on the syntax tree, so a word in a docstring or a message does not count,
and an aliased import does. tests/unit/gasflux|mrms/test_architecture_<service>.py add service-specific
checks (no hand-built storage paths in the MRMS flows and tasks, no compensation in endpoints).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED_SERVICES = ("traffic", "offline", "gasflux", "mrms", "dataflow")
FORBIDDEN_NAMES = {"session_scope", "select", "psutil"}
FORBIDDEN_JOINS = {("os.path", "join"), ("posixpath", "join")}


def _router_modules() -> list[Path]:
    return sorted(
        path
        for service in CHECKED_SERVICES
        for path in (ROOT / "api_bridge" / "routers" / service).glob("*.py")
    )


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def offences(source: str) -> list[str]:
    """What in `source` opens a session, selects, uses psutil or joins a path, one line each."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "psutil" or alias.name in {"posixpath", "os.path"}:
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            for alias in node.names:
                if alias.name in FORBIDDEN_NAMES or module.split(".")[0] == "psutil":
                    found.append(f"line {node.lineno}: from {module} import {alias.name}")
                if (module, alias.name) in FORBIDDEN_JOINS or (module == "os" and alias.name == "path"):
                    found.append(f"line {node.lineno}: from {module} import {alias.name}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            last = name.rsplit(".", 1)[-1]
            if last in FORBIDDEN_NAMES or name.startswith("psutil."):
                found.append(f"line {node.lineno}: {name}(...)")
            if name in {"os.path.join", "posixpath.join"}:
                found.append(f"line {node.lineno}: {name}(...)")
        elif isinstance(node, ast.Attribute) and _dotted(node.value) in {"session", "psutil"}:
            found.append(f"line {node.lineno}: {_dotted(node)}")
    return sorted(set(found))


@pytest.mark.parametrize("module", _router_modules(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_router_modules_open_no_session_and_join_no_path(module: Path) -> None:
    problems = offences(module.read_text(encoding="utf-8"))
    assert not problems, f"{module.relative_to(ROOT)} does work a router must not: {problems}"


def test_every_checked_service_has_router_modules() -> None:
    """A renamed package must not make the check pass by finding nothing."""
    for service in CHECKED_SERVICES:
        assert list((ROOT / "api_bridge" / "routers" / service).glob("endpoints.py")), service


@pytest.mark.parametrize(
    "source",
    [
        "from storage.metadata import session_scope",
        "from storage import metadata\nwith metadata.session_scope() as s:\n    pass",
        "from sqlalchemy import select",
        "import sqlalchemy\nsqlalchemy.select(1)",
        "def f(session):\n    session.get(1, 2)",
        "import psutil",
        "import psutil as p",
        "import os\nos.path.join('a', 'b')",
        "import posixpath",
        "from os import path",
        "from posixpath import join",
    ],
)
def test_the_check_catches_each_kind(source: str) -> None:
    """The check itself can fail: each forbidden use is reported."""
    assert offences(source)


def test_the_check_ignores_words_in_text() -> None:
    assert not offences('"""No session_scope, select( or psutil here."""\nMESSAGE = "os.path.join"')
