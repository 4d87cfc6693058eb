"""Every ``ferops`` command's ``--help``: its own usage line, quick, and quiet.

Quick is checked by what loads, not by a stopwatch: a help text that needs neither torch nor
MLflow (nor the other heavy libraries) starts in well under the 2 s a user would accept.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.cli import SHORTCUTS, STAGES
from tests.conftest import REPO_ROOT

HEAVY: tuple[str, ...] = ("torch", "mlflow", "sklearn", "optuna", "great_expectations",
                          "albumentations", "pandas", "cv2", "matplotlib")
COMMANDS: list[list[str]] = ([[name] for name in SHORTCUTS]
                             + [["stage", name] for name in STAGES]
                             + [["data", "synth"], ["data", "validate"], ["recipe", "show"]])

_PROBE = """
import sys
from pipelines.cli import main
try:
    code = main(sys.argv[1:] + ["--help"])
except SystemExit as exc:
    code = exc.code
heavy = [m for m in {heavy!r} if m in sys.modules]
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
raise SystemExit(code)
"""


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_the_full_usage_without_loading_heavy_libraries(command: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *command],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: ferops {' '.join(command)}"), done.stdout[:200]
    lines = done.stderr.strip().splitlines()
    assert lines == ["HEAVY="], f"--help printed or loaded more than it needs: {lines}"


def test_predict_help_through_the_installed_entry_point_is_silent() -> None:
    """``ferops predict --help`` as typed: usage on stdout, nothing at all on stderr."""
    script = REPO_ROOT / ".venv" / "bin" / "ferops"
    ferops = [str(script)] if script.exists() else [sys.executable, "-m", "pipelines.cli"]
    done = subprocess.run([*ferops, "predict", "--help"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: ferops predict")
    assert done.stderr == ""
