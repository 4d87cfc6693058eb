"""MLflow tracking: where runs go, and helpers to log params, metrics, plots and models."""

from components.tracking.store import (
    configure_tracking,
    default_tracking_uri,
    ensure_experiment,
    experiment_name,
    flatten_params,
)

__all__ = [
    "configure_tracking",
    "default_tracking_uri",
    "ensure_experiment",
    "experiment_name",
    "flatten_params",
]
