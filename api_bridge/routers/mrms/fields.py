"""Reading the 003 MRMS request fields: which names a legacy client may use, which are required, how long.

HTTP parsing lives here, next to the router; the values the records themselves are made of (the
document's times, statuses, result JSON, early-stop rule) are checked by storage.mrms.repository, which
the training flow shares. Every refusal is a `RecordError`, which the router answers with "error".
"""

from __future__ import annotations

from collections.abc import Iterable

from storage.mrms.repository import MAX_ID, RecordError, parse_float, parse_json_object

HIST_KEYS = ("hist_no", "learn_hist_no")  # the document uses both names for the same number
EXTERNAL_VALUES = {"y", "yes", "true", "1", "external"}


def require(value: str | None, name: str) -> str:
    if value is None or not value.strip():
        raise RecordError(f"{name} is required")
    value = value.strip()
    if len(value) > MAX_ID:
        raise RecordError(f"{name} is longer than {MAX_ID} characters")
    return value


def optional(value: str | None, name: str, limit: int = MAX_ID) -> str | None:
    """An optional id-like field: None when absent or blank, else stripped and at most `limit` characters
    (what its column holds)."""
    value = (value or "").strip()
    if not value:
        return None
    if len(value) > limit:
        raise RecordError(f"{name} is longer than {limit} characters")
    return value


def first(fields: dict[str, str], names: Iterable[str]) -> str | None:
    """The first present field among the names a legacy client may use for one parameter."""
    for name in names:
        if fields.get(name, "").strip():
            return fields[name]
    return None


def hist_no(fields: dict[str, str], *extra: str) -> str:
    """The learning history's number under any of its names (`extra` first, e.g. get_learn_logs' id)."""
    return require(first(fields, (*extra, *HIST_KEYS)), "hist_no")


def optional_hist_no(fields: dict[str, str]) -> str | None:
    return (first(fields, HIST_KEYS) or "").strip() or None


def parse_tags(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def is_external(fields: dict[str, str]) -> bool:
    """The client asked for an external worker (external=Y or trainer=external)."""
    return (fields.get("external") or fields.get("trainer") or "").strip().lower() in EXTERNAL_VALUES


def cpu_percent(fields: dict[str, str]) -> float:
    """cpu is {"percent": ...} in a JSON body; form clients may send cpu=<number> or cpu_percent."""
    raw = require(first(fields, ("cpu", "cpu_percent", "percent")), "cpu")
    if raw.strip().startswith("{"):
        raw = str(parse_json_object(raw, "cpu").get("percent"))
    return parse_float(raw, "cpu.percent")


def check_text(fields: dict[str, str], *more: str) -> None:
    """NUL cannot be stored in (nor compared with) a PostgreSQL text column: refuse it in any field name,
    value, or other client text (`more`, e.g. an upload's file name)."""
    if any("\x00" in text for pair in fields.items() for text in pair) or any("\x00" in t for t in more):
        raise RecordError("NUL characters are not allowed")
