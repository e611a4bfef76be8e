"""The README's settings table is generated from the settings class and must not drift from it."""

from __future__ import annotations

import re
from pathlib import Path

from flowbridge.settings import settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_table_matches_the_settings_class() -> None:
    text = README.read_text()
    block = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", text, re.S)
    assert block, "README lacks the settings markers"
    assert block.group(1).strip() == settings_table().strip(), (
        "README settings table is stale: run `python -m flowbridge.readme` to regenerate it"
    )
