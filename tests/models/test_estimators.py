"""The seed 000 SVM fusion and the seed 002 hierarchical classifier, end to end on toy data."""

from __future__ import annotations

import numpy as np
import pytest

from components.errors import DataError
from components.models import create_model, stack_inputs
from components.models.hierarchical import confusion_counts
from components.training.config import TrainConfig
from components.training.trainer import make_train_fn

SMALL = {"width": 0.25, "fc_width": 16}


def quick_train_fn(epochs: int, lr: float = 1e-3, batch_size: int = 32, seed: int = 0):
    """The project's own training loop (``make_train_fn``) with plain Adam for toy data."""
    cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, optimizer="adam",
                      schedule="none", weight_decay=0.0, mirror=False, patience=0,
                      progress=False, track=False)
    return make_train_fn(cfg)


def toy_images(n_per_class: int, classes: int, channels: int, seed: int, size: int = 32):
    """Each class lights a different horizontal band: separable for any small CNN."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    x = rng.normal(0.3, 0.05, size=(len(y), channels, size, size)).astype(np.float32)
    band = size // classes
    for i, label in enumerate(y):
        x[i, :, label * band : (label + 1) * band] += 0.7
    return x, y


@pytest.fixture(scope="module")
def fitted_svm():
    depth, y = toy_images(8, 3, 1, seed=0)
    color, _ = toy_images(8, 3, 3, seed=1)
    model = create_model(
        "svm_fusion", 4, 4, folds=2, seed=0, depth_kwargs=SMALL, color_kwargs=SMALL
    )
    train = quick_train_fn(epochs=15, lr=3e-3, batch_size=8, seed=0)
    return model.fit_arrays(depth, color, y, train), depth, color, y


def test_svm_fusion_probabilities_sum_to_one(fitted_svm):
    model, depth, color, y = fitted_svm
    proba = model.predict_proba_pair(depth, color)
    assert proba.shape == (len(y), 4)  # class 3 never seen: a zero column, still 4 wide
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (proba[:, 3] == 0).all()
    assert model.C_ in model.c_grid
    assert model.features(depth, color).shape == (len(y), 8)  # 2 x C softmax outputs


def test_svm_fusion_learns_the_toy_task(fitted_svm):
    """Scored on held-out samples drawn with other seeds, never on its training data."""
    model, _, _, _ = fitted_svm
    depth, y = toy_images(6, 3, 1, seed=10)
    color, _ = toy_images(6, 3, 3, seed=11)
    assert (model.predict_proba_pair(depth, color).argmax(axis=1) == y).mean() >= 0.9


def test_svm_fusion_reads_the_stacked_batch_depth_first(fitted_svm):
    model, depth, color, _ = fitted_svm
    stacked = np.concatenate([depth, color], axis=1)
    np.testing.assert_allclose(model.predict_proba(stacked), model.predict_proba_pair(depth, color))
    with pytest.raises(DataError, match="1 depth \\+ 3 colour"):
        model.predict_proba(color)


def test_estimators_fit_through_the_classifier_interface():
    """``fit(train, val, loop)`` on stacked splits, as the train and tune stages call it."""
    from components.training.data import SplitData
    from components.training.loop import TrainerLoop

    depth, y = toy_images(8, 3, 1, seed=0)
    color, _ = toy_images(8, 3, 3, seed=1)
    stacked = np.concatenate([depth, color], axis=1)
    train = SplitData.from_arrays(stacked, y, name="train")
    val = SplitData.from_arrays(stacked[::2], y[::2], name="val")
    cfg = TrainConfig(epochs=8, lr=3e-3, batch_size=8, optimizer="adam", schedule="none",
                      weight_decay=0.0, mirror=False, patience=0, progress=False, track=False)
    model = create_model("svm_fusion", 3, 4, folds=2, depth_kwargs=SMALL, color_kwargs=SMALL)
    outcome = model.fit(train, val, TrainerLoop(cfg))
    assert outcome.history == [] and outcome.best_score is None  # no epochs of its own
    assert model.predict_proba(stacked).shape == (len(y), 3)
    assert model.network() is None and not model.needs.distributed


def test_svm_fusion_rejects_a_class_with_one_sample():
    depth, y = toy_images(2, 2, 1, seed=0)
    color, _ = toy_images(2, 2, 3, seed=1)
    model = create_model("svm_fusion", 2, 4, folds=2, depth_kwargs=SMALL, color_kwargs=SMALL)
    with pytest.raises(DataError, match="at least 2"):
        model.fit_arrays(depth[:3], color[:3], y[:3], quick_train_fn(epochs=1))


@pytest.mark.parametrize("routing", ["hard", "soft"])
def test_hierarchical_fits_and_returns_distributions(routing):
    x, y = toy_images(6, 4, 1, seed=2)
    model = create_model(
        "hierarchical", 4, 1, k=3, routing=routing, folds=2, seed=0,
        class_names=["a", "b", "c", "d"], width=0.125, hidden=16,
    )
    model.fit_arrays(x, y, quick_train_fn(epochs=3, lr=3e-3, batch_size=8, seed=0))
    proba = model.predict_proba(x)
    assert proba.shape == (len(y), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert model.confusion_.sum() == len(y)  # every training sample predicted out-of-fold
    assert len(model.groups_) == 2 and len(model.merge_steps_) == 2
    assert sorted(c for unit in model.groups_ for c in unit) == ["a", "b", "c", "d"]
    assert len(model.second_models_) == sum(len(u) > 1 for u in model.groups_)
    if routing == "hard":
        # hard routing puts all mass inside one group
        unit_of = model.grouping_.unit_of()
        owners = np.array([[unit_of[c] for c in range(4)]] * len(y))
        top = owners[np.arange(len(y)), proba.argmax(axis=1)]
        assert np.allclose(np.where(owners == top[:, None], proba, 0).sum(axis=1), 1.0)


def test_confusion_counts_rows_are_true_classes():
    counts = confusion_counts(np.array([0, 0, 1]), np.array([1, 0, 1]), 2)
    assert counts.tolist() == [[1, 1], [0, 1]]


def test_stack_inputs_orders_channels_as_model_inputs():
    arrays = {
        "depth": np.zeros((2, 1, 4, 4)),
        "color": np.ones((2, 3, 4, 4)),
        "color2d": np.full((2, 3, 4, 4), 2.0),
    }
    stacked = stack_inputs("fusion_early", arrays)
    assert stacked.shape == (2, 7, 4, 4) and stacked.dtype == np.float32
    assert stacked[:, 0].max() == 0 and stacked[:, 4:].min() == 2
    with pytest.raises(DataError, match="color2d"):
        stack_inputs("fusion_early", {"depth": arrays["depth"], "color": arrays["color"]})


def test_hierarchical_rejects_an_unknown_base():
    from components.errors import ConfigError

    with pytest.raises(ConfigError, match="partition_cnn"):
        create_model("hierarchical", 4, 1, base="svm_fusion")


def test_hierarchical_is_deterministic_per_seed():
    x, y = toy_images(4, 3, 1, seed=3)

    def fitted_proba():
        model = create_model("hierarchical", 3, 1, k=3, folds=2, seed=5, width=0.125, hidden=8)
        model.fit_arrays(x, y, quick_train_fn(epochs=2, batch_size=8, seed=1))
        return model.predict_proba(x)

    np.testing.assert_array_equal(fitted_proba(), fitted_proba())


def _recording(train_fn):
    """``train_fn`` that also records each model's weights as its training starts and the
    model it returns, in call order (out-of-fold planar nets, first model, second models)."""
    starts: list[dict] = []
    trained: list = []

    def recording(model, *args, **kwargs):
        starts.append({k: v.clone() for k, v in model.state_dict().items()})
        trained.append(train_fn(model, *args, **kwargs))
        return trained[-1]

    return recording, starts, trained


def _same_trunk(start: dict, source) -> bool:
    source_state = source.state_dict()
    return all(bool((v == source_state[k]).all()) for k, v in start.items()
               if not k.startswith("head.4."))


@pytest.mark.parametrize(("first_init", "second_init"), [
    ("scratch", "scratch"), ("scratch", "first"), ("scratch", "planar"), ("planar", "planar")])
def test_hierarchical_networks_start_where_the_init_options_say(first_init, second_init):
    x, y = toy_images(6, 4, 1, seed=2)
    model = create_model("hierarchical", 4, 1, k=3, folds=2, seed=0, first_init=first_init,
                         second_init=second_init, width=0.125, hidden=16)
    recording, starts, trained = _recording(quick_train_fn(epochs=2, lr=3e-3, batch_size=8))
    model.fit_arrays(x, y, recording)
    assert model.second_models_ and model.group_model_ is not None
    planar, first = trained[1], trained[2]  # the last out-of-fold net, the first model
    assert first is model.group_model_
    assert _same_trunk(starts[2], planar) == (first_init == "planar")
    assert _same_trunk(starts[3], first) == (second_init == "first")
    assert _same_trunk(starts[3], planar) == (second_init == "planar")
    assert not hasattr(model, "_planar")  # the planar net is not kept in the fitted model


def test_second_init_first_with_a_single_group_starts_from_the_planar_network():
    """Threshold 0 merges every category into one group: no first model is trained, and the
    one second model starts from the planar network, the last one trained."""
    x, y = toy_images(6, 3, 1, seed=2)
    model = create_model("hierarchical", 3, 1, threshold=0.0, folds=2, seed=0,
                         second_init="first", width=0.125, hidden=16)
    recording, starts, trained = _recording(quick_train_fn(epochs=2, lr=3e-3, batch_size=8))
    model.fit_arrays(x, y, recording)
    assert model.group_model_ is None and len(model.second_models_) == 1
    assert len(starts) == 3  # two out-of-fold planar nets, then the one second model
    assert _same_trunk(starts[2], trained[1])


@pytest.mark.parametrize("second_rows", ["group", "full"])
def test_second_rows_full_repeats_a_group_to_the_training_set_size(second_rows):
    """The count rule (k = 4) merges 4 categories into 3 units, so one pair (12 of the 24
    rows) gets a second model: it trains on the pair's rows once per epoch ("group") or on
    them twice, the whole copies that fit in the 24 ("full"), labels repeated with them."""
    x, y = toy_images(6, 4, 1, seed=2)
    model = create_model("hierarchical", 4, 1, k=4, folds=2, seed=0, second_rows=second_rows,
                         width=0.125, hidden=16)
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    train_fn = quick_train_fn(epochs=1, lr=3e-3, batch_size=8)

    def recording(net, x_train, y_train, *rest, **kwargs):
        seen.append((x_train, y_train))
        return train_fn(net, x_train, y_train, *rest, **kwargs)

    model.fit_arrays(x, y, recording)
    assert len(model.second_models_) == 1 and len(seen) == 4  # 2 planar, first, second
    x_second, y_second = seen[-1]
    (pair,) = [members for members in model.grouping_.unit_indices if len(members) == 2]
    once = x[np.isin(y, pair)]
    copies = 1 if second_rows == "group" else 2
    assert len(y_second) == len(x_second) == 12 * copies
    np.testing.assert_array_equal(x_second, np.concatenate([once] * copies))
    np.testing.assert_array_equal(y_second[:12], y_second[-12:])
    assert set(y_second.tolist()) == {0, 1}


def test_first_labels_classes_routes_by_the_summed_probabilities_of_a_units_members():
    """The first model classifies the 4 categories (class 3 never seen), and a unit's
    probability is its members' sum over the categories seen; the second model still
    splits its group."""
    x, y = toy_images(6, 3, 1, seed=2)
    model = create_model("hierarchical", 4, 1, k=3, folds=2, seed=0, first_labels="classes",
                         width=0.125, hidden=16)
    model.fit_arrays(x, y, quick_train_fn(epochs=2, lr=3e-3, batch_size=8))
    from components.models.simple_fit import predict_proba

    classes = predict_proba(model.group_model_, x)
    assert classes.shape == (len(y), 4)  # the categories, not the units
    seen = classes[:, :3] / classes[:, :3].sum(axis=1, keepdims=True)
    expected = np.stack([seen[:, list(m)].sum(axis=1) for m in model.grouping_.unit_indices],
                        axis=1)
    np.testing.assert_allclose(model.unit_proba(x), expected, atol=1e-9)
    assert len(model.second_models_) == 1  # k = 3 merges one pair of the 3 seen categories
    np.testing.assert_allclose(model.predict_proba(x).sum(axis=1), 1.0, atol=1e-9)


@pytest.mark.parametrize(("second_rows", "rows"), [("group", 3 * 100), ("full", 6 * 100)])
def test_training_rows_count_every_second_net_a_budget_is_shared_over(second_rows, rows):
    """2 out-of-fold nets (100 rows together), the group net (100), then the second nets:
    100 together, or up to 100 each for at most 8 // 2 = 4 groups of two or more."""
    model = create_model("hierarchical", 8, 1, folds=2, second_rows=second_rows)
    assert model.training_rows(100) == rows


