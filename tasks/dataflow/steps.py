"""The steps of a DataFlow pipeline: read a source, apply one transform, write a target.

Each step is a plain function (unit-tested without Prefect) and a Prefect task the flow renames per step
(`source`, `transform_filter`, `target` ...) so the UI and the logs' `component` show the pipeline.
DataFrames pass between the tasks of one flow run in memory: a retried task gets the same input again,
and a 1M-row pipeline pays no serialisation between steps (bench/dataflow_pipeline.py).

Client mistakes (unknown column, bad expression, missing file) raise `DataflowError` and are never
retried; I/O failures (an unreachable database) raise `StepIOError` and are retried. Messages never hold
a password: SQL URLs are masked before they reach a log line or an error.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from flowbridge.settings import get_settings
from storage.filesystems import UnsafePathError, get_storage
from tasks.dataflow.config import (
    AggregateStep,
    DropDuplicatesStep,
    FileSource,
    FileTarget,
    FillMissingStep,
    FilterStep,
    JoinStep,
    RenameStep,
    SelectStep,
    SqlSource,
    SqlTarget,
    substitute_path,
)

# What pandas imports lazily on a run's first read_csv (arrow-backed strings) and to_parquet: the runner
# imports this module before the flow run starts, so a run does not pay for them (issue 6).
with contextlib.suppress(ImportError):
    import pandas.core.arrays.arrow.extension_types
    import pyarrow.pandas_compat
    import pyarrow.parquet
    import pyarrow.vendored.version  # noqa: F401


class DataflowError(ValueError):
    """A problem in the pipeline's config or data: retrying cannot help."""


class StepIOError(RuntimeError):
    """A source or target could not be reached; worth a retry."""


@dataclass(frozen=True)
class Frame:
    """A step's output: the data and the datasets it came from (for lineage)."""

    data: pd.DataFrame
    datasets: tuple[str, ...] = ()


# --- locations --------------------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """A SQLAlchemy URL without its password (and driver suffix): safe for logs and lineage ids."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<invalid database URL>"
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


def _resolve(path: str, variables: dict[str, Any]) -> tuple[str, dict[str, Any] | None, str]:
    """(what pandas opens, its storage options, the dataset id) for a local path, URL or storage path."""
    path = substitute_path(path, variables)
    if "://" in path:
        protocol = path.split("://", 1)[0]
        storage = get_storage()
        options = get_settings().storage_options if protocol == storage.protocol else {}
        if protocol == "file":
            local = path[len("file://") :]
            return local, None, f"file://{os.path.normpath(local)}"
        return path, options or None, path
    if path.startswith("/"):
        return path, None, f"file://{os.path.normpath(path)}"
    storage = get_storage()
    try:
        full = storage.path(path)
    except UnsafePathError as exc:
        raise DataflowError(f"unsafe storage path {path!r}: {exc}") from None
    if storage.protocol in {"file", "local"}:
        return full, None, f"file://{full}"
    url = storage.full_url(full)
    return url, get_settings().storage_options or None, url


def sql_dataset(url: str, table: str | None = None, query: str | None = None) -> str:
    """backend://host:port/database#table: the same table is one dataset whoever logs in to it."""
    try:
        parsed = make_url(url)
        where = URL.create(
            parsed.get_backend_name(), host=parsed.host, port=parsed.port, database=parsed.database
        ).render_as_string()
    except ArgumentError:
        where = "<invalid database URL>"
    if table:
        return f"{where}#{table}"
    digest = hashlib.sha1((query or "").encode()).hexdigest()[:12]
    return f"{where}#query:{digest}"


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_QUERY_TABLES = re.compile(r"\b(?:from|join)\s+([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)\b", re.I)
_BIND = re.compile(r"(?<![:\w]):(\w+)")


def _engine(url: str) -> Any:
    from storage.metadata import normalize_url

    try:
        return create_engine(normalize_url(url), pool_pre_ping=True)
    except (ArgumentError, ValueError) as exc:
        raise DataflowError(f"invalid database URL {mask_url(url)}: {exc}") from None
    except ModuleNotFoundError as exc:
        raise DataflowError(f"no driver for {mask_url(url)}: {exc.name} is not installed") from None


