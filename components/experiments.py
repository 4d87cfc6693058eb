"""An experiment's outputs read back from DVC's cache, leaving the workspace as it is.

``dvc exp run --temp`` (what ``benchmarks/fer2013_accuracy.py`` drives) runs in a temporary
copy of the project and keeps only the experiment's commit (a ref under ``refs/exps``) and
its outputs in the cache: the workspace keeps its own params, lock and artifacts. Scoring such
a run's model again on the data it was trained on (other test-time views, another decision
rule) reads that data out of the cache by the experiment's name. ``dvc exp apply`` would get
it too, but it overwrites the workspace's params and lock, so whatever is measured next is
recorded against a dirty commit.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from components.errors import DataError


def experiment_rev(root: Path, name: str) -> str:
    """The commit of experiment ``name`` in the project at ``root``; a commit sha, branch or
    tag is accepted as well (DVC resolves all of them the same way).

    Raises:
        DataError: ``root`` is not a Git repository or nothing there has that name.
    """
    from dvc.scm import SCM, SCMError, resolve_rev

    try:
        return resolve_rev(SCM(str(root)), name)
    except SCMError as exc:
        raise DataError(f"experiment {name!r}: not found in {root} "
                        f"(`dvc exp list` names the experiments there): {exc}") from exc


def checkout_output(root: Path, name: str, path: str | Path, into: Path) -> Path:
    """Copy ``path`` (a file or folder, relative to the project root) as experiment ``name``
    left it into the folder ``into``; returns the copy, ``into / <path's last part>``.

    Raises:
        DataError: no such experiment, the experiment has no such path, or its files are not
            in the local cache (the experiment ran on another machine: ``dvc pull`` it).
    """
    from dvc.exceptions import DvcException
    from dvc.fs import DVCFileSystem
    from dvc_data.index import DataIndexError

    relative = PurePosixPath(Path(path).as_posix())
    if relative.is_absolute() or ".." in relative.parts:
        raise DataError(f"{path}: give the path relative to the project root")
    rev = experiment_rev(root, name)
    fs = DVCFileSystem(repo=str(root), rev=rev)
    if not fs.exists(str(relative)):
        raise DataError(f"experiment {name!r} ({rev[:7]}) has no {relative}")
    target = Path(into) / relative.name
    _remove(target)  # a copy is whole or absent: no files of an earlier one mixed in
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if fs.isdir(str(relative)):
            fs.get(str(relative), str(target), recursive=True)
        else:
            fs.get_file(str(relative), str(target))
    except (DvcException, DataIndexError, FileNotFoundError) as exc:
        _remove(target)
        raise DataError(f"experiment {name!r} ({rev[:7]}): {relative} is not in the local "
                        f"DVC cache (`dvc pull` it first): {exc}") from exc
    return target


def _remove(path: Path) -> None:
    """Delete the file or folder at ``path`` if there is one."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
