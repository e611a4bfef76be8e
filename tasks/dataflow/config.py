"""The runnable part of a DataFlow config, as a pydantic model (its JSON Schema is in the README).

A dataflow's config is stored exactly as the client sent it, descriptive keys included (the document's
{"source": "mysql", "target": "elasticsearch"}, schedule, batch_size, retry_count). Only at execution is it
read as a pipeline: `source` + `transforms` + `target` must then be objects this model accepts, and every
problem is reported as one readable line naming the field (`PipelineConfigError`).

Execution params override the config in two ways (see `apply_params`): a key with a dot or naming a
top-level pipeline key ("source.path", "transforms.0.expr", "target") replaces that value; every other key
is a run variable: `@name` in filter expressions, `:name` bind parameter in SQL queries, `{name}` in paths.
"""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

RUN_TAG = "dataflow:{id}"  # every run of a dataflow carries it, for people filtering the Prefect UI
KEY_TAG = "dataflow-run:{key}"  # ... and this one, by the record's run key: what the bridge looks runs up by
FILE_KINDS = ("csv", "parquet", "json")
SQL_KINDS = ("sql", "postgresql", "postgres", "mysql", "sqlite")
PIPELINE_KEYS = ("source", "transforms", "target")
_VAR = re.compile(r"\{(\w+)\}")


def run_tags(dataflow_id: int, run_key: str | None) -> list[str]:
    """The tags of every run of a dataflow (top-level, scheduled or a parent's subflow)."""
    tags = [RUN_TAG.format(id=dataflow_id)]
    if run_key:
        tags.append(KEY_TAG.format(key=run_key))
    return tags


def lookup_tag(dataflow_id: int, run_key: str | None) -> str:
    """The one tag that finds this record's runs and no other's: its run key, which dies with it (a new
    record that gets the same id has another key). Records from before run keys (NULL) use the id."""
    return KEY_TAG.format(key=run_key) if run_key else RUN_TAG.format(id=dataflow_id)


