"""Optuna tuning: one study per architecture and dataset, search spaces from params.yaml.

``tune_architecture`` runs trials through the project trainer (pruned per epoch), stores the
study in a crash-safe journal file or a shared RDB (``OPTUNA_STORAGE``), logs a parent MLflow
run with nested trial runs, and writes ``chosen_params.json`` for the train stage.
"""

from components.tuning.config import TuneConfig, tune_config
from components.tuning.objective import Objective, trial_settings
from components.tuning.plots import write_plots
from components.tuning.run import (
    CHOSEN_PARAMS_FILE,
    STUDY_FILE,
    tune_architecture,
    write_outputs,
    write_skipped,
)
from components.tuning.space import parse_space
from components.tuning.study import (
    STORAGE_ENV,
    fail_orphaned_trials,
    open_storage,
    open_study,
    storage_url,
    study_name,
    study_summary,
)
from components.tuning.tracking import StudyTracker

__all__ = [
    "CHOSEN_PARAMS_FILE",
    "STORAGE_ENV",
    "STUDY_FILE",
    "Objective",
    "StudyTracker",
    "TuneConfig",
    "fail_orphaned_trials",
    "open_storage",
    "open_study",
    "parse_space",
    "storage_url",
    "study_name",
    "study_summary",
    "trial_settings",
    "tune_architecture",
    "tune_config",
    "write_outputs",
    "write_plots",
    "write_skipped",
]
