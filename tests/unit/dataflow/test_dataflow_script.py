"""The offline script generator: its scripts are run here on sample data and must do what was asked."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tasks.dataflow.script_generation import OfflineProvider, strip_fences, understand


def run(script: str, tmp_path: Path, *args: str) -> None:
    path = tmp_path / "generated.py"
    path.write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(path), *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_filter_and_group_sum_in_chinese(tmp_path: Path) -> None:
    request = "读取 sales.csv,过滤 amount > 10 的记录,按 region 分组对 amount 求和,写入 summary.csv"
    script = OfflineProvider().generate(request)
    assert script.provider == "offline"
    assert "offline script generator" in script.content
    pd.DataFrame({"region": ["N", "S", "N", "S"], "amount": [5, 20, 30, 40]}).to_csv(
        tmp_path / "sales.csv", index=False
    )
    run(script.content, tmp_path)
    out = pd.read_csv(tmp_path / "summary.csv")
    assert out.to_dict("records") == [{"region": "N", "amount": 30}, {"region": "S", "amount": 60}]


def test_monthly_summary_from_the_document(tmp_path: Path) -> None:
    script = OfflineProvider().generate("创建一个简单的CSV文件处理脚本,读取销售数据并计算月度汇总")
    frame = pd.DataFrame(
        {"date": ["2024-01-03", "2024-01-20", "2024-02-01"], "sales": [10, 5, 7], "store": ["a", "b", "a"]}
    )
    frame.to_csv(tmp_path / "in.csv", index=False)
    run(script.content, tmp_path, "--input", "in.csv", "--output", "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert out[["month", "sales"]].to_dict("records") == [
        {"month": "2024-01", "sales": 15},
        {"month": "2024-02", "sales": 7},
    ]


def test_parquet_dedupe_filter_group_to_json_in_english(tmp_path: Path) -> None:
    request = (
        "Read orders.parquet, drop duplicates, keep rows where qty >= 2, "
        "group by customer sum of qty, write result.json"
    )
    recipe = understand(request)
    assert (recipe.source, recipe.target, recipe.filters, recipe.group_by) == (
        "parquet",
        "json",
        ["qty >= 2"],
        ["customer"],
    )
    pd.DataFrame({"customer": ["x", "x", "x", "y"], "qty": [1, 2, 2, 5]}).to_parquet(
        tmp_path / "orders.parquet"
    )
    run(OfflineProvider().generate(request).content, tmp_path)
    out = pd.read_json(tmp_path / "result.json")
    assert out.to_dict("records") == [{"customer": "x", "qty": 2}, {"customer": "y", "qty": 5}]


def test_sql_source_cleaning_to_csv(tmp_path: Path) -> None:
    request = "从 SQLite 数据库的表 users 读取数据,清洗无效数据后写入 CSV"
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER, email TEXT)")
        conn.executemany("INSERT INTO users VALUES (?, ?)", [(1, "a@x"), (2, None), (3, "c@x")])
    run(
        OfflineProvider().generate(request).content,
        tmp_path,
        "--source-url",
        f"sqlite:///{db}",
        "--output",
        "o.csv",
    )
    assert pd.read_csv(tmp_path / "o.csv")["id"].tolist() == [1, 3]


def test_strip_fences() -> None:
    assert strip_fences("Here:\n```python\nprint(1)\n```\nbye") == "print(1)\n"
    assert strip_fences("print(2)") == "print(2)\n"
