"""ferops components."""
