"""An offline task's result artifact: locations without credentials, the inner job's summary."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tasks.result_artifacts import (
    ArtifactSpec,
    md_table,
)


def location(info: Mapping[str, Any], path_key: str) -> str:
    """`HDFS://host:port/path` or `CEPH://host:port/bucket#path`: where, never who (no user, no key)."""
    kind = str(info.get("fileSystemType") or "?")
    path = str(info.get(path_key) or "")
    return f"{kind}://{info.get('host')}:{info.get('port')}/{path.lstrip('/')}"


def offline_artifacts(
    *,
    summary: Mapping[str, Any],
    input_info: Mapping[str, Any],
    output_info: Mapping[str, Any],
    inner_summary: Mapping[str, Any] | None,
) -> list[ArtifactSpec]:
    """Input and output locations, the files written and the inner job's own summary (its result.json)."""
    output_files = list(summary.get("output_files") or [])
    lines = [
        f"## Offline task {summary.get('taskId')}: {summary.get('algorithm')}",
        "",
        md_table(
            ["", ""],
            [
                [
                    "input",
                    f"`{location(input_info, 'inputPath')}` "
                    f"({len(summary.get('input_files') or [])} file(s), "
                    f"{summary.get('input_bytes', 0)} bytes)",
                ],
                [
                    "output",
                    f"`{output_info.get('fileSystemType')}://{output_info.get('host')}:"
                    f"{output_info.get('port')}/{str(summary.get('output_folder') or '').lstrip('/')}`",
                ],
                ["files written", len(output_files)],
                ["algorithm run", f"flow run `{summary.get('algorithm_run')}`"],
            ],
        ),
    ]
    if output_files:
        lines += ["", "### Output files", "", *[f"- `{f}`" for f in output_files[:50]]]
        if len(output_files) > 50:
            lines.append(f"- … {len(output_files) - 50} more")
    if inner_summary:
        text = json.dumps(_brief(inner_summary), indent=2, ensure_ascii=False, default=str)
        lines += ["", f"### {summary.get('algorithm')} summary", "", "```json", text, "```"]
    return [
        ArtifactSpec(
            "markdown",
            "offline-task-summary",
            "Input and output locations and the algorithm's summary.",
            markdown="\n".join(lines),
        )
    ]


def _brief(value: Any, depth: int = 0) -> Any:
    """The inner summary without long lists (a file list can hold thousands of entries)."""
    if isinstance(value, Mapping):
        return {k: _brief(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list) and len(value) > 10:
        return [*(_brief(v, depth + 1) for v in value[:10]), f"… {len(value) - 10} more"]
    return value


def offline_from_run(
    summary: Mapping[str, Any], input_info: Mapping[str, Any], output_info: Mapping[str, Any]
) -> list[ArtifactSpec]:
    """The offline task's artifact; the inner job's result.json is read from its run folder."""
    from storage.filesystems import get_storage

    inner = get_storage().read_summary(str(summary.get("algorithm_run")))
    return offline_artifacts(
        summary=summary, input_info=input_info, output_info=output_info, inner_summary=inner
    )
