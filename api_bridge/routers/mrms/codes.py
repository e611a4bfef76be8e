"""Reply codes of the 003 MRMS API, exactly as its document lists them (statuses: storage/mrms/domain.py)."""

from __future__ import annotations

from enum import StrEnum

API = "003"
DATASET_FIELD = "file"  # multipart field of /mrms/dataset_upload (flowbridge extension)


class Reply(StrEnum):
    """The plain-text answers of every update endpoint."""

    OK = "1"
    ERROR = "error"
