"""001 offline task flow: stage HDFS/CEPH input, run a registered job type as a subflow, copy results back."""
