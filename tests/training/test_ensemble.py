"""Seed ensembles (``members``): built, trained one member after another or several at once
(a process each) within one budget, saved, rebuilt and scored as one network, through the
real train stage."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from components.errors import ConfigError, DataError
from components.models import create_classifier, create_model, load_trained
from components.models.ensemble import SeedEnsemble
from components.training.checkpoint import load_checkpoint
from components.training.data import SplitData, load_split
from components.training.distributed import DistContext
from components.training.loop import TrainerLoop
from components.training.trainer import seed_everything
from pipelines import train as train_stage_module
from tests.synthetic_task import make_synthetic_task
from tests.training.helpers import TinyCNN, quick_config


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ensemble")
    make_synthetic_task(root, "rgbd", size=16)
    return root / "image"


def _splits(task_dir: Path):
    return (load_split(task_dir, "train", ("color",)), load_split(task_dir, "val", ("color",)))


def _pair() -> SeedEnsemble:
    seed_everything(0)
    return SeedEnsemble([TinyCNN(4, 3), TinyCNN(4, 3)])


def test_forward_is_the_mean_of_the_members_logits() -> None:
    ensemble = _pair().eval()
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        expected = (ensemble.members[0](x) + ensemble.members[1](x)) / 2
        assert torch.allclose(ensemble(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="at least 2 members"):
        SeedEnsemble([TinyCNN(4, 3)])


def test_members_option_builds_differently_initialised_networks() -> None:
    seed_everything(0)
    classifier = create_classifier("baseline_cnn", 4, 1, width=0.125, members=3)
    ensemble = classifier.net
    assert isinstance(ensemble, SeedEnsemble) and len(ensemble.members) == 3
    first, second = (m.features[0].weight for m in ensemble.members[:2])
    assert first.shape == second.shape and not torch.equal(first, second)
    seed_everything(0)
    again = create_classifier("baseline_cnn", 4, 1, width=0.125, members=3).net
    assert torch.equal(again.members[2].features[0].weight,
                       ensemble.members[2].features[0].weight)  # fixed by the seed
    single = create_classifier("baseline_cnn", 4, 1, width=0.125, members=1).net
    assert not isinstance(single, SeedEnsemble)


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True])
def test_members_must_be_a_whole_number_of_at_least_one(value: object) -> None:
    with pytest.raises(ConfigError, match="members must be a whole number"):
        create_classifier("baseline_cnn", 4, 1, members=value)


def test_estimators_and_bare_networks_take_no_members() -> None:
    with pytest.raises(ConfigError, match="members is for plain networks"):
        create_classifier("svm_fusion", 4, 4, members=2)
    with pytest.raises(ConfigError, match="unknown option 'members'"):
        create_model("baseline_cnn", 4, 1, members=2)  # the option is the ensemble's


def test_members_train_in_turn_within_one_budget(task_dir: Path, tmp_path: Path) -> None:
    train, val = _splits(task_dir)
    cfg = quick_config(epochs=40, budget_minutes=0.05, patience=0, seed=3)
    loop = TrainerLoop(cfg, out_dir=tmp_path)
    start = time.monotonic()
    net, outcome = loop.fit_members(_pair(), train, val, ecstfl=False)
    assert time.monotonic() - start < 3.0 + 6.0  # the 3 s budget, plus probes and scoring
    configs = [load_checkpoint(tmp_path / f"member{k}" / "checkpoint.pt")["config"]
               for k in (1, 2)]
    assert [c["seed"] for c in configs] == [3, 4]  # each member its own draws
    assert configs[0]["budget_minutes"] <= 0.05 / 2 + 1e-9  # half the time, not all of it
    assert outcome.history == [] and outcome.best_score is None  # the run scores the whole
    extra = outcome.extra
    assert extra["members"] == 2
    assert extra["epochs_run"] == extra["member1_epochs_run"] + extra["member2_epochs_run"]
    assert "epochs_planned" in extra and outcome.timings["train_images_per_second"] > 0
    parts = [row["part"] for row in outcome.sub_model_history]
    assert list(dict.fromkeys(parts)) == ["member 1", "member 2"]
    assert not net.training


def test_a_resumed_ensemble_keeps_its_finished_members(task_dir: Path, tmp_path: Path) -> None:
    train, val = _splits(task_dir)
    cfg = quick_config(epochs=3)
    first, _ = TrainerLoop(cfg, out_dir=tmp_path).fit_members(_pair(), train, val,
                                                              ecstfl=False)
    x = torch.from_numpy(val.rows(slice(None)))
    with torch.no_grad():
        expected = first(x)
    fresh = _pair()
    seed_everything(7)  # a different start: only the checkpoints can restore the result
    for member in fresh.members:
        for p in member.parameters():
            torch.nn.init.normal_(p)
    again, outcome = TrainerLoop(cfg, out_dir=tmp_path, resume=True).fit_members(
        fresh, train, val, ecstfl=False)
    with torch.no_grad():
        assert torch.allclose(again(x), expected, atol=1e-5)
    assert outcome.extra["epochs_run"] == 6


@pytest.fixture
def threads():
    """Sets torch's thread count for a test and restores it after."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_members_at_once_train_what_members_in_turn_train(task_dir: Path, tmp_path: Path,
                                                          threads) -> None:
    train, val = _splits(task_dir)
    cfg = quick_config(epochs=3, seed=5)
    threads(1)  # what each of the two processes gets below
    in_turn, _ = TrainerLoop(cfg, out_dir=tmp_path / "turn").fit_members(_pair(), train, val,
                                                                        ecstfl=False)
    threads(2)
    loop = TrainerLoop(cfg.replace(member_processes=2), out_dir=tmp_path / "once")
    at_once, outcome = loop.fit_members(_pair(), train, val, ecstfl=False)
    for ours, theirs in zip(at_once.members, in_turn.members, strict=True):
        for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
            assert torch.equal(a, b)  # same seeds, same thread count: the same weights
    configs = [load_checkpoint(tmp_path / "once" / f"member{k}" / "checkpoint.pt")["config"]
               for k in (1, 2)]
    assert [c["seed"] for c in configs] == [5, 6]
    extra = outcome.extra
    assert extra["members"] == 2 and extra["epochs_run"] == 6
    assert outcome.timings["train_images_per_second"] > 0
    parts = [row["part"] for row in loop.sub_model_history]
    assert list(dict.fromkeys(parts)) == ["member 1", "member 2"]
    assert not at_once.training


