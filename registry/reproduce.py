"""Rebuild a registered model from its lineage and check it scores what was registered.

``ferops registry reproduce --task T [--version N]`` reads the version's lineage (its run's
git commit, the ``data.dvc`` md5 and params hash it was trained with, its architecture and
test metrics), checks that commit out in a temporary git worktree that shares the project's
DVC cache, restores ``data/`` from the cache, re-runs the pipeline to that model
(``dvc repro --force --no-run-cache train@<arch>``, tracked in a throw-away MLflow store so
the registry is untouched) and compares the rebuilt test metrics with the registered ones.

Exit codes: 0 the metrics agree (exactly on CPU with the deterministic defaults, or within
``--tolerance``), 3 they differ, 2 the lineage is incomplete (no commit, the commit or the
data not in this repository or its DVC cache, or a configuration at that commit that is not
the one the run was trained with, e.g. an experiment's ``-S`` overrides).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.data.version import dvc_data_md5
from components.errors import DataError
from registry.register import params_hash
from registry.versions import CHAMPION

EXIT_AGREE, EXIT_DIFFER, EXIT_INCOMPLETE = 0, 3, 2
STORE_REDIRECTS = ("MLFLOW_TRACKING_URI", "OPTUNA_STORAGE", "FEROPS_PROJECT_ROOT", "DVC_ROOT")


class LineageIncomplete(DataError):
    """The version cannot be rebuilt from what its lineage names (exit 2)."""


@dataclass(frozen=True)
class Lineage:
    """What a registered version was built from, and what it scored."""

    name: str
    version: str
    arch: str
    run_id: str
    commit: str
    data_md5: str | None
    params: dict[str, str]
    metrics: dict[str, float]


@dataclass
class Outcome:
    """The comparison of a rebuilt model with its registered version."""

    lineage: Lineage
    rebuilt: dict[str, float] = field(default_factory=dict)
    differences: list[tuple[str, float, float]] = field(default_factory=list)
    tolerance: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_DIFFER if self.differences else EXIT_AGREE

    def report(self) -> str:
        lin = self.lineage
        lines = [f"# Reproduce {lin.name} v{lin.version} ({lin.arch})", "",
                 f"- run `{lin.run_id}`, commit `{lin.commit}`, data.dvc md5 "
                 f"`{lin.data_md5 or 'n/a'}`", f"- tolerance {self.tolerance:g}", "",
                 "| metric | registered | rebuilt | agrees |", "|---|---|---|---|"]
        bad = {key for key, _, _ in self.differences}
        for key in sorted(lin.metrics):
            rebuilt = self.rebuilt.get(key, math.nan)
            lines.append(f"| {key} | {lin.metrics[key]:.6f} | {rebuilt:.6f} | "
                         f"{'NO' if key in bad else 'yes'} |")
        verdict = ("the rebuilt model scores what was registered" if not self.differences
                   else f"{len(self.differences)} metric(s) differ")
        return "\n".join([*lines, "", f"Result: {verdict}."])


def read_lineage(client: MlflowClient, name: str, version: str | None) -> Lineage:
    """The lineage of ``name`` v``version`` (the champion when ``version`` is None).

    Raises:
        LineageIncomplete: no such version, or its run lacks a commit or architecture.
    """
    try:
        mv = (client.get_model_version(name, version) if version
              else client.get_model_version_by_alias(name, CHAMPION))
        run = client.get_run(mv.tags.get("run_id") or mv.run_id)
    except MlflowException as exc:
        what = f"v{version}" if version else f"@{CHAMPION}"
        raise LineageIncomplete(f"{name} {what}: {str(exc).splitlines()[0]}") from exc
    commit = run.data.tags.get("git_commit", "unknown")
    arch = mv.tags.get("architecture") or run.data.tags.get("architecture")
    if commit in ("", "unknown") or not arch:
        raise LineageIncomplete(f"{name} v{mv.version}: its run records no git commit or "
                                "architecture, so nothing says what to rebuild")
    metrics = {key: float(value) for key, value in mv.tags.items()
               if key.startswith("test_") and _is_number(value)}
    return Lineage(name, str(mv.version), arch, run.info.run_id, commit,
                   run.data.tags.get("data.dvc_md5"), dict(run.data.params), metrics)


def reproduce(client: MlflowClient, name: str, version: str | None, project: Path,
              tolerance: float = 0.0) -> Outcome:
    """Rebuild ``name`` v``version`` in a temporary checkout and compare (see module doc).

    Raises:
        LineageIncomplete: see :func:`read_lineage` and :func:`_checkout`.
    """
    lineage = read_lineage(client, name, version)
    with _checkout(project, lineage) as checkout:
        rebuilt, rebuilt_params = _rebuild(checkout, lineage.arch)
    if params_hash(rebuilt_params) != params_hash(lineage.params):
        differences = _param_differences(lineage.params, rebuilt_params)
        raise LineageIncomplete(
            f"{name} v{lineage.version}: the configuration at commit {lineage.commit[:12]} is "
            f"not the one the run was trained with ({differences}; was it an experiment "
            "with -S overrides? commit them to make the version reproducible)")
    outcome = Outcome(lineage, rebuilt, tolerance=tolerance)
    for key, registered in lineage.metrics.items():
        value = rebuilt.get(key, math.nan)
        if not math.isclose(registered, value, rel_tol=0.0, abs_tol=tolerance):
            outcome.differences.append((key, registered, value))
    return outcome


@contextmanager
def _checkout(project: Path, lineage: Lineage) -> Iterator[Path]:
    """A git worktree of the version's commit with ``data/`` restored from the DVC cache."""
    root = Path(tempfile.mkdtemp(prefix="ferops-reproduce-"))
    checkout = root / "checkout"
    added = _git(project, "worktree", "add", "--detach", str(checkout), lineage.commit)
    if added.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise LineageIncomplete(f"commit {lineage.commit[:12]} is not in this repository "
                                f"({added.stderr.strip().splitlines()[-1:]})")
    try:
        _restore_data(project, checkout, lineage)
        yield checkout
    finally:
        _git(project, "worktree", "remove", "--force", str(checkout))
        shutil.rmtree(root, ignore_errors=True)


