"""Where 003 MRMS files live, in the form its records keep them.

Datasets and exported models are recorded relative to the storage root (the `path` and `model_path`
columns), so a record stays valid when the root URL moves (local folder → s3://). The layout itself is
storage.filesystems' (uploads/<api>/<id>/…, runs/<flow run id>/…): these helpers only take its paths
apart and put them back together, they never build one by hand.
"""

from __future__ import annotations

import posixpath

from storage.filesystems import Storage


def dataset_filename(file_format: str) -> str:
    """The one file of a dataset's upload folder: data.csv or data.parquet, whatever the client named it."""
    return f"data.{file_format}"


def recorded_path(storage: Storage, path: str) -> str:
    """A storage path (from Storage.upload_path, Storage.write_result, …) as a record keeps it."""
    return posixpath.relpath(path, storage.root)


def stored_path(storage: Storage, recorded: str) -> str:
    """The storage path of a recorded one; the recorded form is validated again, component by component."""
    return storage.path(recorded)
