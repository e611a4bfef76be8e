"""Routers only translate (issue #12): no module of a router package opens a database session, selects,
reads process metrics or joins a storage path; that work lives in storage/<service>/repository.py, the
service's api_bridge/routers/<service>/service.py and storage/filesystems.py.

Checked for all five routers, on the syntax tree, so a word in a docstring or a message does not count,
and an aliased import does; a path built by hand (f-string, "/".join, string sum) counts when it is passed
to a filesystem call. tests/unit/gasflux|mrms/test_architecture_<service>.py add service-specific
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
# fsspec filesystem and storage calls: a path built by hand (f-string, "/".join, + "/" +) as an argument
# of one of these is a storage path joined in the router
FILESYSTEM_CALLS = {
    "open", "exists", "isfile", "isdir", "info", "ls", "glob", "find", "walk", "cat", "cat_file", "pipe",
    "pipe_file", "put", "put_file", "get", "get_file", "rm", "rm_file", "delete", "makedirs", "mkdir",
    "read_bytes", "read_text", "write_bytes", "write_text",
}  # fmt: skip


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


def _built_path(node: ast.expr) -> bool:
    """An f-string with a "/" between its parts, a "/".join(...) or a string sum with a "/" in it."""
    if isinstance(node, ast.JoinedStr):
        text = [v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
        return any("/" in t for t in text) and any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join":
        return isinstance(node.func.value, ast.Constant) and node.func.value.value == "/"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        sides = (node.left, node.right)
        return any(isinstance(x, ast.Constant) and "/" in str(x.value) for x in sides) or any(
            _built_path(x) for x in sides
        )
    return False


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
            arguments = [*node.args, *(k.value for k in node.keywords)]
            if last in FILESYSTEM_CALLS and any(_built_path(a) for a in arguments):
                found.append(f"line {node.lineno}: {name}(<path built by hand>)")
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
        "def f(fs, root, work_id):\n    fs.open(f'{root}/{work_id}.csv')",
        "def f(storage, root):\n    storage.exists('/'.join([root, 'result.json']))",
        "def f(fs, root):\n    fs.rm(path=root + '/upload.csv')",
    ],
)
def test_the_check_catches_each_kind(source: str) -> None:
    """The check itself can fail: each forbidden use is reported."""
    assert offences(source)


def test_the_check_ignores_words_in_text() -> None:
    assert not offences('"""No session_scope, select( or psutil here."""\nMESSAGE = "os.path.join"')


def test_the_check_ignores_urls_in_answers() -> None:
    """Legacy answers carry URLs built from ids (file_url, task_status_url): not storage paths."""
    assert not offences("def f(work_id):\n    return {'file_url': f'static/upload/{work_id}.csv'}")
    assert not offences("def f(storage, path):\n    storage.open(path)")
