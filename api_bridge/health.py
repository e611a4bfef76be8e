"""Host metrics the bridge reports about itself (memory and disk through psutil).

Platform code, not a router's: GasFlux's GET /stats shows them today, and any other service's health
answer can use the same numbers. Reading them is blocking, so callers run it off the event loop.
"""

from __future__ import annotations

import os

import psutil

from flowbridge.settings import get_settings
from storage.filesystems import get_storage

GB = 1024**3


def system_usage() -> dict[str, float]:
    """Memory of this host and the disk holding the storage root (or the data folder on remote storage)."""
    memory = psutil.virtual_memory()
    storage = get_storage()
    folder = storage.local_path(storage.root) or str(get_settings().data_dir)
    disk = psutil.disk_usage(folder if os.path.exists(folder) else "/")
    return {
        "memory_usage_percent": round(memory.percent, 1),
        "memory_used_gb": round((memory.total - memory.available) / GB, 2),
        "memory_total_gb": round(memory.total / GB, 2),
        "disk_usage_percent": round(disk.percent, 1),
        "disk_used_gb": round(disk.used / GB, 2),
        "disk_total_gb": round(disk.total / GB, 2),
    }
