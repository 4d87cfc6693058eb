"""MLflow tracking: where runs go, and helpers to log params, metrics, plots and models.

Only the store helpers are imported here (cheap); the training-run logger lives in
:mod:`components.tracking.training_run` and the model loggers in
:mod:`components.tracking.models`, which pull in torch and MLflow on import.
"""

from components.tracking.store import (
    TrackingError,
    check_reachable,
    configure_tracking,
    default_tracking_uri,
    ensure_experiment,
    experiment_name,
    flatten_params,
    tracking_uri,
)

__all__ = [
    "TrackingError",
    "check_reachable",
    "configure_tracking",
    "default_tracking_uri",
    "ensure_experiment",
    "experiment_name",
    "flatten_params",
    "tracking_uri",
]
