"""Model zoo: every architecture by name behind one classifier interface, how a trained
model is saved and rebuilt, the seed 002 grouping, EC-STFL and helpers."""

from components.models.classifier import (
    Classifier,
    FitLoop,
    FitOutcome,
    ModelSpec,
    TorchClassifier,
    TrainingNeeds,
)
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
    MODEL_INPUTS,
    available_models,
    create_classifier,
    create_model,
    expression_groups,
    load_trained,
    named_kwargs,
    plain_networks,
    seeded_kwargs,
    stack_inputs,
    training_needs,
)
from components.models.sampling import ClassAwareBatchSampler
from components.models.simple_fit import predict_proba

__all__ = [
    "MODEL_INPUTS",
    "ClassAwareBatchSampler",
    "Classifier",
    "FitLoop",
    "FitOutcome",
    "ModelSpec",
    "TorchClassifier",
    "TrainingNeeds",
    "Grouping",
    "MergeStep",
    "available_models",
    "create_classifier",
    "create_model",
    "expression_groups",
    "cross_entropy_h",
    "ec_stfl_loss",
    "group_categories",
    "load_trained",
    "plain_networks",
    "predict_proba",
    "similarity",
    "similarity_matrix",
    "named_kwargs",
    "seeded_kwargs",
    "stack_inputs",
    "training_needs",
]