class PipelineConfigError(ValueError):
    """The config does not describe a runnable pipeline; the message says what is missing or wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileSource(_Strict):
    type: Literal["csv", "parquet", "json"]
    path: str = Field(
        min_length=1, description="Local path, storage-relative path, or fsspec URL (s3://...)."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Extra pandas reader arguments.")


class SqlSource(_Strict):
    type: Literal["sql", "postgresql", "postgres", "mysql", "sqlite"]
    url: str = Field(min_length=1, description="SQLAlchemy URL, e.g. postgresql://user:pw@host/db.")
    query: str | None = Field(None, description="SELECT to run; `:name` binds a run variable.")
    table: str | None = Field(None, description="Table to read whole (when no query).")

    @model_validator(mode="after")
    def _query_or_table(self) -> SqlSource:
        if not (self.query or self.table):
            raise ValueError("a SQL source needs 'query' or 'table'")
        return self


Source = Annotated[FileSource | SqlSource, Field(discriminator="type")]


class FilterStep(_Strict):
    type: Literal["filter"]
    expr: str = Field(
        min_length=1, description="pandas query expression, e.g. `amount > 10 and city == 'A'`."
    )


class SelectStep(_Strict):
    type: Literal["select"]
    columns: list[str] | None = Field(None, description="Columns to keep, in order.")
    rename: dict[str, str] | None = Field(None, description="Old name -> new name.")

    @model_validator(mode="after")
    def _something(self) -> SelectStep:
        if not self.columns and not self.rename:
            raise ValueError("select needs 'columns' or 'rename'")
        return self


class RenameStep(_Strict):
    type: Literal["rename"]
    columns: dict[str, str] = Field(min_length=1, description="Old name -> new name.")


class DropDuplicatesStep(_Strict):
    type: Literal["drop_duplicates"]
    subset: list[str] | None = None
    keep: Literal["first", "last"] = "first"


class FillMissingStep(_Strict):
    type: Literal["fill_missing"]
    value: Any = Field(None, description="One value for every column, or {column: value}.")
    method: Literal["ffill", "bfill"] | None = None
    columns: list[str] | None = None

    @model_validator(mode="after")
    def _value_or_method(self) -> FillMissingStep:
        if self.value is None and self.method is None:
            raise ValueError("fill_missing needs 'value' or 'method'")
        return self


AGG_FUNCS = ("sum", "mean", "min", "max", "count", "nunique", "median", "std", "first", "last")


class AggregateStep(_Strict):
    type: Literal["aggregate"]
    by: list[str] = Field(min_length=1, description="Group-by columns.")
    aggs: dict[str, str | list[str]] = Field(
        min_length=1,
        description="column -> function (result keeps the column name) or list (results named column_func).",
    )

    @field_validator("aggs")
    @classmethod
    def _known(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for column, funcs in value.items():
            for func in [funcs] if isinstance(funcs, str) else funcs:
                if func not in AGG_FUNCS:
                    raise ValueError(
                        f"unknown aggregate {func!r} for {column!r}; known: {', '.join(AGG_FUNCS)}"
                    )
        return value


class JoinStep(_Strict):
    type: Literal["join"]
    source: Source
    on: list[str] = Field(min_length=1)
    how: Literal["inner", "left", "right", "outer"] = "inner"

    @field_validator("on", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


Transform = Annotated[
    FilterStep | SelectStep | RenameStep | DropDuplicatesStep | FillMissingStep | AggregateStep | JoinStep,
    Field(discriminator="type"),
]
TRANSFORM_TYPES = ("filter", "select", "rename", "drop_duplicates", "fill_missing", "aggregate", "join")


class FileTarget(_Strict):
    type: Literal["csv", "parquet", "json"]
    path: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict, description="Extra pandas writer arguments.")


class SqlTarget(_Strict):
    type: Literal["sql", "postgresql", "postgres", "mysql", "sqlite"]
    url: str = Field(min_length=1)
    table: str = Field(min_length=1)
    if_exists: Literal["append", "replace"] = "append"


Target = Annotated[FileTarget | SqlTarget, Field(discriminator="type")]


class Pipeline(BaseModel):
    """source -> transforms (in order) -> target. Other config keys (schedule, batch_size ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    source: Source
    transforms: list[Transform] = Field(default_factory=list)
    target: Target


def pipeline_json_schema() -> dict[str, Any]:
    return Pipeline.model_json_schema()


def _missing(config: Any) -> str | None:
    """The plain-language reason a config is not a pipeline at all, before field-level validation."""
    if not isinstance(config, dict):
        return "config must be a JSON object with 'source' and 'target'"
    absent = [k for k in ("source", "target") if k not in config]
    if absent:
        return f"config has no {' and no '.join(repr(k) for k in absent)} (a runnable pipeline needs both)"
    for key in ("source", "target"):
        value = config[key]
        if not isinstance(value, dict):
            return (
                f"config {key!r} is {value!r}, a description, not a runnable {key}: give an object with "
                f"'type' ({', '.join(FILE_KINDS)} with 'path', or a SQL kind with 'url')"
            )
        kind = value.get("type")
        if kind in SQL_KINDS and not value.get("url"):
            return (
                f"config {key} of type {kind!r} needs 'url' "
                "(a SQLAlchemy URL; host/database alone are not enough)"
            )
    transforms = config.get("transforms", [])
    if not isinstance(transforms, list):
        return "config 'transforms' must be a list"
    for i, step in enumerate(transforms):
        kind = step.get("type") if isinstance(step, dict) else None
        if kind not in TRANSFORM_TYPES:
            return f"transforms[{i}]: unknown transform type {kind!r}; known: {', '.join(TRANSFORM_TYPES)}"
    return None


_TAGS = {*TRANSFORM_TYPES, *FILE_KINDS, *SQL_KINDS}


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"] if p not in _TAGS)
        problems.append(f"{where or 'config'}: {err['msg']}")
    return "; ".join(problems)


def parse_pipeline(config: Any) -> Pipeline:
    reason = _missing(config)
    if reason:
        raise PipelineConfigError(reason)
    try:
        return Pipeline.model_validate(config)
    except ValidationError as exc:
        raise PipelineConfigError(f"invalid pipeline config: {_describe(exc)}") from None


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(overrides, variables): dotted or pipeline keys override the config; the rest are run variables."""
    overrides = {k: v for k, v in params.items() if "." in k or k in PIPELINE_KEYS}
    variables = {k: v for k, v in params.items() if k not in overrides}
    return overrides, variables


def apply_params(config: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The config with overrides applied (a copy) and the run variables."""
    overrides, variables = split_params(params)
    if not overrides:
        return config, variables
    if not isinstance(config, dict):
        raise PipelineConfigError("params override config keys, but the config is not a JSON object")
    result = copy.deepcopy(config)
    for dotted, value in overrides.items():
        node: Any = result
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = _child(node, part, dotted, create=True)
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, dotted)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise PipelineConfigError(f"param {dotted!r}: {last!r} is not inside an object or list")
    return result, variables


def _index(node: list[Any], part: str, dotted: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise PipelineConfigError(f"param {dotted!r}: no list item {part!r}")
    return int(part)


def _child(node: Any, part: str, dotted: str, *, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, dotted)]
    if isinstance(node, dict):
        if part not in node and create:
            node[part] = {}
        return node[part]
    raise PipelineConfigError(f"param {dotted!r}: {part!r} is not inside an object or list")


def substitute_path(path: str, variables: dict[str, Any]) -> str:
    """`{name}` in a path becomes the run variable's value; an unknown name is an error."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise PipelineConfigError(f"path {path!r} uses {{{name}}} but no param {name!r} was given")
        return str(variables[name])

    return _VAR.sub(repl, path)


def valid_cron(expr: Any) -> str | None:
    """None when `expr` is a cron expression Prefect accepts, else the reason."""
    from prefect.client.schemas.schedules import CronSchedule

    if not isinstance(expr, str) or not expr.strip():
        return "schedule must be a cron string such as '0 2 * * *'"
    try:
        CronSchedule(cron=expr.strip())
    except ValidationError as exc:
        return f"invalid cron {expr!r}: {exc.errors()[0]['msg']}"
    except ValueError as exc:
        return f"invalid cron {expr!r}: {exc}"
    return None
