"""create-script (004): a data-processing script from a text request. Scripts are returned, never run.

Two providers behind one interface: `LlmProvider` calls any OpenAI-compatible chat endpoint (DeepSeek by
setting its base URL and model), `OfflineProvider` (the default, no network) builds a runnable,
commented pandas script from what it recognises in the request: source and target kinds and paths,
`column > value` filters (also 大于/小于/等于), group-by with sum/mean/count/min/max (also 按…分组/汇总,
求和/平均), monthly summaries (月度/每月), de-duplication (去重) and dropping incomplete rows (清洗/缺失).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import httpx

SYSTEM_PROMPT = (
    "You write complete, runnable Python 3 data-processing scripts. Answer with the script only, "
    "no explanation and no Markdown fences. Include logging, error handling and comments."
)


class ScriptGenerationError(RuntimeError):
    """The provider could not produce a script (LLM unreachable or answered nonsense)."""


@dataclass(frozen=True)
class GeneratedScript:
    content: str
    provider: str
    model: str | None
    generated_at: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"))


class ScriptProvider(Protocol):
    name: str

    def generate(self, request: str) -> GeneratedScript: ...


# --- LLM ---------------------------------------------------------------------------------------------------


class LlmProvider:
    """Any OpenAI-compatible /chat/completions endpoint."""

    name = "llm"

    def __init__(self, base_url: str, model: str, api_key: str | None, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout

    def generate(self, request: str) -> GeneratedScript:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": request}],
            "temperature": 0.2,
        }
        try:
            response = httpx.post(
                f"{self.base_url}/chat/completions", json=body, headers=headers, timeout=self.timeout
            )
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"]
        except httpx.HTTPStatusError as exc:
            raise ScriptGenerationError(f"LLM endpoint answered HTTP {exc.response.status_code}") from None
        except httpx.HTTPError as exc:
            raise ScriptGenerationError(f"LLM endpoint unreachable: {type(exc).__name__}") from None
        except (KeyError, IndexError, TypeError, ValueError):
            raise ScriptGenerationError("LLM endpoint answered without choices[0].message.content") from None
        script = strip_fences(str(content))
        if not script.strip():
            raise ScriptGenerationError("LLM endpoint answered an empty script")
        return GeneratedScript(script, self.name, self.model)


def strip_fences(text: str) -> str:
    match = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, re.S)
    return (match.group(1) if match else text).strip() + "\n"


# --- offline -----------------------------------------------------------------------------------------------

FILE_KINDS = ("csv", "parquet", "json", "excel")
SQL_KINDS = ("mysql", "postgresql", "sqlite")
ALL_KINDS = (*FILE_KINDS, *SQL_KINDS, "elasticsearch")
_KIND_WORDS = {
    "csv": ("csv",),
    "parquet": ("parquet",),
    "json": ("json",),
    "excel": ("excel", "xlsx"),
    "mysql": ("mysql",),
    "postgresql": ("postgresql", "postgres", "pg"),
    "sqlite": ("sqlite",),
    "elasticsearch": ("elasticsearch", "es"),
}
_OPS = {"大于等于": ">=", "小于等于": "<=", "不等于": "!=", "大于": ">", "小于": "<", "等于": "=="}
_FILTER = re.compile(
    r"\b([A-Za-z_]\w*)\s*(>=|<=|==|!=|>|<|大于等于|小于等于|不等于|大于|小于|等于)\s*"
    r"(-?\d+(?:\.\d+)?|'[^']*'|\"[^\"]*\")"
)
_FUNC_WORDS = {
    "sum": "sum",
    "total": "sum",
    "求和": "sum",
    "总和": "sum",
    "合计": "sum",
    "mean": "mean",
    "avg": "mean",
    "average": "mean",
    "平均": "mean",
    "求平均": "mean",
    "count": "count",
    "计数": "count",
    "数量": "count",
    "max": "max",
    "最大": "max",
    "min": "min",
    "最小": "min",
}
_GROUP = re.compile(r"(?:group\s+by|按照?|根据)\s*([A-Za-z_]\w*)", re.I)
_AGG_EN = re.compile(r"\b(sum|total|mean|avg|average|count|max|min)\b\s*(?:of\s+|\(\s*)?([A-Za-z_]\w*)", re.I)
_AGG_ZH = re.compile(r"(?:对|将)?\s*([A-Za-z_]\w*)\s*(求和|总和|合计|求平均|平均|计数|最大|最小)")
_FILE = re.compile(r"[\w./\\-]+\.(?:csv|parquet|json|jsonl|xlsx)\b", re.I)
_TABLE = re.compile(r"(?:from|table|表)\s+`?([A-Za-z_]\w*)`?", re.I)


@dataclass
class Recipe:
    """What the offline generator understood of a request."""

    source: str = "csv"
    target: str = "csv"
    input_path: str | None = None
    output_path: str | None = None
    source_table: str | None = None
    filters: list[str] = field(default_factory=list)
    group_by: list[str] = field(default_factory=list)
    aggs: dict[str, str] = field(default_factory=dict)
    monthly: bool = False
    dedupe: bool = False
    drop_incomplete: bool = False


def _kinds_in_order(text: str) -> list[str]:
    found: list[tuple[int, str]] = []
    lower = text.lower()
    for kind, words in _KIND_WORDS.items():
        for word in words:
            for m in re.finditer(rf"(?<![a-z]){re.escape(word)}(?![a-z])", lower):
                found.append((m.start(), kind))
    seen: list[str] = []
    for _, kind in sorted(found):
        if kind not in seen:
            seen.append(kind)
    return seen


def understand(request: str) -> Recipe:
    recipe = Recipe()
    files = _FILE.findall(request)
    kinds = _kinds_in_order(request)
    for i, name in enumerate(files[:2]):
        ext = name.rsplit(".", 1)[-1].lower()
        kind = {"jsonl": "json", "xlsx": "excel"}.get(ext, ext)
        if i == 0:
            recipe.input_path = name
        else:
            recipe.output_path = name
        if kind not in kinds:
            kinds.insert(i, kind)
    if kinds:
        recipe.source = kinds[0]
        recipe.target = kinds[1] if len(kinds) > 1 else kinds[0]
    if recipe.source == "elasticsearch":
        recipe.source = "csv"
    table = _TABLE.search(request)
    if table:
        recipe.source_table = table.group(1)
    for column, op, value in _FILTER.findall(request):
        recipe.filters.append(f"{column} {_OPS.get(op, op)} {value}")
    recipe.group_by = list(dict.fromkeys(m.group(1) for m in _GROUP.finditer(request)))
    for func, column in _AGG_EN.findall(request):
        if column.lower() not in {"by", "of", "the"}:
            recipe.aggs[column] = _FUNC_WORDS[func.lower()]
    for column, word in _AGG_ZH.findall(request):
        recipe.aggs[column] = _FUNC_WORDS[word]
    for column in recipe.group_by:
        recipe.aggs.pop(column, None)
    recipe.monthly = bool(re.search(r"月度|每月|按月|monthly|per month", request, re.I))
    recipe.dedupe = bool(re.search(r"去重|重复|duplicate", request, re.I))
    recipe.drop_incomplete = bool(re.search(r"清洗|无效|缺失|空值|missing|invalid|clean", request, re.I))
    return recipe


def _reader(recipe: Recipe) -> tuple[list[str], str | None]:
    if recipe.source in SQL_KINDS:
        table = recipe.source_table or "source_table"
        return [
            "def read_source(args: argparse.Namespace) -> pd.DataFrame:",
            f'    """Read the {recipe.source} table (pass --source-url as a SQLAlchemy URL)."""',
            "    from sqlalchemy import create_engine",
            "",
            "    engine = create_engine(args.source_url)",
            "    with engine.connect() as conn:",
            "        return pd.read_sql_table(args.source_table, conn)",
        ], table
    call = {
        "csv": "pd.read_csv(args.input)",
        "parquet": "pd.read_parquet(args.input)",
        "json": "pd.read_json(args.input, lines=args.input.endswith(('.jsonl', '.ndjson')))",
        "excel": "pd.read_excel(args.input)",
    }[recipe.source]
    return [
        "def read_source(args: argparse.Namespace) -> pd.DataFrame:",
        f'    """Read the {recipe.source} input file."""',
        f"    return {call}",
    ], None


def _writer(recipe: Recipe) -> list[str]:
    if recipe.target in SQL_KINDS:
        return [
            "def write_target(frame: pd.DataFrame, args: argparse.Namespace) -> None:",
            f'    """Append to the {recipe.target} table (pass --target-url as a SQLAlchemy URL)."""',
            "    from sqlalchemy import create_engine",
            "",
            "    engine = create_engine(args.target_url)",
            "    frame.to_sql(args.target_table, engine, if_exists='append', index=False)",
        ]
    if recipe.target == "elasticsearch":
        return [
            "def write_target(frame: pd.DataFrame, args: argparse.Namespace) -> None:",
            '    """Index every row into Elasticsearch (needs the `elasticsearch` package)."""',
            "    from elasticsearch import Elasticsearch, helpers",
            "",
            "    client = Elasticsearch(args.es_url)",
            "    rows = frame.to_dict(orient='records')",
            "    actions = ({'_index': args.es_index, '_source': row} for row in rows)",
            "    helpers.bulk(client, actions)",
        ]
    call = {
        "csv": "frame.to_csv(args.output, index=False)",
        "parquet": "frame.to_parquet(args.output, index=False)",
        "json": "frame.to_json(args.output, orient='records', force_ascii=False)",
        "excel": "frame.to_excel(args.output, index=False)",
    }[recipe.target]
    return [
        "def write_target(frame: pd.DataFrame, args: argparse.Namespace) -> None:",
        f'    """Write the {recipe.target} output file."""',
        f"    {call}",
    ]


def _transform(recipe: Recipe) -> list[str]:
    lines = [
        "def transform(frame: pd.DataFrame) -> pd.DataFrame:",
        '    """The processing the request asked for, step by step."""',
    ]
    if recipe.drop_incomplete:
        lines += [
            "    # cleaning: drop rows with missing values",
            "    before = len(frame)",
            "    frame = frame.dropna()",
            "    logger.info('dropped %d incomplete rows', before - len(frame))",
        ]
    if recipe.dedupe:
        lines += ["    # de-duplication", "    frame = frame.drop_duplicates()"]
    for expr in recipe.filters:
        lines += [f"    # filter: keep rows where {expr}", f"    frame = frame.query({expr!r})"]
    aggs = recipe.aggs
    if recipe.monthly:
        lines += [
            "    # monthly summary: the first date-like column gives the month; numeric columns are summed",
            "    date_column = next(c for c in frame.columns if _looks_like_dates(frame[c]))",
            "    month = pd.to_datetime(frame[date_column]).dt.to_period('M').astype(str)",
            "    frame = frame.assign(month=month)",
        ]
        by = ["month", *recipe.group_by]
        if aggs:
            spec = ", ".join(f"{c!r}: {f!r}" for c, f in aggs.items())
            lines.append(f"    frame = frame.groupby({by!r}, as_index=False).agg({{{spec}}})")
        else:
            lines.append(f"    frame = frame.groupby({by!r}, as_index=False).sum(numeric_only=True)")
    elif recipe.group_by:
        if aggs:
            spec = ", ".join(f"{c!r}: {f!r}" for c, f in aggs.items())
            lines += [
                f"    # aggregate by {', '.join(recipe.group_by)}",
                f"    frame = frame.groupby({recipe.group_by!r}, as_index=False).agg({{{spec}}})",
            ]
        else:
            lines += [
                f"    # aggregate by {', '.join(recipe.group_by)}: sum every numeric column",
                f"    frame = frame.groupby({recipe.group_by!r}, as_index=False).sum(numeric_only=True)",
            ]
    lines.append("    return frame")
    return lines


def render(recipe: Recipe, request: str) -> str:
    reader, table = _reader(recipe)
    summary = request.strip().replace("\n", " ")
    args = []
    if recipe.source in SQL_KINDS:
        args += [
            "    parser.add_argument('--source-url', required=True, help='SQLAlchemy URL of the source')",
            f"    parser.add_argument('--source-table', default={table!r})",
        ]
    else:
        args.append(
            "    parser.add_argument('--input', default="
            + _default_path(recipe.input_path, "input", recipe.source)
            + ")"
        )
    if recipe.target in SQL_KINDS:
        args += [
            "    parser.add_argument('--target-url', required=True, help='SQLAlchemy URL of the target')",
            "    parser.add_argument('--target-table', default='target_table')",
        ]
    elif recipe.target == "elasticsearch":
        args += [
            "    parser.add_argument('--es-url', default='http://localhost:9200')",
            "    parser.add_argument('--es-index', default='data')",
        ]
    else:
        args.append(
            "    parser.add_argument('--output', default="
            + _default_path(recipe.output_path, "output", recipe.target)
            + ")"
        )
    lines = [
        "#!/usr/bin/env python3",
        "# -*- coding: utf-8 -*-",
        '"""Generated by flowbridge\'s offline script generator (no LLM configured).',
        "",
        f"Request: {summary}",
        f"Understood: source={recipe.source}, target={recipe.target}, filters={recipe.filters}, "
        f"group_by={recipe.group_by}, aggregations={recipe.aggs}, monthly={recipe.monthly}, "
        f"dedupe={recipe.dedupe}, drop_incomplete={recipe.drop_incomplete}",
        "Review before use; this script was not executed by flowbridge.",
        '"""',
        "",
        "import argparse",
        "import logging",
        "import sys",
        "",
        "import pandas as pd",
        "",
        "logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')",
        "logger = logging.getLogger(__name__)",
        "",
        "",
        "def _looks_like_dates(column: pd.Series) -> bool:",
        "    if pd.api.types.is_datetime64_any_dtype(column):",
        "        return True",
        "    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):",
        "        return False",
        "    parsed = pd.to_datetime(column.head(20).astype(str), errors='coerce', format='mixed')",
        "    return bool(parsed.notna().all())",
        "",
        "",
        *reader,
        "",
        "",
        *_transform(recipe),
        "",
        "",
        *_writer(recipe),
        "",
        "",
        "def main() -> int:",
        "    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])",
        *args,
        "    args = parser.parse_args()",
        "    try:",
        "        frame = read_source(args)",
        "        logger.info('read %d rows', len(frame))",
        "        frame = transform(frame)",
        "        write_target(frame, args)",
        "        logger.info('wrote %d rows', len(frame))",
        "    except Exception:",
        "        logger.exception('script failed')",
        "        return 1",
        "    return 0",
        "",
        "",
        "if __name__ == '__main__':",
        "    sys.exit(main())",
    ]
    return "\n".join(lines) + "\n"


def _default_path(given: str | None, stem: str, kind: str) -> str:
    return repr(given or f"{stem}.{ {'excel': 'xlsx'}.get(kind, kind) }")


class OfflineProvider:
    name = "offline"

    def generate(self, request: str) -> GeneratedScript:
        return GeneratedScript(render(understand(request), request), self.name, None)


def get_provider() -> ScriptProvider:
    """The LLM when `llm_base_url` is set, else the offline generator (settings read on each call)."""
    from flowbridge.settings import get_settings

    settings = get_settings()
    if settings.llm_base_url:
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return LlmProvider(settings.llm_base_url, settings.llm_model, key)
    return OfflineProvider()
