"""Search-space grammar and tune-section validation: what a user mistyping params.yaml sees."""

from __future__ import annotations

import optuna
import pytest

from components.errors import ConfigError
from components.tuning import parse_space, trial_settings, tune_config
from tests.tuning.conftest import make_params


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "floot", "low": 0, "high": 1}, "tune.spaces.arch.lr.type: 'floot'"),
        ({"type": "float", "low": 0, "high": 1, "logg": True}, "unknown key 'logg'"),
        ({"type": "float", "low": 0}, "missing key 'high'"),
        ({"type": "float", "low": 1.0, "high": 0.5}, "low 1.0 is above high 0.5"),
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log scale needs low > 0"),
        ({"type": "int", "low": 1.5, "high": 4}, "tune.spaces.arch.lr.low: 1.5 is not an int"),
        ({"type": "categorical", "choices": []}, "expected a non-empty list"),
        ({"type": "categorical", "choices": [[1, 2]]}, "is not a scalar"),
        ({"type": "float", "low": 0.1, "high": 1, "log": "yes"}, "log: expected true or false"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_malformed_parameter_names_the_key(spec, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_space({"lr": spec}, "tune.spaces.arch")


def test_space_suggests_values_inside_the_declared_ranges() -> None:
    space = parse_space({
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "k": {"type": "int", "low": 2, "high": 4},
        "batch_size": {"type": "categorical", "choices": [16, 32]},
        "width": {"type": "float", "low": 0.25, "high": 1.0, "step": 0.25},
    }, "tune.spaces.x")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = []
    for _ in range(20):
        trial = study.ask()
        values = {name: spec.suggest(trial, name) for name, spec in space.items()}
        study.tell(trial, 0.0)
        seen.append(values)
    assert all(1e-4 <= v["lr"] <= 1e-2 for v in seen)
    assert {v["k"] for v in seen} == {2, 3, 4}
    assert {v["batch_size"] for v in seen} == {16, 32}
    assert {v["width"] for v in seen} <= {0.25, 0.5, 0.75, 1.0}
    distributions = study.trials[0].distributions
    assert distributions["lr"].log
    assert isinstance(distributions["k"], optuna.distributions.IntDistribution)


def test_tune_section_rejects_unknown_keys_and_bad_spaces() -> None:
    with pytest.raises(ConfigError, match="tune: unknown key 'n_trails'"):
        tune_config({"n_trails": 3})
    with pytest.raises(ConfigError, match=r"tune\.spaces\.baseline_cnn\.lr\.type"):
        tune_config({"spaces": {"baseline_cnn": {"lr": {"type": "uniform"}}}})
    with pytest.raises(ConfigError, match="tune.pruner"):
        tune_config({"pruner": "asha"})


def test_direction_must_match_the_metric() -> None:
    with pytest.raises(ConfigError, match="use minimize"):
        tune_config({"metric": "val_loss", "direction": "maximize"})
    with pytest.raises(ConfigError, match="tune.metric"):
        tune_config({"metric": "test_uar"})


def test_missing_space_and_bad_enqueue_are_named() -> None:
    cfg = tune_config(make_params(enqueue={"baseline_cnn": [{"learning_rate": 0.1}]})["tune"])
    with pytest.raises(ConfigError, match="no search space for 'partition_cnn'"):
        cfg.space("partition_cnn")
    with pytest.raises(ConfigError, match="'learning_rate' is not in tune.spaces.baseline_cnn"):
        cfg.queued("baseline_cnn")


def test_trial_values_land_where_the_train_stage_reads_them() -> None:
    params = make_params()
    cfg = tune_config(params["tune"])
    settings, extra = trial_settings(params["train"], "baseline_cnn",
                                     {"lr": 0.005, "dropout": 0.3, "batch_size": 16}, cfg)
    assert (settings.lr, settings.batch_size) == (0.005, 16)  # trainer settings
    assert extra["dropout"] == 0.3 and extra["width"] == 0.125  # model kwargs kept + tuned
    assert settings.epochs == cfg.epochs and settings.monitor == "val_loss"
    assert settings.use_tuned is False


def test_a_trial_runs_a_prefix_of_the_final_runs_schedule() -> None:
    """The trial's learning rates are the final run's first epochs' (not the schedule
    squeezed into the trial's epochs, which ranks a low rate first)."""
    import torch

    from components.training.trainer import build_scheduler

    params = make_params()
    params["train"].update(epochs=12, schedule="onecycle")
    params["train"]["overrides"] = {"partition_cnn": {"epochs": 9}}
    cfg = tune_config({**params["tune"], "epochs": 2})
    settings, _ = trial_settings(params["train"], "baseline_cnn", {"lr": 0.002}, cfg)
    assert (settings.epochs, settings.schedule_epochs) == (2, 12)
    partition, _ = trial_settings(params["train"], "partition_cnn", {"lr": 0.002}, cfg)
    assert partition.schedule_epochs == 9  # the architecture's own epochs

    def rates(train_cfg, steps: int) -> list[float]:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=train_cfg.lr)
        scheduler, per_batch = build_scheduler(train_cfg, optimizer, steps_per_epoch=5)
        assert per_batch
        seen = []
        for _ in range(steps):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return seen

    final = settings.replace(epochs=12, schedule_epochs=0)
    assert rates(settings, 10) == rates(final, 10)
    squeezed = settings.replace(schedule_epochs=0)
    assert max(rates(squeezed, 10)) == pytest.approx(0.002)  # the whole cycle in 2 epochs
    assert max(rates(settings, 10)) < 0.002 * 0.7  # still warming up, as the real run is
    with pytest.raises(ConfigError, match="schedule_epochs"):
        settings.replace(schedule_epochs=1)


def test_null_spec_drops_an_inherited_parameter_and_enqueue_may_not_name_it() -> None:
    space = parse_space({"k": None, "threshold": {"type": "float", "low": 0.3, "high": 0.8}},
                        "tune.spaces.hierarchical")
    assert list(space) == ["threshold"]
    with pytest.raises(ConfigError, match="every parameter is null"):
        parse_space({"k": None}, "tune.spaces.hierarchical")
    cfg = tune_config({"spaces": {"hierarchical": {
        "k": None, "threshold": {"type": "float", "low": 0.3, "high": 0.8}}},
        "enqueue": {"hierarchical": [{"k": 4}]}})
    with pytest.raises(ConfigError, match="'k' is not in tune.spaces.hierarchical"):
        cfg.queued("hierarchical")
