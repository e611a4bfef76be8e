"""GasFlux's own log file (GASFLUX_LOG_FILE): the request lines of the bridge and the stage lines of the flow.

One place for both writers, so the file, its format and its rotation are the same whoever writes.
"""

from __future__ import annotations

import logging
import logging.handlers
import threading
from pathlib import Path

from flowbridge.settings import get_settings

LOG_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
# GASFLUX_LOG_FILE rotates at LOG_MAX_BYTES, keeping LOG_BACKUPS older files (<file>.1 … <file>.5)
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5

_file_logger_lock = threading.Lock()


def log_file_path() -> Path:
    """GASFLUX_LOG_FILE; a relative path is taken under the data folder (never the code checkout)."""
    settings = get_settings()
    path = Path(settings.gasflux_log_file).expanduser()
    return path if path.is_absolute() else settings.data_dir / path


def gasflux_file_logger() -> logging.Logger:
    """The document's log: `<time> - INFO - [task:<id>] POST /upload - 202 - 2.34s` lines in one file,
    rotated by the standard library's RotatingFileHandler (one writing process per file: a bridge)."""
    logger = logging.getLogger("gasflux.api")
    with _file_logger_lock:
        if not getattr(logger, "_gasflux_configured", False):
            settings = get_settings()
            path = log_file_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
            )
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            logger.addHandler(handler)
            level = "DEBUG" if settings.gasflux_debug else settings.gasflux_log_level.upper()
            logger.setLevel(getattr(logging, level, logging.INFO))
            logger.propagate = False
            logger._gasflux_configured = True  # type: ignore[attr-defined]
    return logger
