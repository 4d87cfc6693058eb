"""Model zoo: every seed architecture by name, the seed 002 grouping, EC-STFL and helpers."""

from components.models.hierarchy import (
    Grouping,
    MergeStep,
    cross_entropy_h,
    group_categories,
    similarity,
    similarity_matrix,
)
from components.models.losses import ec_stfl_loss
from components.models.registry import (
    ESTIMATORS,
    MODEL_INPUTS,
    available_models,
    build_model,
    create_model,
    stack_inputs,
)
from components.models.sampling import ClassAwareBatchSampler
from components.models.simple_fit import predict_proba

__all__ = [
    "ESTIMATORS",
    "MODEL_INPUTS",
    "ClassAwareBatchSampler",
    "Grouping",
    "MergeStep",
    "available_models",
    "build_model",
    "create_model",
    "cross_entropy_h",
    "ec_stfl_loss",
    "group_categories",
    "predict_proba",
    "similarity",
    "similarity_matrix",
    "stack_inputs",
]
