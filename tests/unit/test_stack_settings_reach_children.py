"""An EmbeddedStack built from a Settings object (the tests' TestStack, the benchmarks) must start its
children with those settings: the runner and the bridge read theirs from the environment they get."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowbridge.settings import Settings
from flowbridge.stack import EmbeddedStack


def test_children_read_the_settings_the_stack_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = Settings(data_dir=tmp_path, runner_limit=7, zombie_after_seconds=45, mrms_train_steps=3)
    env = EmbeddedStack(given).environment()
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = Settings()  # what the runner's and the bridge's get_settings() read
    assert (child.runner_limit, child.zombie_after_seconds, child.mrms_train_steps) == (7, 45, 3)
    assert env["PREFECT_RUNNER_PROCESS_LIMIT"] == "7"
