"""004 DataFlow: the runnable config model (config), pipeline steps (steps), OpenLineage events and script
generation.
"""
