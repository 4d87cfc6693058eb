"""``ferops export onnx --model URI --out model.onnx``: the served network as ONNX.

Writes the network with a dynamic batch axis and ``model.serving.json`` (preprocessing and
spec) beside it, which ``ferops predict --runtime onnx --onnx model.onnx`` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines._common import run_cli, stage_parser
from pipelines.predict import DEFAULT_MODEL

FORMATS: tuple[str, ...] = ("onnx",)


def run_export(model: str, out: Path, data_dir: Path | None = None,
               params: dict[str, Any] | None = None) -> Path:
    """Export ``model`` (serving URI or training run folder) to ONNX at ``out``.

    Returns:
        The ``.onnx`` path (the settings JSON is at :func:`settings_path` of it).

    Raises:
        DataError: the model cannot be loaded, is an estimator, or the export fails.
    """
    from components.serving.onnx_export import export_onnx
    from pipelines.predict import load_model

    return export_onnx(load_model(model, data_dir, params), out)


def _body(argv: Sequence[str] | None) -> int:
    parser = stage_parser("Export a served model's network (ONNX, dynamic batch).")
    parser.add_argument("format", choices=FORMATS)
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="serving model URI, or a training run folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("model.onnx"))
    parser.add_argument("--data", type=Path, default=Path("artifacts/preprocess"),
                        help="preprocessed data (only for a training run folder as --model)")
    args = parser.parse_args(argv)
    from components.config import load_params
    from components.serving.onnx_export import settings_path

    params = load_params(args.params) if Path(args.params).exists() else {}
    out = run_export(args.model, args.out, args.data, params)
    print(f"wrote {out} and {settings_path(out)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``ferops export``; exits 0, or 2 with one line on a user error."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
