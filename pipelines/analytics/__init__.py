"""What the data shows: the views, their checked functions, the report, its chart and Markdown."""
