"""The claims pipeline (``claims/dvc.yaml``): the patents' claims measured by the stages.

    python -m pipelines.claims dag                      # (re)write claims/dvc.yaml, inputs.json
    python -m pipelines.claims data --variant NAME      # that variant's data stages
    python -m pipelines.claims arm --arm NAME --seed S  # train + evaluate one arm, one seed
    python -m pipelines.claims report                   # claims/report.md from what ran

``dvc repro claims/dvc.yaml`` runs them all. Every step is the main pipeline's own stage
(``pipelines.ingest`` ... ``pipelines.evaluate``, same CLI) on params composed from a recipe
plus the spec's overrides (``claims/params.yaml``), written beside the outputs; nothing here
loads data or trains by itself. The modules are split by stage (``data``, ``arm``, ``dag``)
so that editing one never invalidates another's finished runs in DVC.
"""

from __future__ import annotations


def run_stage(name: str, argv: list[object]) -> None:
    """Run ``pipelines.<name>``'s CLI (exactly what ``dvc.yaml`` runs); a failing stage
    stops the claims step with its exit code."""
    import importlib

    from components.errors import DataError

    code = importlib.import_module(f"pipelines.{name}").main([str(a) for a in argv])
    if code != 0:
        raise DataError(f"claims: stage {name} failed (exit {code}): {argv}")


def main(argv: list[str] | None = None) -> int:
    """The CLI (``ferops claims`` calls the package)."""
    from pipelines.claims.__main__ import main as cli_main

    return cli_main(argv)
