"""The one place that knows Dagster's run machinery.

Submit, find by tag, status, terminate, partitions.
"""
