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
    "configure": ["params:train.lr", "params:train.overrides.baseline_cnn.dropout",
                  "params:tune.sampler_seed", "params:tune.min_gain",
                  "params:preprocess.eyes", "params:serving.max_faces",
                  "params:ingest.source", "params:recipe"],
    "tune@baseline_cnn": ["artifacts/config/tune/baseline_cnn.yaml", "artifacts/preprocess",
                          "artifacts/augment/manifest.parquet"],
    "train@baseline_cnn": ["artifacts/config/train/baseline_cnn.yaml", "artifacts/preprocess",
                           "artifacts/tune/baseline_cnn", "artifacts/augment/manifest.parquet",
                           "artifacts/augment/report.json", "artifacts/validate/summary.md",
                           "artifacts/ingest"],
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

# Every stage's processes cap the instruction sets the libraries use (same bytes on any AVX2
# machine), so every stage reads the caps.
for _reads in READS.values():
    _reads.append("components/isa.py")


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


def _touch_params(root: Path, keys: list[str]) -> None:
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_bytes())
    for key in keys:
        node, parts = params, key.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = _changed(node[parts[-1]])
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _touch_file(root: Path, rel: str) -> None:
    target = root / rel
    if target.is_dir():
        (target / "zz-touched.txt").write_text("touched\n")
    else:
        target.write_bytes(target.read_bytes() + b"\n")


def _names(changes: list, item: str) -> bool:
    """Whether a stage's ``dvc status`` entries name ``item``: a changed dep that is the
    item, holds it or lies in it, or a changed params key that is the item or its section."""
    deps: dict = {}
    for change in changes:
        if isinstance(change, dict):
            deps.update(change.get("changed deps", {}))
    if item.startswith("params:"):
        key = item.removeprefix("params:")
        keys = [k for value in deps.values() if isinstance(value, dict) for k in value]
        return any(key == k or key.startswith(f"{k}.") for k in keys)
    return any(item == path or item.startswith(f"{path}/") or path.startswith(f"{item}/")
               for path, value in deps.items() if not isinstance(value, dict))


@contextlib.contextmanager
def _restored(root: Path) -> Iterator[None]:
    """Puts back every tracked file and removes every added one (git knows the state after
    the fixture's repro: the fixture committed it) and params.yaml."""
    saved = {p: p.read_bytes() for p in (root / "params.yaml", root / "dvc.lock")}
    listed = {rel for item in READS.values() for rel in item if not rel.startswith("params:")}
    backups = {rel: _snapshot(root / rel) for rel in listed}
    try:
        yield
    finally:
        for path, data in saved.items():
            path.write_bytes(data)
        for rel, snapshot in backups.items():
            _restore(root / rel, snapshot)


def _snapshot(path: Path) -> bytes | None:
    return None if path.is_dir() else path.read_bytes()


def _restore(path: Path, snapshot: bytes | None) -> None:
    if snapshot is None:
        (path / "zz-touched.txt").unlink(missing_ok=True)
    else:
        path.write_bytes(snapshot)


def test_each_read_is_declared_so_dvc_status_names_the_stage(project: Path) -> None:
    """Every read is touched at once and one ``dvc status`` is read: nothing re-runs, so a
    stage is named for its own declared deps only, and each entry says which dep changed."""
    assert _status(project) == {}, "the pipeline should be up to date after dvc repro"
    with _restored(project):
        items = {item for reads in READS.values() for item in reads}
        _touch_params(project, sorted(i.removeprefix("params:") for i in items
                                      if i.startswith("params:")))
        for item in sorted(i for i in items if not i.startswith("params:")):
            _touch_file(project, item)
        status = _status(project)
    missed = [f"{stage} reads {item} but dvc status does not name it for that"
              for stage, reads in READS.items() for item in reads
              if not _names(status.get(stage, []), item)]
    assert not missed, "\n".join(missed) + f"\n{json.dumps(status, indent=1)}"
    assert _status(project) == {}


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def test_one_architectures_settings_rerun_that_architecture_alone(project: Path) -> None:
    """Another architecture's override, search space or enqueued trial re-runs only
    ``configure`` (the tiny project trains baseline_cnn alone); baseline_cnn's own override
    re-runs its tune and train stages and what reads them, not the data stages."""
    try:
        with _restored(project):
            _touch_params(project, ["train.overrides.partition_cnn.width",
                                    "tune.spaces.partition_cnn.lr.high",
                                    "tune.enqueue.partition_cnn"])
            assert _ran(_dvc(project, "repro")) == ["configure"]
        with _restored(project):
            _touch_params(project, ["train.overrides.baseline_cnn.dropout"])
            _dvc(project, "repro", "configure")
            stale = set(_status(project))
            assert {"tune@baseline_cnn", "train@baseline_cnn"} <= stale, stale
            assert not stale & {"ingest", "validate", "augment", "preprocess"}, stale
    finally:
        _dvc(project, "checkout", "-q", "configure")
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
