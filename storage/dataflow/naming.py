"""English names of dataflows: deterministic snake_case ASCII from a Chinese (or any) name.

A glossary of data-engineering terms is matched first, longest term first, so the document's examples
come out as it shows them (用户数据ETL流程 -> user_data_etl_process); what the glossary lacks becomes pinyin,
ASCII runs are kept lower-cased, and anything else is dropped. Uniqueness (a numeric suffix) is the
caller's job because it needs the database: see `unique_en_name`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from pypinyin import Style, lazy_pinyin

GLOSSARY: dict[str, str] = {
    "数据仓库": "data_warehouse",
    "数据湖": "data_lake",
    "数据源": "data_source",
    "数据库": "database",
    "子流程": "sub_process",
    "主数据": "master_data",
    "数据": "data",
    "用户": "user",
    "客户": "customer",
    "订单": "order",
    "销售": "sales",
    "产品": "product",
    "商品": "product",
    "库存": "inventory",
    "日志": "log",
    "报表": "report",
    "指标": "metric",
    "流程": "process",
    "同步": "sync",
    "清洗": "cleaning",
    "转换": "transform",
    "抽取": "extract",
    "加载": "load",
    "导入": "import",
    "导出": "export",
    "处理": "processing",
    "分析": "analysis",
    "统计": "statistics",
    "汇总": "summary",
    "聚合": "aggregation",
    "备份": "backup",
    "迁移": "migration",
    "采集": "collection",
    "监控": "monitoring",
    "校验": "validation",
    "验证": "validation",
    "测试": "test",
    "任务": "task",
    "作业": "job",
    "实时": "realtime",
    "离线": "offline",
    "增量": "incremental",
    "全量": "full",
    "每日": "daily",
    "每月": "monthly",
    "月度": "monthly",
    "表": "table",
    "流": "flow",
    "子": "sub",
    "主": "main",
}
_TERMS = sorted(GLOSSARY, key=len, reverse=True)
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")
MAX_LENGTH = 200


def _words(name: str) -> list[str]:
    words: list[str] = []
    text = unicodedata.normalize("NFKC", name)
    i = 0
    while i < len(text):
        term = next((t for t in _TERMS if text.startswith(t, i)), None)
        if term:
            words.append(GLOSSARY[term])
            i += len(term)
            continue
        match = _ASCII_WORD.match(text, i)
        if match:
            words.append(match.group(0).lower())
            i = match.end()
            continue
        char = text[i]
        if "\u3400" <= char <= "\u9fff":
            words.extend(lazy_pinyin(char, style=Style.NORMAL))
        i += 1
    return words


def en_name(name: str) -> str:
    """snake_case ASCII for `name`; 'dataflow' when nothing usable is left."""
    joined = "_".join(w for w in _words(name) if w)
    joined = re.sub(r"[^a-z0-9_]+", "", joined.lower())
    joined = re.sub(r"_+", "_", joined).strip("_")[:MAX_LENGTH].strip("_")
    if not joined:
        return "dataflow"
    return f"df_{joined}" if joined[0].isdigit() else joined


def unique_en_name(name: str, taken: Callable[[str], bool]) -> str:
    """`en_name(name)`, or with `_2`, `_3`, ... appended when `taken` says the plain one is in use."""
    base = en_name(name)
    if not taken(base):
        return base
    n = 2
    while taken(f"{base}_{n}"):
        n += 1
    return f"{base}_{n}"
