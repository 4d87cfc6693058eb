"""The GPU driver of the fer2013 recipe: it runs dvc.yaml's own commands, sets each variant's
overrides on configure's params file, and reports from the archive the GPU machine sends
back, with or without the summary a call cut short never wrote."""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import yaml

from benchmarks import fer2013_gpu as gpu
from tests.conftest import REPO_ROOT


def test_stages_run_the_commands_dvc_yaml_declares() -> None:
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("augment", "preprocess", "configure"):
        command = gpu.stage_command(name)
        assert command[0] == sys.executable
        assert command[1:] == shlex.split(stages[name]["cmd"])[1:]


def test_variant_params_set_the_overrides_on_configures_file(tmp_path: Path) -> None:
    config = tmp_path / "artifacts/config/train" / f"{gpu.ARCH}.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(yaml.safe_dump({"recipe": "fer2013", "train": {
        "epochs": 120, "budget_minutes": 60, "device": "auto", "track": True,
        "overrides": {gpu.ARCH: {"width": 0.25, "dropout": 0.2}}}}))
    values = yaml.safe_load(gpu.variant_params(tmp_path, "width10", 6.5, "cuda").read_text())
    train = values["train"]
    assert train["overrides"][gpu.ARCH] == {"width": 1.0, "dropout": 0.2}
    assert (train["device"], train["budget_minutes"], train["track"]) == ("cuda", 6.5, False)
    assert train["epochs"] == 120 and values["recipe"] == "fer2013"
    recipe = yaml.safe_load(gpu.variant_params(tmp_path, "recipe", 6.5, "cpu").read_text())
    assert recipe["train"]["overrides"][gpu.ARCH]["width"] == 0.25  # the recipe's own


METRICS = {"epochs_run": 38, "epochs_planned": 38, "best_epoch": 37,
           "test_accuracy": 0.7155, "test_uar": 0.6984, "test_macro_f1": 0.69,
           "test_notta_accuracy": 0.7066, "test_notta_uar": 0.69, "test_notta_macro_f1": 0.68}
RECORD = {"tracked": False, "timings": {"train_images_per_second": 5958.0,
                                        "epoch_seconds": 9.9},
          "computed_on": {"machine.gpu": "NVIDIA H200", "machine.cpu": "Xeon",
                          "machine.kernels": "AVX512", "train.precision_used": "bf16"}}


