"""Preprocessing: face detection and eye alignment, contrast stretching, enhancement,
normalisation and frame sampling (seed 000 sections 1.4-1.5, seed 001 2.2, seed 004 5.1/5.3).

Entry point for the stage: :func:`preprocess_manifest`; building blocks live in
:mod:`.align` (geometry), :mod:`.intensity` (pixel values), :mod:`.frames` (clip length) and
:mod:`.process` (a chunk of rows, the unit of parallel work).
"""

from components.preprocess.config import EnhanceConfig, PreprocessConfig, preprocess_config
from components.preprocess.stage import preprocess_manifest

__all__ = ["EnhanceConfig", "PreprocessConfig", "preprocess_config", "preprocess_manifest"]
