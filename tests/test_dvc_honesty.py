"""dvc.yaml is honest: what a stage reads is declared, and an unchanged pipeline does nothing.

A copy of the project (tracked files, a fresh git repository) renders a tiny synthetic set,
runs the real ``dvc repro`` on one architecture, then touches each file and params key a
stage reads and checks that ``dvc status`` names that stage; a second ``dvc repro`` must not
run any stage. ``READS`` is the specification: what each stage's code opens.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
REDIRECTS = ("FEROPS_PROJECT_ROOT", "DVC_ROOT", "MLFLOW_TRACKING_URI", "OPTUNA_STORAGE")
TINY = [
    "synthetic.subjects=5", "synthetic.stills_per_subject_class=1",
    "synthetic.clips_per_subject_class=1", "synthetic.image_size=64", "synthetic.clip_size=32",
    "synthetic.clip_frames=4", "synthetic.workers=1",
    "validate.min_samples_per_class=0", "augment.test_levels=[0.25]",
    "preprocess.size=24", "preprocess.clip_size=16", "preprocess.clip_frames=4",
    "train.architectures=[baseline_cnn]", "train.epochs=1", "train.progress=false",
    "tune.n_trials=1", "tune.startup_trials=1", "tune.epochs=1", "tune.progress=false",
    "registry.class_recall_floor=0.0",
    "predict.examples.light_level=null",  # one test identity: its stills in any light
]
# The README's `dvc exp show` line: experiments, their recipe and the per-task summary.
EXP_SHOW_FILTER = ["--drop", ".*", "--keep", "Experiment|recipe|.*_(uar|acc)$"]
# Stage -> what its code reads: files/folders, and params keys as "params:<key>".
READS: dict[str, list[str]] = {
    "ingest": ["data", "params:ingest.split_seed"],
    "validate": ["artifacts/ingest", "params:validate.blank_std_threshold"],
    "augment": ["data", "artifacts/validate/manifest.parquet", "params:augment.seed"],
    "preprocess": ["data", "artifacts/ingest", "artifacts/augment/manifest.parquet",
                   "artifacts/augment/images", "params:preprocess.stretch_percentiles"],
    "tune@baseline_cnn": ["artifacts/preprocess", "artifacts/augment/manifest.parquet",
                          "params:tune.sampler_seed", "params:train.lr",
                          "params:ingest.source"],
    "train@baseline_cnn": ["artifacts/preprocess", "artifacts/tune/baseline_cnn",
                           "artifacts/augment/manifest.parquet",
                           "artifacts/augment/report.json", "artifacts/validate/summary.md",
                           "artifacts/ingest", "params:train.lr", "params:preprocess.eyes",
                           "params:serving.max_faces", "params:ingest.source",
                           "params:recipe"],
    "evaluate": ["artifacts/preprocess", "artifacts/train", "artifacts/augment/manifest.parquet",
                 "params:train.architectures"],
    "promote": ["artifacts/train", "artifacts/tracking", "params:registry.min_delta",
                "params:train.architectures"],
    "predict": ["artifacts/registry/report.md", "data", "artifacts/validate/manifest.parquet",
                "params:predict.model", "params:predict.examples.per_class",
                "params:preprocess.eyes", "params:serving.max_faces"],
}


def _run(cwd: Path, *args: str) -> str:
    done = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _ferops(cwd: Path, *args: str) -> str:
    return _run(cwd, sys.executable, "-m", "pipelines.cli", *args)


def _dvc(cwd: Path, *args: str) -> str:
    return _run(cwd, sys.executable, "-m", "dvc", *args)


def _copy_project(root: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
        check=True, capture_output=True, text=True).stdout.split("\n")
    for name in filter(None, listed):
        if (REPO_ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, root / name)
    return root


@contextlib.contextmanager
def tiny_dvc_project(base: Path, prepare: Callable[[Path], None] = lambda root: None,
                     *targets: str) -> Iterator[Path]:
    """A copy of the project under ``base`` with the tiny demo params and rendered data,
    ``prepare(root)`` applied, committed to a fresh git repository, after a real
    ``dvc repro <targets>``; the store redirects of the outer environment are lifted."""
    saved = {k: os.environ.pop(k) for k in REDIRECTS if k in os.environ}
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{path}"
    root = _copy_project(base / "proj")
    try:
        _ferops(root, "recipe", "write", "demo", *[f"-S{o}" for o in TINY])
        _ferops(root, "data", "synth")
        prepare(root)
        _run(root, "git", "init", "-q")
        _run(root, "git", "config", "user.email", "ci@example.com")
        _run(root, "git", "config", "user.name", "ci")
        _dvc(root, "add", "-q", "data")
        _run(root, "git", "add", "-A")
        _run(root, "git", "commit", "-q", "-m", "tiny")
        _dvc(root, "repro", *targets)
        yield root
    finally:
        os.environ["PATH"] = path
        os.environ.update(saved)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with tiny_dvc_project(tmp_path_factory.mktemp("honest")) as root:
        yield root


def _status(root: Path) -> dict:
    # the main pipeline only: claims/dvc.yaml's stages have not run in the tiny project
    return json.loads(_dvc(root, "status", "--json", "dvc.yaml").strip().splitlines()[-1] or "{}")


def _changed(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, list):
        return [*value, value[-1]] if value else [0]
    return f"{value}-changed"


def _touch_param(root: Path, key: str) -> bytes:
    path = root / "params.yaml"
    before = path.read_bytes()
    params = yaml.safe_load(before)
    node, parts = params, key.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = _changed(node[parts[-1]])
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return before


def _touch_file(root: Path, rel: str) -> tuple[Path, bytes | None]:
    target = root / rel
    if target.is_dir():
        extra = target / "zz-touched.txt"
        extra.write_text("touched\n")
        return extra, None
    before = target.read_bytes()
    target.write_bytes(before + b"\n")
    return target, before


def test_each_read_is_declared_so_dvc_status_names_the_stage(project: Path) -> None:
    assert _status(project) == {}, "the pipeline should be up to date after dvc repro"
    missed = []
    for stage, reads in READS.items():
        for item in reads:
            if item.startswith("params:"):
                before = _touch_param(project, item.removeprefix("params:"))
                status = _status(project)
                (project / "params.yaml").write_bytes(before)
            else:
                path, before = _touch_file(project, item)
                status = _status(project)
                if before is None:
                    path.unlink()
                else:
                    path.write_bytes(before)
            if stage not in status:
                missed.append(f"{stage} reads {item} but dvc status does not name it")
    assert not missed, "\n".join(missed)
    assert _status(project) == {}


def test_a_second_repro_runs_nothing(project: Path) -> None:
    out = _dvc(project, "repro")
    assert "Running stage" not in out, out


def test_views_fit_a_screen_and_render_offline(project: Path) -> None:
    table = _dvc(project, "metrics", "show")
    assert "image_uar" in table and "image_acc" in table
    assert max(len(line) for line in table.splitlines()) <= 120, table
    env = {**os.environ, "COLUMNS": "120"}
    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--no-pager", *EXP_SHOW_FILTER],
        cwd=project, capture_output=True, text=True, env=env, check=True).stdout
    assert "image_uar" in shown and "…" not in shown, shown
    assert max(len(line) for line in shown.splitlines()) <= 120, shown
    _dvc(project, "plots", "show", "-o", "plots_page")
    page = (project / "plots_page" / "index.html").read_text()
    # The plotting library is inlined by the project's page template: nothing loads from
    # the network (a spec's "$schema" string is an identifier, not a fetch).
    assert not re.search(r"<(script|link|img)[^>]*(src|href)=[\"']?(https?:)?//", page)
    assert "vegaEmbed(" in page
    for shown in ("artifacts/evaluate/predictions/baseline_cnn.json",  # confusion matrix
                  "validation UAR per epoch", "accuracy vs occluded area"):
        assert shown in page, shown