def _archive(path: Path, files: dict[str, object]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            data = (content if isinstance(content, str) else json.dumps(content)).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _run_files(name: str) -> dict[str, object]:
    return {f"runs/train/{name}/metrics.json": METRICS,
            f"runs/train/{name}/per_class.json": {"splits": {"test": {
                "per_class_recall": {"anger": 0.63, "happiness": 0.91}}}},
            f"runs/tracking/train/{name}.json": RECORD,
            f"runs/logs/{name}.log": "INFO epoch 38/38\n"}


def test_report_reads_a_complete_archive(tmp_path: Path) -> None:
    summary = {"commit": "abc", "recipe": "fer2013", "minutes": 6.5, "device": "cuda",
               "complete": True, "pack_command": "python benchmarks/fer2013_gpu.py pack",
               "run_command": "python benchmarks/fer2013_gpu.py run", "wheels": [],
               "stage_seconds": {"augment": 12.0, "preprocess": 4.0, "configure": 0.1},
               "machine": {"gpu": "NVIDIA H200", "nvidia_smi": None, "cpu": "Xeon",
                           "cpu_count": 16, "torch": "2.x"},
               "preprocess_bytes": {"compared_files": 25, "differing": []},
               "runs": {"width10": {"returncode": 0, "wall_seconds": 480.0,
                                    "overrides": gpu.VARIANTS["width10"], "threads": 5}}}
    archive = _archive(tmp_path / "runs.tar.gz",
                       {"runs/summary.json": summary, **_run_files("width10")})
    written = _report(tmp_path, archive)
    assert "71.55 %" in written and "69.84 %" in written and "5,958" in written
    assert "identical to the workspace's" in written and "copied back" not in written


def test_the_code_commit_is_named_beside_the_packs_when_they_differ(tmp_path: Path) -> None:
    """Code committed after the pack (a new variant) trains on the pack's data: the results
    file must name the code's commit, from the summary or from ``--code-commit``."""
    summary = {"commit": "abc", "recipe": "fer2013", "minutes": 6.5, "device": "cuda",
               "complete": True, "pack_command": "pack", "run_command": "run", "wheels": [],
               "runs": {"width10": {"returncode": 0, "wall_seconds": 480.0,
                                    "overrides": gpu.VARIANTS["width10"], "threads": 5}}}
    files = {**_run_files("width10")}
    unrecorded = _report(tmp_path, _archive(tmp_path / "a.tar.gz",
                                            {"runs/summary.json": summary, **files}))
    assert "`abc` (the pack's; the code's not recorded)" in unrecorded
    recorded = _report(tmp_path, _archive(tmp_path / "b.tar.gz", {
        "runs/summary.json": {**summary, "code_commit": "fed"}, **files}))
    assert "code `fed`, pack (data, params, wheels) `abc`" in recorded
    gpu.report(tmp_path / "a.tar.gz", tmp_path / "absent.json", "named", tmp_path / "results",
               code_commit="bee")
    named = (tmp_path / "results" / "named.md").read_text()
    assert "code `bee`" in named
    assert json.loads((tmp_path / "results" / "named.json").read_text())["code_commit"] == "bee"


def test_a_code_commit_that_is_no_hash_is_refused(capsys) -> None:
    import pytest

    assert gpu.commit_hash("2c9f191") == "2c9f191"
    with pytest.raises(SystemExit):
        gpu.parse_args(["report", "--runs", "x.tar.gz", "--code-commit", "HEAD~1"])
    assert "not a commit hash" in capsys.readouterr().err


def test_a_cpu_run_of_the_flow_is_reported_as_one_no_card_named(tmp_path: Path) -> None:
    summary = {"commit": "abc", "recipe": "fer2013", "minutes": 25.0, "device": "cpu",
               "complete": True, "pack_command": "python benchmarks/fer2013_gpu.py pack",
               "run_command": "python benchmarks/fer2013_gpu.py run --device cpu",
               "wheels": [], "stage_seconds": {"augment": 49.0, "preprocess": 9.0,
                                               "configure": 0.1},
               "machine": {"gpu": None, "nvidia_smi": None, "cpu": "AMD EPYC",
                           "cpu_count": 2, "torch": "2.x"},
               "preprocess_bytes": {"compared_files": 0, "differing": []},
               "runs": {name: {"returncode": 0, "wall_seconds": 1700.0, "threads": 1,
                               "overrides": gpu.VARIANTS[name]}
                        for name in ("width025", "width025_crop40")}}
    archive = _archive(tmp_path / "runs.tar.gz", {"runs/summary.json": summary,
                                                  **_run_files("width025"),
                                                  **_run_files("width025_crop40")})
    written = _report(tmp_path, archive)
    assert "on the CPU" in written and "--no-wheels" in written
    assert "AMD EPYC, 2 cores, no GPU used" in written
    assert "all variants at once, 1 thread(s) each" in written and "crop=40" in written
    assert "card" not in written and "GPU machine `" not in written and "None" not in written


def _trained_workspace(work: Path, names: list[str]) -> None:
    """A staged workspace as a CPU run leaves it: a preprocessed task (with a de-duplicated
    test split) and each run's train stage output, weights included."""
    import shutil

    from pipelines import train as train_stage
    from tests.synthetic_task import make_synthetic_task

    data = work / "artifacts" / "preprocess"
    make_synthetic_task(data, "rgbd", size=32, sizes={"train": 32, "val": 16, "test": 16})
    shutil.copytree(data / "image" / "test", data / "image" / "test_dedup")
    for seed, name in enumerate(names):
        params = {"train": {"architectures": [gpu.ARCH], "seed": seed, "epochs": 2,
                            "batch_size": 16, "lr": 0.01, "progress": False, "track": False,
                            "tta_mirror": True, "tta_shift": 1,
                            "overrides": {gpu.ARCH: {"width": 0.125}}}}
        (work / f"{name}.yaml").write_text(yaml.safe_dump(params))
        assert train_stage.main(["--arch", gpu.ARCH, "--params", str(work / f"{name}.yaml"),
                                 "--data", str(data), "--out", str(work / "runs/train" / name),
                                 "--tune-dir", str(work / "tune")]) == 0


def test_report_scores_runs_side_by_side_as_one_seed_ensemble(tmp_path: Path) -> None:
    import pytest
    import torch

    from components.models import load_trained
    from components.models.ensemble import SeedEnsemble

    work = tmp_path / "ws"
    _trained_workspace(work, ["a", "b"])
    summary = {"commit": "abc", "recipe": "fer2013", "minutes": 60.0, "device": "cpu",
               "complete": True, "pack_command": "python benchmarks/fer2013_gpu.py pack",
               "run_command": "python benchmarks/fer2013_gpu.py run --device cpu",
               "wheels": [], "stage_seconds": None, "machine": None, "preprocess_bytes": None,
               "runs": {name: {"returncode": 0, "wall_seconds": 60.0, "threads": 1,
                               "overrides": {}} for name in ("a", "b")}}
    archive = _archive(tmp_path / "runs.tar.gz", {"runs/summary.json": summary,
                                                  **_run_files("a"), **_run_files("b")})
    gpu.report(archive, tmp_path / "absent.json", "pair", tmp_path / "results",
               ensemble=["a", "b"], work=work)
    written = (tmp_path / "results" / "pair.md").read_text()
    assert "as one seed ensemble (a + b)" in written and "mirror + shift 1" in written
    ensemble = json.loads((tmp_path / "results" / "pair.json").read_text())["ensemble"]
    assert set(ensemble["splits"]) == {"test", "test_dedup"}
    # the platform's own ensemble of the two saved networks, scored by hand, agrees
    nets = [load_trained(work / "runs/train" / n)[1].net for n in ("a", "b")]
    x = torch.from_numpy(np.load(work / "artifacts/preprocess/image/test/color.npy")
                         .astype(np.float32))
    y = np.load(work / "artifacts/preprocess/image/test/y.npy")
    with torch.no_grad():
        predicted = SeedEnsemble(nets).eval()(x).argmax(1).numpy()
    assert ensemble["splits"]["test"]["no_tta"]["accuracy"] == pytest.approx(
        float((predicted == y).mean()))
    with pytest.raises(SystemExit, match="not runs of"):
        gpu.report(archive, tmp_path / "absent.json", "pair", tmp_path / "results",
                   ensemble=["a", "c"], work=work)
    with pytest.raises(SystemExit, match="weights stay in the staged workspace"):
        gpu.report(archive, tmp_path / "absent.json", "pair", tmp_path / "results",
                   ensemble=["a", "b"], work=tmp_path / "elsewhere")


def test_staging_without_wheels_copies_the_pixels_alone(tmp_path: Path) -> None:
    part = tmp_path / "a"
    (part / "wheels").mkdir(parents=True)
    (part / "wheels" / "broken-1.0-py3-none-any.whl").write_bytes(b"not a wheel")
    (part / "pixels.xz.0").write_bytes(b"first half")
    gpu.stage(part, tmp_path / "staged", wheels=False)
    assert (tmp_path / "staged" / "pixels.xz.0").read_bytes() == b"first half"
    assert (tmp_path / "staged" / "site").is_dir()
    assert not any((tmp_path / "staged" / "site").iterdir())


def test_report_reads_runs_without_a_summary_and_says_so(tmp_path: Path) -> None:
    variant = yaml.safe_dump({"train": {"budget_minutes": 6.5, "device": "cuda"}})
    archive = _archive(tmp_path / "runs.tar.gz",
                       {**_run_files("recipe"), "variants/recipe.yaml": variant})
    pack = tmp_path / "pack.json"
    pack.write_text(json.dumps({"commit": "def", "pack_command": "pack", "wheels": []}))
    written = _report(tmp_path, archive, pack)
    assert "copied back" in written and "not recorded" in written
    assert "`def`" in written and "NVIDIA H200 (bf16)" in written and "71.55 %" in written


def _report(tmp_path: Path, archive: Path, pack: Path | None = None) -> str:
    """Run ``report`` into a scratch results folder and return the markdown it wrote."""
    gpu.report(archive, pack or tmp_path / "absent.json", "gpu_check", tmp_path / "results")
    return (tmp_path / "results" / "gpu_check.md").read_text()


def test_missing_inputs_stop_with_one_line(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(SystemExit, match="not a file"):
        gpu.report(tmp_path / "absent.tar.gz", tmp_path / "pack.json", "x", tmp_path)
    with pytest.raises(SystemExit, match="must run first"):
        gpu.run(tmp_path / "b", tmp_path / "staged", tmp_path / "out", 1.0, ["recipe"], "cpu")


def test_recorded_commands_name_no_absolute_paths(tmp_path: Path, monkeypatch) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    monkeypatch.chdir(tmp_path / "ws")
    line = gpu.command_line(["pack", "--workspace", str(workspace), "--out", ".gpu"])
    assert line == "python benchmarks/fer2013_gpu.py pack --workspace . --out .gpu"
    missing = str(tmp_path / "not-there")  # not a path on this machine: kept as typed
    assert missing in gpu.command_line(["report", "--runs", missing])
    assert gpu.portable_command(f"python x.py --workspace {workspace}") == \
        "python x.py --workspace ."


def test_run_logs_stamp_each_line_with_seconds_since_start(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "print('first'); print('second')"],
                            stdout=subprocess.PIPE, text=True)
    log = tmp_path / "run.log"
    gpu.copy_stamped(proc.stdout, log, time.perf_counter())
    proc.wait()
    lines = log.read_text().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["first", "second"]
    assert all(re.match(r"\[\s*\d+\.\d s\] ", line) for line in lines)


def test_the_timeline_reads_the_stamps_of_plan_epochs_and_end() -> None:
    log = ("[    4.8 s] INFO pipelines.train: restarting\n"
           "[   27.6 s] INFO trainer: budget 5.0 min: an epoch takes ~2.8 s; planned 96 of at "
           "most 400 epochs\n"
           "[   34.3 s] INFO trainer: epoch 1/40 train_loss 1.7648 val_accuracy 0.2654\n"
           "[  311.8 s] INFO trainer: epoch 74/74 train_loss 0.58 val_accuracy 0.6425\n"
           "[  441.3 s] baseline_cnn: test_accuracy=0.7253\n")
    times = gpu.log_timeline(log)
    assert times == {"planned": 27.6, "last_epoch": 311.8, "last_line": 441.3}
    line = gpu._timeline_line({"variant": "v", "timeline_seconds": times})
    assert "probe 28 s" in line and "epochs 284 s" in line and "last epoch (test scoring, " \
        "files) 130 s" in line
    assert gpu.log_timeline("INFO epoch 38/38\n") is None


def test_every_variant_makes_settings_the_train_stage_accepts(tmp_path: Path) -> None:
    from components.models import create_classifier, named_kwargs
    from components.recipes import write_params
    from components.training.config import resolve_config

    params = tmp_path / "params.yaml"
    write_params(REPO_ROOT, gpu.RECIPE, params)
    config = tmp_path / "artifacts/config/train" / f"{gpu.ARCH}.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(params.read_text())
    for name in gpu.VARIANTS:
        values = yaml.safe_load(gpu.variant_params(tmp_path, name, 5.0, "cpu").read_text())
        cfg, extra = resolve_config(values["train"], gpu.ARCH)
        extra.pop("grey", None)
        create_classifier(gpu.ARCH, 7, 1, **named_kwargs(gpu.ARCH, extra, list("abcdefg")))
        assert cfg.budget_minutes == 5.0, name
