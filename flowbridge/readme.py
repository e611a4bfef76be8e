"""Regenerate the generated parts of README.md (the settings table): `python -m flowbridge.readme`."""

from __future__ import annotations

import re
from pathlib import Path

from flowbridge.settings import settings_table

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    text = README.read_text()
    updated = re.sub(
        r"<!-- settings:start -->\n.*?<!-- settings:end -->",
        lambda _m: f"<!-- settings:start -->\n{settings_table()}\n<!-- settings:end -->",
        text,
        flags=re.S,
    )
    README.write_text(updated)


if __name__ == "__main__":
    main()
