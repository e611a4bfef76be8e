"""001 offline platform persistence: task records (models) and the HDFS/CEPH file systems (remote)."""
