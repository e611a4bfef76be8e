"""GASFLUX_LOG_FILE rotates (RotatingFileHandler): it never grows past its size, older lines move to
numbered backups and the oldest beyond the count are dropped."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowbridge.settings import get_settings
from tasks.gasflux import log_file


@pytest.fixture()
def fresh_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    logger = logging.getLogger("gasflux.api")
    saved = list(logger.handlers), getattr(logger, "_gasflux_configured", False)
    logger.handlers.clear()
    logger._gasflux_configured = False  # type: ignore[attr-defined]
    yield logger
    for handler in logger.handlers:
        handler.close()
    logger.handlers[:] = saved[0]
    logger._gasflux_configured = saved[1]  # type: ignore[attr-defined]
    get_settings.cache_clear()


def test_the_request_log_rotates(
    fresh_logger: logging.Logger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWBRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GASFLUX_LOG_FILE", "logs/api.log")
    monkeypatch.setattr(log_file, "LOG_MAX_BYTES", 2000)
    monkeypatch.setattr(log_file, "LOG_BACKUPS", 2)
    get_settings.cache_clear()
    logger = log_file.gasflux_file_logger()
    assert logger is fresh_logger
    for i in range(200):
        logger.info("GET /stats - 200 - 0.01s request %03d", i)
    for handler in logger.handlers:
        handler.flush()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["api.log", "api.log.1", "api.log.2"]
    for name in files:
        assert (tmp_path / "logs" / name).stat().st_size <= 2000
    assert "request 199" in (tmp_path / "logs" / "api.log").read_text(encoding="utf-8")
    everything = "".join((tmp_path / "logs" / n).read_text(encoding="utf-8") for n in files)
    assert "request 000" not in everything  # the oldest beyond the backups are gone
