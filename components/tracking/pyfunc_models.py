"""MLflow pyfunc wrapper for the estimators (``svm_fusion``, ``hierarchical``).

Estimators mix torch sub-networks with scikit-learn parts, so no single MLflow flavor fits.
Wrapping them as a :class:`mlflow.pyfunc.PythonModel` lets the registry, evaluation and
serving load and call them exactly like a torch model: the input is the same channel-stacked
float32 batch (``MODEL_INPUTS`` order, as the torch models read it) and the output is one row
of per-class probabilities per sample.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np

ESTIMATOR_ARTIFACT = "estimator"  # key of the pickled estimator in the model's artifacts


class EstimatorModel(mlflow.pyfunc.PythonModel):
    """Serves a fitted classifier from its ``model.pkl`` (``{"spec", "estimator"}``, joblib)."""

    def __init__(self) -> None:
        self.estimator: Any = None

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Unpickle the classifier from the model's artifact (runs once per load)."""
        import joblib

        payload = joblib.load(context.artifacts[ESTIMATOR_ARTIFACT])
        self.estimator = payload["estimator"] if isinstance(payload, dict) else payload

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext | None,
        model_input: np.ndarray,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Per-class probabilities ``(N, num_classes)`` for a stacked float32 batch.

        ``model_input`` is ``(N, C, H, W)`` for stills or ``(N, T, C, H, W)`` for clips with
        ``C`` the sum of the modalities' channels, as the networks read it.

        Raises:
            DataError: the batch's shape does not fit the model.
        """
        return self.estimator.predict_proba(np.asarray(model_input, dtype=np.float32))