@pytest.mark.parametrize(("n_train", "n_group", "rows", "copies"), [
    (3136, 784, "full", 4), (3136, 1000, "full", 3), (100, 100, "full", 1), (100, 0, "full", 1),
    (3136, 784, "group", 1)])
def test_group_repeats_fits_whole_copies_into_the_training_set(n_train, n_group, rows, copies):
    from components.models.hierarchical import group_repeats

    assert group_repeats(n_train, n_group, rows) == copies


@pytest.mark.parametrize(("option", "value"), [("first_init", "first"),
                                               ("second_init", "fresh"),
                                               ("second_rows", "all"),
                                               ("first_labels", "units")])
def test_hierarchical_rejects_an_unknown_init(option, value):
    from components.errors import ConfigError

    with pytest.raises(ConfigError, match=f"{option}: '{value}' is not one of"):
        create_model("hierarchical", 4, 1, **{option: value})


@pytest.mark.parametrize("base", ["baseline_cnn", "partition_cnn"])
def test_copy_trunk_leaves_only_the_classifier_behind(base):
    """The classifier is the last linear or convolution layer (partition_cnn's is a 1x1
    convolution): everything else is copied, whatever the base network."""
    from components.models.hierarchical import copy_trunk

    source, target = create_model(base, 7, 3), create_model(base, 2, 3)
    assert copy_trunk(source, target) == len(target.state_dict()) - 2  # weight and bias