def test_a_split_travels_to_another_process_as_its_mapped_files(task_dir: Path) -> None:
    import pickle

    train = load_split(task_dir, "train", ("color",))
    train.preload()
    again = pickle.loads(pickle.dumps(train))
    assert isinstance(again.parts[0], np.memmap) and again._tensor is None  # mapped, not copied
    assert np.array_equal(again.rows(slice(None)), train.rows(slice(None)))
    assert np.array_equal(again.y, train.y)
    part = SplitData(parts=[train.parts[0][2:]], y=train.y[2:], name="slice")
    sliced = pickle.loads(pickle.dumps(part))  # a view of the file travels as its values
    assert not isinstance(sliced.parts[0], np.memmap)
    assert np.array_equal(sliced.rows(slice(None)), part.rows(slice(None)))


def test_members_at_once_share_the_whole_budget(task_dir: Path, tmp_path: Path) -> None:
    train, val = _splits(task_dir)
    cfg = quick_config(epochs=40, budget_minutes=0.05, patience=0, member_processes=2)
    TrainerLoop(cfg, out_dir=tmp_path).fit_members(_pair(), train, val, ecstfl=False)
    configs = [load_checkpoint(tmp_path / f"member{k}" / "checkpoint.pt")["config"]
               for k in (1, 2)]
    # one wave: each member gets the time left (at least the half that members in turn get)
    assert all(c["budget_minutes"] > 0.05 / 2 + 1e-9 for c in configs)


def test_a_member_failing_in_its_process_raises_its_error(task_dir: Path,
                                                          tmp_path: Path) -> None:
    train, _ = _splits(task_dir)
    empty = SplitData.from_arrays(np.zeros((0, 3, 16, 16), np.float32), np.zeros(0, np.int64),
                                  name="empty-val")
    loop = TrainerLoop(quick_config(member_processes=2), out_dir=tmp_path)
    with pytest.raises(DataError, match="empty-val: split is empty") as failure:
        loop.fit_members(_pair(), train, empty, ecstfl=False)
    assert any("member 1's training process" in note for note in failure.value.__notes__)


def test_members_at_once_refuse_set_ups_that_cannot_share_the_cores(task_dir: Path) -> None:
    train, val = _splits(task_dir)
    cfg = quick_config(member_processes=2)
    with pytest.raises(ConfigError, match="per-epoch callback"):
        TrainerLoop(cfg, on_epoch_end=lambda row: None).fit_members(_pair(), train, val,
                                                                    ecstfl=False)
    with pytest.raises(ConfigError, match="torchrun ranks"):
        TrainerLoop(cfg, ctx=DistContext(rank=0, world_size=2)).fit_members(
            _pair(), train, val, ecstfl=False)
    with pytest.raises(ConfigError, match="member_processes: must be >= 1"):
        quick_config(member_processes=0)


def test_train_stage_saves_and_rebuilds_an_ensemble(tmp_path: Path) -> None:
    make_synthetic_task(tmp_path / "preprocess", "rgbd", size=32,
                        sizes={"train": 32, "val": 16, "test": 16})
    params = {"train": {"architectures": ["baseline_cnn"], "seed": 0, "epochs": 2,
                        "batch_size": 16, "lr": 0.01, "progress": False, "tta_mirror": True,
                        "overrides": {"baseline_cnn": {"width": 0.125, "members": 2}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = tmp_path / "train" / "baseline_cnn"
    assert train_stage_module.main([
        "--arch", "baseline_cnn", "--params", str(tmp_path / "params.yaml"),
        "--data", str(tmp_path / "preprocess"), "--out", str(run),
        "--tune-dir", str(tmp_path / "tune")]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["members"] == 2 and metrics["epochs_run"] == 4
    assert metrics["member1_epochs_run"] == metrics["member2_epochs_run"] == 2
    spec, classifier = load_trained(run)
    assert spec.model_kwargs["members"] == 2
    assert isinstance(classifier.net, SeedEnsemble)
    test = load_split(tmp_path / "preprocess" / "image", "test", ("color",), grey=spec.grey)
    predicted = classifier.predict_proba(test.rows(slice(None))).argmax(axis=1)
    assert np.mean(predicted == test.y) == pytest.approx(metrics["test_accuracy"])
    parts = classifier.members()  # the evaluate stage scores each beside the ensemble
    assert list(parts) == ["member1", "member2"]
    x = test.rows(slice(None))
    mean = np.mean([np.log(p.predict_proba(x)) for p in parts.values()], axis=0)
    assert not np.allclose(parts["member1"].predict_proba(x), parts["member2"].predict_proba(x))
    assert np.array_equal(mean.argmax(axis=1), predicted)  # log-softmax mean: same ranking
    curves = pd.read_csv(run / "sub_models.csv")
    assert list(dict.fromkeys(curves["part"])) == ["member 1", "member 2"]
    assert (run / "member2" / "checkpoint.pt").is_file()
