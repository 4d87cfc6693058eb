"""ferops model registry: register candidates, gate and promote them, roll back.

One registered model per task (``ferops-image``, ``ferops-rgbd``, ``ferops-video``); MLflow
aliases, not the deprecated stages, mark ``candidate``, ``staging``, ``champion`` and
``previous-champion``. ``pipelines/registry.py`` is the CLI (``ferops registry ...``).
"""

from __future__ import annotations

from registry.gate import Decision, VersionScore, decide
from registry.policy import GatePolicy, load_policy
from registry.promote import PromotionResult, RollbackResult, promote, rollback
from registry.register import Registered, register_candidates

__all__ = [
    "Decision", "GatePolicy", "PromotionResult", "Registered", "RollbackResult",
    "VersionScore", "decide", "load_policy", "promote", "register_candidates", "rollback",
]
