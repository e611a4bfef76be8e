"""Flow-run names that say what a run is, so Prefect's runs list reads without opening each run.

The gateway passes them to `create_flow_run_from_deployment(name=...)`. Legacy lookups never use a run's
name (they go through the metadata DB's id map and the run's tags), so a name is free text for people.
"""

from __future__ import annotations

import re

MAX_LENGTH = 120
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


def run_name(kind: str, *parts: object) -> str:
    """`kind-part-part…`: empty parts left out, control characters dropped, at most MAX_LENGTH characters
    (the last part, the legacy id, is kept whole; a long file name is cut in the middle)."""
    words = [_UNPRINTABLE.sub("", str(p)).strip() for p in parts if p not in (None, "")]
    words = [w for w in words if w]
    name = "-".join([kind, *words])
    if len(name) <= MAX_LENGTH or len(words) < 2:
        return name[:MAX_LENGTH]
    head, last = "-".join([kind, *words[:-1]]), words[-1]
    room = max(MAX_LENGTH - len(last) - 2, 8)
    return f"{head[: room // 2]}…{head[-(room - room // 2) :]}-{last}"[:MAX_LENGTH]