def _io_error(what: str, exc: BaseException) -> StepIOError:
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return StepIOError(f"{what}: {type(exc).__name__}: {first[0] if first else ''}")


# --- sources ----------------------------------------------------------------------------------------------


def read_source(spec: FileSource | SqlSource, variables: dict[str, Any]) -> Frame:
    if isinstance(spec, SqlSource):
        return _read_sql(spec, variables)
    target, options, dataset = _resolve(spec.path, variables)
    reader = {"csv": pd.read_csv, "parquet": pd.read_parquet, "json": pd.read_json}[spec.type]
    kwargs = dict(spec.options)
    if spec.type == "json" and "lines" not in kwargs and target.endswith((".jsonl", ".ndjson")):
        kwargs["lines"] = True
    try:
        data = reader(target, storage_options=options, **kwargs)
    except FileNotFoundError:
        raise DataflowError(f"source file not found: {dataset}") from None
    except (ValueError, TypeError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataflowError(f"source {dataset} is not readable {spec.type}: {exc}") from None
    except OSError as exc:
        raise _io_error(f"source {dataset} unreachable", exc) from None
    return Frame(data, (dataset,))


def _read_sql(spec: SqlSource, variables: dict[str, Any]) -> Frame:
    where = mask_url(spec.url)
    if spec.table and not spec.query and not _IDENTIFIER.match(spec.table):
        raise DataflowError(f"source table {spec.table!r} is not a plain table name")
    engine = _engine(spec.url)
    try:
        with engine.connect() as conn:
            if spec.query:
                names = set(_BIND.findall(spec.query))
                missing = names - set(variables)
                if missing:
                    raise DataflowError(
                        f"source query binds :{', :'.join(sorted(missing))} but no such param was given"
                    )
                data = pd.read_sql_query(text(spec.query), conn, params={k: variables[k] for k in names})
            else:
                data = pd.read_sql_table(spec.table, conn)
    except DataflowError:
        raise
    except ValueError as exc:
        raise DataflowError(f"source {where}: {exc}") from None
    except Exception as exc:
        if _is_client_sql_error(exc):
            raise DataflowError(f"source {where}: {_first_line(exc)}") from None
        raise _io_error(f"source {where} unreachable", exc) from None
    finally:
        engine.dispose()
    if spec.query:
        tables = list(dict.fromkeys(_QUERY_TABLES.findall(spec.query)))
        datasets = tuple(sql_dataset(spec.url, t) for t in tables) or (
            sql_dataset(spec.url, query=spec.query),
        )
    else:
        datasets = (sql_dataset(spec.url, spec.table),)
    return Frame(data, datasets)


def _first_line(exc: BaseException) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _is_client_sql_error(exc: BaseException) -> bool:
    """SQL errors the server answered (bad query, missing table) rather than connection failures."""
    from sqlalchemy.exc import NoSuchTableError, ProgrammingError

    if isinstance(exc, NoSuchTableError | ProgrammingError):
        return True
    name = type(getattr(exc, "orig", None)).__name__
    return name in {"UndefinedTable", "UndefinedColumn", "SyntaxError", "UndefinedFunction"} or (
        "no such table" in str(exc) or "no such column" in str(exc) or "syntax error" in str(exc)
    )


# --- transforms -------------------------------------------------------------------------------------------

_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.And,
    ast.Or,
    ast.Not,
    ast.Invert,
    ast.USub,
    ast.UAdd,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Mod,
    ast.FloorDiv,
    ast.Pow,
    ast.BitAnd,
    ast.BitOr,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.List,
    ast.Tuple,
)
_BACKTICK = re.compile(r"`([^`]*)`")
_AT_VAR = re.compile(r"@([A-Za-z_]\w*)")


