"""DVC stage ``configure``: one params file per architecture and per-architecture stage.

    python -m pipelines.configure [--params params.yaml] [--out artifacts/config]

Writes ``<out>/tune/<arch>.yaml`` and ``<out>/train/<arch>.yaml`` for every name in
``train.architectures``: the params each ``tune@<arch>`` / ``train@<arch>`` stage reads, cut
to that architecture (see :func:`components.config.stage_view`). Those stages declare their
file instead of the whole ``train`` and ``tune`` sections, so a change to one architecture's
override, search space or enqueued trial re-runs that architecture's stages alone (this
stage re-runs, rewrites every file, and DVC sees the others unchanged); a change shared by
all (``train.lr``) re-runs them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.config import STAGE_SECTIONS, load_params, section, stage_view
from components.errors import ConfigError
from pipelines._common import run_cli, stage_parser

DEFAULT_OUT = "artifacts/config"
HEADER = ("# Written by `python -m pipelines.configure` from params.yaml (the {stage} stage of "
          "{arch} reads it).\n# Edit params.yaml, not this file: `dvc repro` rewrites it.\n")


def view_path(out_dir: Path, stage: str, arch: str) -> Path:
    """``<out_dir>/<stage>/<arch>.yaml``: the file ``<stage>@<arch>`` declares and reads."""
    return Path(out_dir) / stage / f"{arch}.yaml"


def configure(params: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write every architecture's per-stage params files; returns their paths.

    Raises:
        ConfigError: ``train.architectures`` is missing, empty or repeats a name.
    """
    import yaml

    from components.atomic import atomic_write

    archs = section(params, "train").get("architectures")
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
        raise ConfigError("train.architectures: expected a non-empty list of names")
    if len(set(archs)) != len(archs):
        raise ConfigError(f"train.architectures: a name is listed twice in {archs}")
    written = []
    for stage in STAGE_SECTIONS:
        for arch in archs:
            text = HEADER.format(stage=stage, arch=arch) + yaml.safe_dump(
                stage_view(params, stage, arch), sort_keys=True)
            written.append(atomic_write(view_path(out_dir, stage, arch),
                                        lambda handle, t=text: handle.write(t.encode())))
    return written


def _body(argv: Sequence[str] | None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder (default: %(default)s)")
    args = parser.parse_args(argv)
    written = configure(load_params(args.params), Path(args.out))
    print(f"configure: {len(written)} params files under {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pipelines.configure``."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
