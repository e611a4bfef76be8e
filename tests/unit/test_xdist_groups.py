"""`make test` runs with `--dist loadgroup`: the default-config stack, the scale-out topology and the
traffic accuracy windows are each one `xdist_group`, so one worker starts that stack once and the accuracy
means reuse the windows that worker scored. pytest 9.2 silently broke this with pytest-xdist 3.8 (the
group suffix no longer reached the node id, every grouped test went to any worker, the default stack started
three times and the accuracy windows were scored twice: +8 min). This runs a tiny suite the same way and
checks the grouped tests share one worker process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SUITE = """
import os
import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("n", range(4))
def test_grouped(n):
    with open(os.environ["PIDS"], "a") as out:
        out.write(f"{os.getpid()}\\n")
"""

OTHERS = "".join(f"def test_other_{n}():\n    pass\n\n\n" for n in range(6))


def test_loadgroup_sends_a_group_to_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(SUITE)
    (tmp_path / "test_others.py").write_text(OTHERS)
    pids = tmp_path / "pids"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-n",
        "3",
        "--dist",
        "loadgroup",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    done = subprocess.run(
        [*command, str(tmp_path)],
        cwd=tmp_path,
        env={"PIDS": str(pids), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    workers = set(pids.read_text().split())
    assert len(pids.read_text().split()) == 4
    assert len(workers) == 1, f"the group ran on {len(workers)} workers: pytest and pytest-xdist disagree"
