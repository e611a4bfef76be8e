"""Pipeline steps as plain functions: sources, every transform, targets, and the client mistakes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tasks.dataflow.config import parse_pipeline
from tasks.dataflow.steps import (
    DataflowError,
    StepIOError,
    apply_transform,
    check_expression,
    mask_url,
    read_source,
    write_target,
)

ROWS = pd.DataFrame(
    {
        "id": [1, 2, 3, 4, 4],
        "city": ["A", "B", "A", "C", "C"],
        "amount": [5.0, 20.0, 30.0, None, None],
        "day": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-02-01", "2024-02-01"],
    }
)


def step(config: dict) -> object:
    base = {"source": {"type": "csv", "path": "/x.csv"}, "target": {"type": "csv", "path": "/y.csv"}}
    return parse_pipeline({**base, "transforms": [config]}).transforms[0]


def test_csv_source_filter_aggregate_parquet_target(tmp_path: Path) -> None:
    ROWS.to_csv(tmp_path / "in.csv", index=False)
    frame = read_source(parse_pipeline(_simple(tmp_path)).source, {})
    assert frame.datasets == (f"file://{tmp_path / 'in.csv'}",)
    kept = apply_transform(frame.data, step({"type": "filter", "expr": "amount > 10"}), {})
    assert kept["id"].tolist() == [2, 3]
    grouped = apply_transform(
        kept, step({"type": "aggregate", "by": ["city"], "aggs": {"amount": ["sum", "count"]}}), {}
    )
    assert grouped.to_dict("records") == [
        {"city": "A", "amount_sum": 30.0, "amount_count": 1},
        {"city": "B", "amount_sum": 20.0, "amount_count": 1},
    ]
    target = parse_pipeline(
        {**_simple(tmp_path), "target": {"type": "parquet", "path": str(tmp_path / "o/x.pq")}}
    )
    rows, dataset = write_target(grouped, target.target, {})
    assert rows == 2 and dataset == f"file://{tmp_path / 'o/x.pq'}"
    assert pd.read_parquet(tmp_path / "o/x.pq").equals(grouped)


def _simple(tmp_path: Path) -> dict:
    return {
        "source": {"type": "csv", "path": str(tmp_path / "in.csv")},
        "target": {"type": "csv", "path": str(tmp_path / "out.csv")},
    }


def test_filter_with_params_and_backticks() -> None:
    frame = ROWS.rename(columns={"amount": "total amount"})
    out = apply_transform(
        frame, step({"type": "filter", "expr": "`total amount` >= @low and city in ['A']"}), {"low": 10}
    )
    assert out["id"].tolist() == [3]


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("__import__('os').system('true')", "Call"),
        ("city.str > 1", "Attribute"),
        ("amount[0] > 1", "Subscript"),
        ("lambda: 1", "Lambda"),
        ("amount >", "invalid filter expression"),
        ("price > 10", "column 'price' not found"),
        ("amount > @limit", "@limit but no such param"),
    ],
)
def test_unsafe_or_wrong_expressions_are_refused(expr: str, fragment: str) -> None:
    with pytest.raises(DataflowError) as info:
        check_expression(expr, list(ROWS.columns), {})
    assert fragment in str(info.value)


def test_select_rename_dedupe_fill_join() -> None:
    out = apply_transform(
        ROWS, step({"type": "select", "columns": ["id", "amount"], "rename": {"amount": "amt"}}), {}
    )
    assert list(out.columns) == ["id", "amt"]
    assert (
        next(iter(apply_transform(ROWS, step({"type": "rename", "columns": {"id": "key"}}), {}).columns))
        == "key"
    )
    assert len(apply_transform(ROWS, step({"type": "drop_duplicates"}), {})) == 4
    assert len(apply_transform(ROWS, step({"type": "drop_duplicates", "subset": ["city"]}), {})) == 3
    filled = apply_transform(ROWS, step({"type": "fill_missing", "value": {"amount": 0}}), {})
    assert filled["amount"].tolist() == [5.0, 20.0, 30.0, 0.0, 0.0]
    forward = apply_transform(
        ROWS, step({"type": "fill_missing", "method": "ffill", "columns": ["amount"]}), {}
    )
    assert forward["amount"].tolist()[-1] == 30.0
    cities = pd.DataFrame({"city": ["A", "B"], "country": ["X", "Y"]})
    join = step({"type": "join", "source": {"type": "csv", "path": "/c.csv"}, "on": "city", "how": "left"})
    joined = apply_transform(ROWS, join, {}, cities)
    assert joined["country"].fillna("-").tolist() == ["X", "Y", "X", "-", "-"]


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"type": "select", "columns": ["nope"]}, "select: column(s) 'nope' not found"),
        ({"type": "aggregate", "by": ["nope"], "aggs": {"amount": "sum"}}, "aggregate.by"),
        ({"type": "aggregate", "by": ["city"], "aggs": {"nope": "sum"}}, "aggregate.aggs"),
        ({"type": "drop_duplicates", "subset": ["nope"]}, "drop_duplicates"),
        ({"type": "fill_missing", "value": 0, "columns": ["nope"]}, "fill_missing"),
    ],
)
def test_missing_columns_name_the_column(config: dict, fragment: str) -> None:
    with pytest.raises(DataflowError) as info:
        apply_transform(ROWS, step(config), {})
    assert fragment in str(info.value)


def test_sql_source_with_bind_params_and_sql_target(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = {
        "source": {"type": "csv", "path": "/x.csv"},
        "target": {"type": "sqlite", "url": url, "table": "sales", "if_exists": "replace"},
    }
    rows, dataset = write_target(ROWS, parse_pipeline(config).target, {})
    assert rows == 5 and dataset == f"{url}#sales"
    source = parse_pipeline(
        {**config, "source": {"type": "sql", "url": url, "query": "SELECT id FROM sales WHERE day >= :since"}}
    ).source
    read = read_source(source, {"since": "2024-02-01"})
    assert read.data["id"].tolist() == [4, 4]
    assert read.datasets == (f"{url}#sales",)  # lineage sees the table a query reads
    with pytest.raises(DataflowError, match=":since but no such param"):
        read_source(source, {})
    missing = parse_pipeline({**config, "source": {"type": "sql", "url": url, "table": "nope"}}).source
    with pytest.raises(DataflowError):
        read_source(missing, {})


def test_missing_file_and_unreachable_database() -> None:
    with pytest.raises(DataflowError, match="source file not found"):
        read_source(parse_pipeline(_simple(Path("/nonexistent"))).source, {})
    unreachable = parse_pipeline(
        {
            "source": {"type": "postgresql", "url": "postgresql://bob:s3cret@127.0.0.1:1/db", "table": "t"},
            "target": {"type": "csv", "path": "/y.csv"},
        }
    ).source
    with pytest.raises(StepIOError) as info:
        read_source(unreachable, {})
    assert "unreachable" in str(info.value) and "s3cret" not in str(info.value)


def test_mask_url_hides_passwords() -> None:
    assert mask_url("postgresql+psycopg://bob:s3cret@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert "s3cret" not in mask_url("mysql://u:s3cret@h/d")
