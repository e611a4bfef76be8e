"""en_name: the document's examples, pinyin fallback, ASCII-only snake_case, suffix on clash."""

from __future__ import annotations

import re

import pytest

from storage.dataflow.naming import en_name, unique_en_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("用户数据ETL流程", "user_data_etl_process"),
        ("客户数据同步流程", "customer_data_sync_process"),
        ("数据清洗子流程", "data_cleaning_sub_process"),
        ("北京天气", "bei_jing_tian_qi"),
        ("Hello World 数据", "hello_world_data"),
        ("2024 销售", "df_2024_sales"),
        ("!!!", "dataflow"),
    ],
)
def test_en_name(name: str, expected: str) -> None:
    assert en_name(name) == expected


def test_en_name_is_deterministic_snake_case_ascii() -> None:
    for name in ["订单数据处理流程", "測試 (beta) – v2", "混合Mixed名字_名"]:
        value = en_name(name)
        assert value == en_name(name)
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", value), value


def test_unique_suffix_on_clash() -> None:
    taken = {"user_data_etl_process", "user_data_etl_process_2"}
    assert unique_en_name("用户数据ETL流程", taken.__contains__) == "user_data_etl_process_3"
    assert unique_en_name("客户数据同步流程", taken.__contains__) == "customer_data_sync_process"
