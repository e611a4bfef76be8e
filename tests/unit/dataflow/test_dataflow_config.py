"""Pipeline config: the simplest form, descriptive configs, unknown types, params overrides."""

from __future__ import annotations

import pytest

from tasks.dataflow.config import (
    FileSource,
    FilterStep,
    PipelineConfigError,
    SqlTarget,
    apply_params,
    parse_pipeline,
    pipeline_json_schema,
    substitute_path,
    valid_cron,
)

SIMPLE = {
    "source": {"type": "csv", "path": "/data/in.csv"},
    "transforms": [{"type": "filter", "expr": "amount > 10"}],
    "target": {"type": "csv", "path": "/data/out.csv"},
}


def test_simplest_form_parses_exactly_as_written() -> None:
    pipeline = parse_pipeline(SIMPLE)
    assert isinstance(pipeline.source, FileSource) and pipeline.source.path == "/data/in.csv"
    assert isinstance(pipeline.transforms[0], FilterStep) and pipeline.transforms[0].expr == "amount > 10"
    assert pipeline.target.path == "/data/out.csv"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"source": "mysql", "target": "elasticsearch"}, "'source' is 'mysql', a description"),
        ({"batch_size": 1000, "retry_count": 3}, "no 'source' and no 'target'"),
        ({"test": True, "source": {"type": "csv", "path": "a.csv"}}, "no 'target'"),
        (
            {"source": {"type": "mysql", "host": "192.168.1.100", "database": "crm"}, "target": {}},
            "needs 'url'",
        ),
        ({**SIMPLE, "transforms": [{"type": "pivot"}]}, "unknown transform type 'pivot'"),
        ({**SIMPLE, "transforms": [{"type": "aggregate", "by": ["a"], "aggs": {"x": "explode"}}]}, "explode"),
        ({**SIMPLE, "transforms": [{"type": "filter"}]}, "transforms.0.expr"),
        ("not an object", "JSON object"),
    ],
)
def test_non_runnable_configs_say_what_is_missing(config: object, fragment: str) -> None:
    with pytest.raises(PipelineConfigError) as info:
        parse_pipeline(config)
    assert fragment in str(info.value)


def test_sql_target_and_join() -> None:
    config = {
        "source": {"type": "sql", "url": "sqlite:///x.db", "query": "SELECT * FROM t"},
        "transforms": [
            {"type": "join", "source": {"type": "csv", "path": "b.csv"}, "on": "id", "how": "left"}
        ],
        "target": {
            "type": "postgresql",
            "url": "postgresql://u:p@h/db",
            "table": "out",
            "if_exists": "replace",
        },
    }
    pipeline = parse_pipeline(config)
    assert isinstance(pipeline.target, SqlTarget) and pipeline.target.if_exists == "replace"
    assert pipeline.transforms[0].on == ["id"]  # type: ignore[union-attr]


def test_params_override_dotted_keys_and_keep_variables() -> None:
    config, variables = apply_params(
        SIMPLE,
        {"target.path": "/data/other.csv", "transforms.0.expr": "amount > 99", "start_date": "2023-12-01"},
    )
    assert config["target"]["path"] == "/data/other.csv"
    assert config["transforms"][0]["expr"] == "amount > 99"
    assert SIMPLE["target"]["path"] == "/data/out.csv"  # the stored config is not touched
    assert variables == {"start_date": "2023-12-01"}
    with pytest.raises(PipelineConfigError, match="no list item '5'"):
        apply_params(SIMPLE, {"transforms.5.expr": "x"})


def test_path_variables() -> None:
    assert substitute_path("/data/{day}/in.csv", {"day": "2023-12-01"}) == "/data/2023-12-01/in.csv"
    with pytest.raises(PipelineConfigError, match="no param 'day'"):
        substitute_path("/data/{day}/in.csv", {})


def test_schema_and_cron() -> None:
    schema = pipeline_json_schema()
    assert {"source", "target"} <= set(schema["required"])
    assert valid_cron("0 2 * * *") is None
    assert "invalid cron" in (valid_cron("every day") or "")
