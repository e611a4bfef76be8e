"""004 DataFlow flow: a dataflow's config composed into Prefect tasks at run time."""
