"""Issue #12 item 3 for 003 MRMS: its router modules only translate.

api_bridge/routers/mrms/ opens no database session (storage.mrms.repository does), joins no path
(storage.filesystems and storage.mrms.files do), uses no psutil, and endpoints.py holds no orchestration
or compensation (service.py does). The flow and tasks of MRMS build no storage path by hand either. Each
rule is checked on the source, and each checker is shown to catch a violation, so a pass means something.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ROUTER = ROOT / "api_bridge" / "routers" / "mrms"
ROUTER_MODULES = sorted(ROUTER.glob("*.py"))
PATH_BUILDERS = [ROOT / "flows" / "mrms", ROOT / "tasks" / "mrms"]

SESSION_TEXT = {  # word-bounded: update_model_select( is an endpoint, not a query
    "session_scope": re.compile(r"\bsession_scope\b"),
    "select(": re.compile(r"\bselect\("),
    "session.": re.compile(r"\bsession\."),
    "psutil": re.compile(r"\bpsutil\b"),
}
STORAGE_FOLDERS = ("runs/", "uploads/")  # storage.filesystems' layout
FORBIDDEN_IMPORTS = ("sqlalchemy", "psutil", "storage.metadata", "storage.mrms.models", "os", "posixpath")
# what only a service (or a repository) may do: start, cancel or undo jobs, touch storage
ORCHESTRATION_CALLS = {"submit", "cancel", "delete", "get_storage", "session_scope"}


def _source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def session_text(source: str) -> list[str]:
    return [word for word, pattern in SESSION_TEXT.items() if pattern.search(source)]


def forbidden_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if any(name == bad or name.startswith(f"{bad}.") for bad in FORBIDDEN_IMPORTS):
                found.append(name)
            if name == "pathlib":
                found.append(name)
    return found


def path_joins(source: str, *, strict: bool = True) -> list[str]:
    """os.path.join/posixpath.join, Path(...), f-strings of storage's folders (runs/, uploads/) and, when
    strict (a router, where no value is divided or glued to a `/`), also `a / b` and f"{a}/{b}"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if strict and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found.append(f"line {node.lineno}: a / b")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"Path", "PurePosixPath"} or (
                name == "join"
                and isinstance(func, ast.Attribute)
                and ast.unparse(func.value).endswith("path")
            ):
                found.append(f"line {node.lineno}: {ast.unparse(func)}(...)")
        elif isinstance(node, ast.JoinedStr):
            texts = [str(p.value) for p in node.values if isinstance(p, ast.Constant)]
            if any(folder in text for text in texts for folder in STORAGE_FOLDERS):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
                continue
            parts = node.values if strict else []
            for before, after in itertools.pairwise(parts):
                glued = (isinstance(before, ast.Constant) and str(before.value).endswith("/")) or (
                    isinstance(after, ast.Constant) and str(after.value).startswith("/")
                )
                if glued:
                    found.append(f"line {node.lineno}: {ast.unparse(node)}")
                    break
    return found


def orchestration_calls(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ORCHESTRATION_CALLS:
                found.append(f"line {node.lineno}: {ast.unparse(func)}")
        elif isinstance(node, ast.Try) and any(
            isinstance(inner, ast.Call) for handler in node.handlers for inner in ast.walk(handler)
        ):
            found.append(f"line {node.lineno}: work done in an except clause (compensation)")
    return found


def test_the_router_package_is_what_the_checks_read() -> None:
    assert {p.name for p in ROUTER_MODULES} >= {"endpoints.py", "service.py", "fields.py", "codes.py"}


@pytest.mark.parametrize("module", ROUTER_MODULES, ids=lambda p: p.name)
def test_router_modules_open_no_session_and_use_no_psutil(module: Path) -> None:
    source = _source(module)
    assert session_text(source) == [], module
    assert forbidden_imports(source) == [], module


@pytest.mark.parametrize("module", ROUTER_MODULES, ids=lambda p: p.name)
def test_router_modules_join_no_path(module: Path) -> None:
    assert path_joins(_source(module)) == [], module


@pytest.mark.parametrize(
    "module", [p for folder in PATH_BUILDERS for p in sorted(folder.glob("*.py"))], ids=lambda p: p.name
)
def test_mrms_flows_and_tasks_join_no_path_by_hand(module: Path) -> None:
    """Storage paths come from storage.filesystems (and their recorded form from storage.mrms.files)."""
    assert path_joins(_source(module), strict=False) == [], module


def test_endpoints_hold_no_orchestration_or_compensation() -> None:
    """Endpoints that parse, call one function and translate: submitting, cancelling, deleting files and
    undoing a failed submission happen in service.py. The only except clauses left answer "error"."""
    source = _source(ROUTER / "endpoints.py")
    tree = ast.parse(source)
    calls = [c for c in orchestration_calls(source) if "except clause" not in c]
    assert calls == []
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                called = {
                    ast.unparse(inner.func) for inner in ast.walk(handler) if isinstance(inner, ast.Call)
                }
                assert called <= {"_error", "str", "type"}, f"line {handler.lineno}: {called}"


def test_the_repository_holds_no_http_field_parsing() -> None:
    """Which request field holds what (aliases, required fields, comma lists) is the router's: fields.py."""
    tree = ast.parse(_source(ROOT / "storage" / "mrms" / "repository.py"))
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert defined.isdisjoint({"require", "optional", "first", "parse_tags", "hist_no", "check_text"})


@pytest.mark.parametrize(
    ("checker", "bad"),
    [
        (session_text, "with session_scope() as s:\n    s.execute(select(X))\n"),
        (session_text, "import psutil\n"),
        (forbidden_imports, "from sqlalchemy import select\n"),
        (forbidden_imports, "from storage.metadata import session_scope\n"),
        (forbidden_imports, "import os.path\n"),
        (forbidden_imports, "from pathlib import Path\n"),
        (path_joins, "path = root / name\n"),
        (path_joins, "path = posixpath.join(root, name)\n"),
        (path_joins, "path = os.path.join(root, name)\n"),
        (path_joins, "path = Path(root)\n"),
        (path_joins, 'path = f"runs/{run_id}/model.skops"\n'),
        (path_joins, 'path = f"{root}/{name}"\n'),
        (orchestration_calls, "gateway.submit('x', {})\n"),
        (orchestration_calls, "storage.delete(folder)\n"),
        (orchestration_calls, "try:\n    f()\nexcept E:\n    records.undo()\n"),
    ],
)
def test_each_check_catches_what_it_forbids(checker: object, bad: str) -> None:
    assert checker(bad)  # type: ignore[operator]


def test_messages_that_mention_a_route_are_not_paths() -> None:
    assert path_joins('raise E(f"no parameter set {p!r} (store it with /mrms/param_set)")\n') == []
    assert path_joins('progress.advance(step / total, f"step {step}/{total}")\n', strict=False) == []
    assert path_joins('model = f"runs/{run_id}/{name}"\n', strict=False)
    assert session_text("def update_model_select(request): ...\n") == []
