"""Serving trained models on raw inputs: the pyfunc, the predict CLI's engine, ONNX export."""

from components.serving.decode import InputError
from components.serving.predictor import Predictor
from components.serving.pyfunc import FaceExpressionModel, load_serving, log_serving_model
from components.serving.settings import ServingConfig, ServingSettings, serving_config

__all__ = [
    "FaceExpressionModel",
    "InputError",
    "Predictor",
    "ServingConfig",
    "ServingSettings",
    "load_serving",
    "log_serving_model",
    "serving_config",
]