def test_copy_trunk_refuses_a_different_architecture():
    from components.errors import ConfigError
    from components.models.hierarchical import copy_trunk

    with pytest.raises(ConfigError, match="do not fit the network it should start"):
        copy_trunk(create_model("baseline_cnn", 3, 1, width=0.25),
                   create_model("baseline_cnn", 2, 1, width=0.5))


def test_the_train_stage_names_an_estimators_networks_by_their_expressions():
    """``named_kwargs`` hands the class names to a model that takes them (not to a plain
    network, which would refuse the kwarg), so a second model's part reads as its group."""
    from components.models import named_kwargs

    classes = ["anger", "fear", "surprise"]
    assert named_kwargs("baseline_cnn", {"width": 0.25}, classes) == {"width": 0.25}
    kwargs = named_kwargs("hierarchical", {"k": 3, "folds": 2, "width": 0.125, "hidden": 16},
                          classes)
    assert kwargs["class_names"] == classes
    parts: list[str] = []
    train_fn = quick_train_fn(epochs=1, lr=3e-3, batch_size=8)

    def recording(*args, part: str = "", **kwargs):
        parts.append(part)
        return train_fn(*args, part=part, **kwargs)

    x, y = toy_images(6, 3, 1, seed=2)
    model = create_model("hierarchical", 3, 1, seed=0, **kwargs).fit_arrays(x, y, recording)
    (group,) = [unit for unit in model.groups_ if len(unit) == 2]
    assert parts == ["planar fold 1", "planar fold 2", "first (groups)",
                     f"second ({group[0]} + {group[1]})"]
    assert set(group) <= set(classes)