def check_expression(expr: str, columns: list[str], variables: dict[str, Any]) -> None:
    """Accept only comparisons, boolean and arithmetic operators over columns, `@vars` and literals.

    No calls, attributes or subscripts, so DataFrame.query cannot be made to run code.
    """
    quoted: dict[str, str] = {}

    def quote(match: re.Match[str]) -> str:
        name = f"__col{len(quoted)}"
        quoted[name] = match.group(1)
        return name

    source = _AT_VAR.sub(lambda m: f"__at_{m.group(1)}", _BACKTICK.sub(quote, expr))
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise DataflowError(f"invalid filter expression {expr!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise DataflowError(
                f"filter expression {expr!r} uses {type(node).__name__}, which is not allowed "
                "(only comparisons, and/or/not, arithmetic, columns, @params and literals)"
            )
        if isinstance(node, ast.Name):
            if node.id.startswith("__at_"):
                if node.id[5:] not in variables:
                    raise DataflowError(
                        f"filter expression {expr!r} uses @{node.id[5:]} but no such param was given"
                    )
            elif node.id.startswith("__col"):
                if quoted[node.id] not in columns:
                    raise DataflowError(
                        f"filter: column {quoted[node.id]!r} not found (columns: {', '.join(columns)})"
                    )
            elif node.id not in columns and node.id not in {"True", "False", "None"}:
                raise DataflowError(f"filter: column {node.id!r} not found (columns: {', '.join(columns)})")


def _need(columns: list[str] | None, frame: pd.DataFrame, step: str) -> None:
    missing = [c for c in columns or [] if c not in frame.columns]
    if missing:
        raise DataflowError(
            f"{step}: column(s) {', '.join(map(repr, missing))} not found "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )


def apply_transform(
    frame: pd.DataFrame, step: Any, variables: dict[str, Any], joined: pd.DataFrame | None = None
) -> pd.DataFrame:
    if isinstance(step, FilterStep):
        check_expression(step.expr, [str(c) for c in frame.columns], variables)
        try:
            return frame.query(step.expr, engine="python", local_dict=variables, global_dict={})
        except Exception as exc:
            raise DataflowError(f"filter {step.expr!r} failed: {type(exc).__name__}: {exc}") from None
    if isinstance(step, SelectStep):
        _need(step.columns, frame, "select")
        _need(list(step.rename or {}), frame, "select.rename")
        out = frame[step.columns] if step.columns else frame
        return out.rename(columns=step.rename) if step.rename else out
    if isinstance(step, RenameStep):
        _need(list(step.columns), frame, "rename")
        return frame.rename(columns=step.columns)
    if isinstance(step, DropDuplicatesStep):
        _need(step.subset, frame, "drop_duplicates")
        return frame.drop_duplicates(subset=step.subset, keep=step.keep).reset_index(drop=True)
    if isinstance(step, FillMissingStep):
        return _fill(frame, step)
    if isinstance(step, AggregateStep):
        return _aggregate(frame, step)
    if isinstance(step, JoinStep):
        if joined is None:
            raise DataflowError("join: the second source was not read")
        _need(step.on, frame, "join (left)")
        _need(step.on, joined, "join (right)")
        return frame.merge(joined, on=step.on, how=step.how)
    raise DataflowError(f"unknown transform {type(step).__name__}")


def _fill(frame: pd.DataFrame, step: FillMissingStep) -> pd.DataFrame:
    _need(step.columns, frame, "fill_missing")
    if isinstance(step.value, dict):
        _need(list(step.value), frame, "fill_missing.value")
    columns = step.columns or list(frame.columns)
    out = frame.copy()
    if step.method:
        out[columns] = out[columns].ffill() if step.method == "ffill" else out[columns].bfill()
    if step.value is not None:
        values = step.value if isinstance(step.value, dict) else dict.fromkeys(columns, step.value)
        out = out.fillna(value=values)
    return out


def _aggregate(frame: pd.DataFrame, step: AggregateStep) -> pd.DataFrame:
    _need(step.by, frame, "aggregate.by")
    _need(list(step.aggs), frame, "aggregate.aggs")
    named: dict[str, tuple[str, str]] = {}
    for column, funcs in step.aggs.items():
        if isinstance(funcs, str):
            named[column] = (column, funcs)
        else:
            named.update({f"{column}_{f}": (column, f) for f in funcs})
    try:
        return frame.groupby(step.by, as_index=False, sort=True).agg(**named)
    except (TypeError, ValueError) as exc:
        raise DataflowError(f"aggregate failed: {type(exc).__name__}: {exc}") from None


