"""000 traffic has no tables of its own: uploads and results are files (storage.filesystems) and jobs live
in the legacy-id map (storage.jobs).
"""