def _restore_data(project: Path, checkout: Path, lineage: Lineage) -> None:
    """Point the checkout at the project's DVC cache and check ``data/`` out of it."""
    recorded = _data_md5(checkout / "data.dvc")
    if lineage.data_md5 and recorded != lineage.data_md5:
        raise LineageIncomplete(f"data.dvc at commit {lineage.commit[:12]} names data "
                                f"{recorded}, the run trained on {lineage.data_md5}")
    cache = _dvc(project, "cache", "dir").stdout.strip().splitlines()[-1]
    _dvc(checkout, "cache", "dir", "--local", cache, check=True)
    done = _dvc(checkout, "checkout", "data.dvc")
    if done.returncode != 0:
        raise LineageIncomplete(f"data {recorded} is not in the DVC cache ({cache}); "
                                "`dvc pull` it from the remote first")


def _param_differences(registered: dict[str, str], rebuilt: dict[str, str],
                       shown: int = 4) -> str:
    """``key registered -> rebuilt`` for the first few params that differ."""
    keys = sorted(k for k in set(registered) | set(rebuilt)
                  if registered.get(k) != rebuilt.get(k))
    parts = [f"{k} {registered.get(k, '(absent)')!r} -> {rebuilt.get(k, '(absent)')!r}"
             for k in keys[:shown]]
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return "params differ: " + "; ".join(parts) + more


def _rebuild(checkout: Path, arch: str) -> tuple[dict[str, float], dict[str, str]]:
    """Re-run the pipeline to ``train@arch``; its test metrics and the new run's params."""
    store = checkout.parent / "rebuild.db"
    env = {k: v for k, v in os.environ.items() if k not in STORE_REDIRECTS}
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{store}",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    done = subprocess.run([sys.executable, "-m", "dvc", "repro", "--force", "--no-run-cache",
                           f"train@{arch}"], cwd=checkout, env=env, text=True,
                          stdout=sys.stderr, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise DataError(f"rebuilding {arch} failed (dvc repro exit {done.returncode})")
    run_dir = checkout / "artifacts" / "train" / arch
    metrics = json.loads((run_dir / "metrics.json").read_text())
    record = _run_record(checkout, arch)
    run = MlflowClient(f"sqlite:///{store}").get_run(record["run_id"])
    return ({k: float(v) for k, v in metrics.items() if k.startswith("test_")
             and isinstance(v, int | float) and not isinstance(v, bool)},
            dict(run.data.params))


def _run_record(checkout: Path, arch: str) -> dict:
    from components.tracking.store import run_record_path

    return json.loads(run_record_path(checkout / "artifacts" / "train" / arch).read_text())


def _data_md5(path: Path) -> str | None:
    """The md5 ``data.dvc`` at a checkout records; None when absent or unreadable (the
    caller reports the lineage as incomplete)."""
    try:
        return dvc_data_md5(path)
    except DataError:
        return None


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def _dvc(cwd: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True,
                          text=True, check=check)