# --- targets ----------------------------------------------------------------------------------------------


def write_target(
    frame: pd.DataFrame, spec: FileTarget | SqlTarget, variables: dict[str, Any]
) -> tuple[int, str]:
    if isinstance(spec, SqlTarget):
        if not _IDENTIFIER.match(spec.table):
            raise DataflowError(f"target table {spec.table!r} is not a plain table name")
        engine = _engine(spec.url)
        schema, _, table = spec.table.rpartition(".")
        try:
            frame.to_sql(
                table, engine, schema=schema or None, if_exists=spec.if_exists, index=False, chunksize=10_000
            )
        except ValueError as exc:
            raise DataflowError(f"target {mask_url(spec.url)}: {exc}") from None
        except Exception as exc:
            if _is_client_sql_error(exc):
                raise DataflowError(f"target {mask_url(spec.url)}: {_first_line(exc)}") from None
            raise _io_error(f"target {mask_url(spec.url)} unreachable", exc) from None
        finally:
            engine.dispose()
        return len(frame), sql_dataset(spec.url, spec.table)
    target, options, dataset = _resolve(spec.path, variables)
    if options is None and "://" not in target:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    kwargs = dict(spec.options)
    try:
        if spec.type == "csv":
            frame.to_csv(target, index=False, storage_options=options, **kwargs)
        elif spec.type == "parquet":
            frame.to_parquet(target, index=False, storage_options=options, **kwargs)
        else:
            kwargs.setdefault("orient", "records")
            kwargs.setdefault("force_ascii", False)
            if kwargs["orient"] == "records":
                kwargs.setdefault("lines", target.endswith((".jsonl", ".ndjson")))
            frame.to_json(target, storage_options=options, **kwargs)
    except (TypeError, ValueError) as exc:
        raise DataflowError(f"target {dataset}: {exc}") from None
    except OSError as exc:
        raise _io_error(f"target {dataset} unreachable", exc) from None
    return len(frame), dataset


# --- Prefect tasks ----------------------------------------------------------------------------------------


def _retry_io_only(_task: Any, _run: Any, state: Any) -> bool:
    try:
        state.result()
    except DataflowError:
        return False
    except Exception:
        return True
    return True


def _logged(component: str, call: Any) -> Any:
    logger = get_run_logger()
    try:
        return call()
    except (DataflowError, StepIOError) as exc:
        logger.error("%s failed: %s", component, exc)
        raise


@task(
    name="source", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=_retry_io_only
)
def source_task(spec: FileSource | SqlSource, variables: dict[str, Any]) -> Frame:
    logger = get_run_logger()
    where = spec.path if isinstance(spec, FileSource) else mask_url(spec.url)
    logger.info("reading %s source %s", spec.type, where)
    frame = _logged("source", lambda: read_source(spec, variables))
    logger.info(
        "read %d rows x %d columns from %s", len(frame.data), frame.data.shape[1], ", ".join(frame.datasets)
    )
    return frame


@task(name="transform", cache_policy=NO_CACHE, retries=0, retry_condition_fn=_retry_io_only)
def transform_task(
    frame: pd.DataFrame, step: Any, variables: dict[str, Any], joined: pd.DataFrame | None = None
) -> pd.DataFrame:
    logger = get_run_logger()
    out = _logged(f"transform {step.type}", lambda: apply_transform(frame, step, variables, joined))
    logger.info("%s: %d rows in, %d rows out", step.type, len(frame), len(out))
    if step.type == "drop_duplicates" and len(out) < len(frame):
        logger.warning("dropped %d duplicate rows", len(frame) - len(out))
    return out


@task(
    name="target", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=_retry_io_only
)
def target_task(
    frame: pd.DataFrame, spec: FileTarget | SqlTarget, variables: dict[str, Any]
) -> tuple[int, str]:
    logger = get_run_logger()
    rows, dataset = _logged("target", lambda: write_target(frame, spec, variables))
    logger.info("wrote %d rows to %s", rows, dataset)
    return rows, dataset
