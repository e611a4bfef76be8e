"""004 DataFlow persistence: dataflow records (models, repository), the relation/lineage graph (graph) and
English names (naming).
"""