def test_first_train_trains_the_first_model_alone_longer_and_with_its_own_augmentation():
    """``first_train: {epochs_scale: 2, shift: 1}``: the first model runs twice the run's
    epochs, every other network the run's; the settings reach only the first model's fit."""
    cfg = TrainConfig(epochs=2, lr=3e-3, batch_size=8, seed=0, optimizer="adam",
                      schedule="none", weight_decay=0.0, mirror=False, patience=0,
                      progress=False, track=False)
    rows: list[dict] = []
    train_fn = make_train_fn(cfg, on_history=rows.extend)
    settings_seen: dict[str, object] = {}

    def recording(*args, part: str = "", **kwargs):
        settings_seen[part] = kwargs.get("settings")
        return train_fn(*args, part=part, **kwargs)

    x, y = toy_images(6, 4, 1, seed=2)
    model = create_model("hierarchical", 4, 1, k=3, folds=2, seed=0, width=0.125, hidden=16,
                         first_train={"epochs_scale": 2, "shift": 1})
    model.fit_arrays(x, y, recording)
    epochs = {part: sum(row["part"] == part for row in rows) for part in settings_seen}
    assert epochs.pop("first (groups)") == 4
    assert set(epochs.values()) == {2}  # the planar folds and the second model
    assert settings_seen.pop("first (groups)") == {"epochs_scale": 2, "shift": 1}
    assert set(settings_seen.values()) == {None}


@pytest.mark.parametrize(("first_train", "match"), [
    ({"lr": 0.01}, "lr cannot be set for one network"),
    ({"epochs_scale": 0}, "epochs_scale: must be a number > 0"),
    ([("shift", 1)], "expected a mapping of training settings"),
])
def test_first_train_refuses_what_one_network_cannot_change(first_train, match):
    from components.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        create_model("hierarchical", 4, 1, first_train=first_train)


def test_a_fits_epochs_scale_scales_a_tuning_trials_schedule_horizon_with_it():
    """A trial trains the first 2 epochs of a 10-epoch schedule; scaled by 2 it trains the
    first 4 of 20, the same share of the final run's scaled schedule."""
    from components.training.trainer import scaled_epochs

    trial = TrainConfig(epochs=2, schedule_epochs=10, progress=False, track=False)
    assert scaled_epochs(trial, 2.0) == {"epochs": 4, "schedule_epochs": 20}
    final = TrainConfig(epochs=10, progress=False, track=False)
    assert scaled_epochs(final, 2.0) == {"epochs": 20}
    assert scaled_epochs(final, 0.01) == {"epochs": 1}
    assert scaled_epochs(final, 1.0) == {}


def test_training_rows_count_the_first_models_scaled_epochs():
    model = create_model("hierarchical", 8, 1, folds=2, first_train={"epochs_scale": 2})
    assert model.training_rows(100) == (1 + 2 + 1) * 100
