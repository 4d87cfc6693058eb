"""``tune.min_gain``: the recipe's enqueued trial keeps its place unless a trial clearly
beats it, so a study of short, noisy trials does not hand training a setting chosen by noise.

Real Optuna studies with a known objective: the enqueued trial scores 0.50 and a random
trial scores what the test makes it.
"""

from __future__ import annotations

import optuna
import pytest

from components.errors import ConfigError
from components.tuning.config import TuneConfig
from components.tuning.study import chosen_trial, study_summary

RECIPE = {"x": 0.5}


def _study(direction: str, other: float, *, enqueue: bool = True) -> optuna.Study:
    """Trial 0 is the recipe (x = 0.5, score 0.5); trial 1 scores ``other``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    if enqueue:
        study.enqueue_trial(RECIPE)
    scores = iter([0.5, other])
    study.optimize(lambda t: (t.suggest_float("x", 0.0, 1.0), next(scores))[1], n_trials=2)
    return study


@pytest.mark.parametrize(("other", "min_gain", "chosen"), [
    (0.52, 0.05, 0),   # two points better: noise at this margin, the recipe stays
    (0.56, 0.05, 1),   # six points better: the trial wins
    (0.52, 0.0, 1),    # no margin: the plain best
    (0.40, 0.05, 0),   # worse: the recipe is the best anyway
])
def test_a_trial_displaces_the_recipe_only_by_the_margin(other: float, min_gain: float,
                                                         chosen: int) -> None:
    trial, reason = chosen_trial(_study("maximize", other), min_gain)
    assert trial is not None and trial.number == chosen, reason
    if chosen == 0:
        assert trial.params == RECIPE


def test_the_margin_follows_the_direction() -> None:
    trial, _ = chosen_trial(_study("minimize", 0.48), 0.05)   # lower loss, but within margin
    assert trial is not None and trial.number == 0
    trial, _ = chosen_trial(_study("minimize", 0.40), 0.05)
    assert trial is not None and trial.number == 1


def test_without_an_enqueued_trial_the_best_is_taken() -> None:
    study = _study("maximize", 0.9, enqueue=False)
    trial, reason = chosen_trial(study, 0.5)
    assert trial is not None and trial.number == study.best_trial.number, reason


def test_the_summary_records_both_the_best_and_the_chosen_trial() -> None:
    summary = study_summary(_study("maximize", 0.52), 0.05)
    assert (summary["chosen_trial"], summary["chosen_value"], summary["chosen_params"]) == (
        0, 0.5, RECIPE)
    assert (summary["best_trial"], summary["best_value"]) == (1, 0.52)
    assert "tune.min_gain 0.05" in summary["chosen_because"]


def test_a_negative_margin_is_refused() -> None:
    with pytest.raises(ConfigError, match="tune.min_gain"):
        TuneConfig(min_gain=-0.1)
