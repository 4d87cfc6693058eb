"""The project trainer: one loop for every torch model, metrics, checkpoints, reports.

``Trainer`` trains (optionally DistributedDataParallel under torchrun), ``loop.TrainerLoop``
hands it to any classifier's ``fit`` (``make_train_fn`` for an estimator's sub-networks),
``run.train_run`` does a whole run and writes ``model.pt|pkl``, ``metrics.json``,
``per_class.json``, ``history.csv`` and plots.
"""

from components.training.config import TrainConfig, resolve_config
from components.training.data import (
    SplitData,
    choose_task,
    load_split,
    occlusion_splits,
    read_meta,
)
from components.training.distributed import DistContext, init_distributed
from components.training.metrics import classification_report, confusion_matrix, summarize
from components.training.trainer import Trainer, TrainResult, make_train_fn, seed_everything

__all__ = [
    "DistContext",
    "SplitData",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "choose_task",
    "classification_report",
    "confusion_matrix",
    "init_distributed",
    "load_split",
    "make_train_fn",
    "occlusion_splits",
    "read_meta",
    "resolve_config",
    "seed_everything",
    "summarize",
]
