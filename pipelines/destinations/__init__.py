"""Destination code: the pipeline and its DuckDB file, the run lock and its fence, dialects,
Delta tables, dlt's private API and tools."""
