"""001 offline platform: copying a task's files between the caller's HDFS/CEPH and project storage
(remote_io) and the failure mails (notify).
"""
