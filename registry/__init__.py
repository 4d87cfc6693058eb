"""ferops registry."""
