"""Where the trainer runs: ``train.device`` resolves to the CPU or a CUDA GPU, and every
caller gets its model back on the CPU (saved weights and estimators load without a GPU).

The CUDA tests run where torch sees a GPU and skip elsewhere (CI has none)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from components.errors import ConfigError
from components.models import ModelSpec
from components.models.classifier import TorchClassifier
from components.models.simple_fit import inference_on, predict_proba
from components.training import trainer as trainer_module
from components.training.data import SplitData, load_split
from components.training.run import train_run
from components.training.trainer import (
    Trainer,
    bf16_pays_off,
    cpu_bf16_flags,
    cpu_vendor,
    make_train_fn,
    native_bf16,
    resolve_device,
    resolve_precision,
    seed_everything,
)
from tests.synthetic_task import make_synthetic_task
from tests.training.helpers import TinyCNN, quick_config

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="torch sees no CUDA device here")
without_cuda = pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA device")


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("device")
    make_synthetic_task(root, "rgbd", size=16)
    task = root / "image"
    return load_split(task, "train", ("color",)), load_split(task, "val", ("color",))


def _fit(device: str, splits, **changes) -> tuple[Trainer, torch.nn.Module]:
    seed_everything(0)
    trainer = Trainer(TinyCNN(4, 3), quick_config(**{"device": device, "epochs": 2, **changes}))
    return trainer, trainer.fit(*splits).model


def test_device_names_are_checked() -> None:
    with pytest.raises(ConfigError, match="train.device"):
        quick_config(device="tpu")
    assert resolve_device("cpu") == torch.device("cpu")


@without_cuda
def test_auto_falls_back_to_the_cpu_and_cuda_says_why_it_cannot(splits) -> None:
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA device.*'auto'"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="no CUDA device"):
        Trainer(TinyCNN(4, 3), quick_config(device="cuda"))
    # "auto" without a GPU is the CPU run, to the bit
    _, auto = _fit("auto", splits)
    _, cpu = _fit("cpu", splits)
    for key, value in cpu.state_dict().items():
        assert torch.equal(auto.state_dict()[key], value)


def test_auto_precision_follows_the_device() -> None:
    assert resolve_precision("auto", "cpu") == ("bf16" if bf16_pays_off() else "fp32")
    assert not bf16_pays_off() or native_bf16()  # AMX is one of the native bf16 units
    assert resolve_precision("fp32", "cuda") == "fp32"  # an explicit choice stands
    if HAS_CUDA:
        expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        assert resolve_precision("auto", "cuda") == expected


@pytest.mark.parametrize(("flags", "vendor", "native", "auto"), [
    ({"amx_bf16", "avx512_bf16"}, "GenuineIntel", True, "bf16"),
    ({"avx512_bf16"}, "GenuineIntel", True, "fp32"),  # native, but slower than float32
    ({"avx512_bf16"}, "AuthenticAMD", True, "bf16"),  # native and faster than float32
    (set(), "GenuineIntel", False, "fp32"),  # emulated
    (set(), "AuthenticAMD", False, "fp32"),
])
def test_auto_precision_on_a_cpu_takes_bf16_where_it_was_measured_faster(
        monkeypatch, flags, vendor, native, auto) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")  # no cap in the way
    monkeypatch.setattr(trainer_module, "cpu_bf16_flags", lambda: set(flags))
    monkeypatch.setattr(trainer_module, "cpu_vendor", lambda: vendor)
    assert native_bf16() is native
    assert resolve_precision("auto", "cpu") == auto
    assert resolve_precision("bf16", "cpu") == "bf16"  # an explicit choice stands
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # the pipeline's cap: emulated bf16
    assert resolve_precision("auto", "cpu") == "fp32"


def test_the_cpus_bf16_flags_are_whole_words(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Some Xeon\n"
        "flags\t\t: fpu avx2 avx512f amx_bf16x avx512_bf16_extra amx_tile avx512_bf16\n"
        "vmx flags\t: amx_bf16\n"                      # another line's words do not count
        "processor\t: 1\nflags\t\t: fpu amx_bf16\n")   # only the first CPU is read
    assert cpu_bf16_flags(cpuinfo) == {"avx512_bf16"}
    cpuinfo.write_text("flags\t\t: fpu amx_bf16 amx_tile avx512_bf16\n")
    assert cpu_bf16_flags(cpuinfo) == {"amx_bf16", "avx512_bf16"}
    assert cpu_bf16_flags(tmp_path / "missing") == set()  # not Linux: no flags


def test_the_cpu_vendor_is_the_first_vendor_id(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
                       "processor\t: 1\nvendor_id\t: GenuineIntel\n")
    assert cpu_vendor(cpuinfo) == "AuthenticAMD"
    assert cpu_vendor(tmp_path / "missing") == ""  # not Linux


@needs_cuda
def test_a_gpu_fit_learns_and_hands_back_a_cpu_model(splits) -> None:
    trainer, model = _fit("cuda", splits, epochs=6)
    assert trainer.device.type == "cuda"
    assert all(p.device.type == "cpu" for p in model.parameters())
    report = trainer.evaluate(splits[1])  # scoring moves it over and back again
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert report["accuracy"] > 0.5  # four well-separated classes: chance is 0.25
    logits = trainer.predict_logits(splits[1])
    assert isinstance(logits, np.ndarray) and logits.shape == (len(splits[1]), 4)


@needs_cuda
def test_a_bf16_gpu_run_resumes_from_its_checkpoint(splits, tmp_path: Path) -> None:
    seed_everything(0)
    trainer = Trainer(TinyCNN(4, 3), quick_config(device="cuda", precision="bf16", epochs=2),
                      out_dir=tmp_path)
    trainer.fit(*splits)
    resumed = Trainer(TinyCNN(4, 3), quick_config(device="cuda", precision="bf16", epochs=3),
                      out_dir=tmp_path)
    assert resumed.fit(*splits, resume=True).epochs_run == 3


@needs_cuda
def test_estimator_sub_models_train_on_the_gpu_and_return_to_the_cpu(splits) -> None:
    train, val = splits
    train_fn = make_train_fn(quick_config(device="cuda", epochs=2))
    model = train_fn(TinyCNN(4, 3), train.rows(slice(None)), train.y,
                     val.rows(slice(None)), val.y)
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_a_cpu_run_keeps_its_splits_in_host_memory(splits) -> None:
    # a split of its own: the module's splits may be held on a GPU by the tests there
    train = SplitData.from_arrays(splits[0].rows(slice(None)), splits[0].y)
    assert train.preload()
    assert not train.hold_on(torch.device("cpu"))  # nothing to copy: batches stay as they were
    index = torch.tensor([3, 0, 2])
    assert torch.equal(train.batch(index), torch.from_numpy(train.rows(np.array([3, 0, 2]))))


@needs_cuda
def test_a_held_split_is_sliced_and_augmented_on_the_gpu_as_on_the_cpu(splits) -> None:
    from components.training.augment import augment_batch

    train = SplitData.from_arrays(splits[0].rows(slice(None)), splits[0].y)
    train.preload()
    index = torch.arange(len(train)).flip(0)
    host = train.batch(index)
    assert train.hold_on(torch.device("cuda"))
    held = train.batch(index)
    assert held.device.type == "cuda" and torch.equal(held.cpu(), host)
    copies = dict(mirror_p=0.5, max_shift=2, erase_p=0.5)  # copies and zeros: exact
    on_cpu = augment_batch(host, torch.Generator().manual_seed(1), **copies)
    on_gpu = augment_batch(held, torch.Generator().manual_seed(1), **copies)
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), on_cpu)
    warps = dict(mirror_p=0.5, max_shift=1, max_degrees=10.0, max_scale=0.1)
    on_cpu = augment_batch(host, torch.Generator().manual_seed(2), **warps)
    on_gpu = augment_batch(held, torch.Generator().manual_seed(2), **warps)
    assert torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-4)  # bilinear: float rounding only


def _input_devices(net: torch.nn.Module) -> list[str]:
    seen: list[str] = []
    net.register_forward_pre_hook(lambda _module, args: seen.append(args[0].device.type))
    return seen


def test_inference_runs_on_the_cpu_unless_a_block_names_a_device() -> None:
    net = TinyCNN(3, 1)
    seen = _input_devices(net)
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    before = predict_proba(net, x)
    with inference_on("cpu"):
        inside = predict_proba(net, x)
    assert seen == ["cpu", "cpu"]
    np.testing.assert_array_equal(before, inside)
    with pytest.raises(RuntimeError), inference_on("cuda:0"):
        raise RuntimeError("the block's own error")
    predict_proba(net, x)
    assert seen[-1] == "cpu"  # the device named in a block ends with it, error or not


@needs_cuda
def test_inference_on_a_gpu_matches_the_cpu_and_leaves_a_cpu_model() -> None:
    seed_everything(0)
    net = TinyCNN(3, 1)
    seen = _input_devices(net)
    x = np.random.default_rng(0).random((300, 1, 8, 8), dtype=np.float32)
    on_cpu = predict_proba(net, x, batch_size=128)
    with inference_on("cuda"):
        on_gpu = predict_proba(net, x, batch_size=128)
    assert seen == ["cpu"] * 3 + ["cuda"] * 3
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-5)
    assert {p.device.type for p in net.parameters()} == {"cpu"}


@needs_cuda
def test_a_gpu_train_run_scores_its_test_splits_on_the_gpu(tmp_path: Path) -> None:
    make_synthetic_task(tmp_path / "data", "rgbd", size=16)
    task = tmp_path / "data/image"
    spec = ModelSpec("tiny", 4, 3, ("color",), "image",
                     ["anger", "happiness", "neutral", "surprise"])
    net = TinyCNN(4, 3)
    seen = _input_devices(net)
    metrics = train_run(TorchClassifier(net), spec, quick_config(device="cuda", epochs=2),
                        task, tmp_path / "out")
    assert seen[-1] == "cuda" and metrics["test_accuracy"] >= 0.0
    assert {p.device.type for p in net.parameters()} == {"cpu"}
