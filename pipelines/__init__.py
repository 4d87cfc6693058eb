"""ferops pipelines."""
