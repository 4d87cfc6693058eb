"""Browser check: ``ferops ui`` serves the study and headless Chromium renders its runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.tracking.conftest import ARCHS, Study, free_port, running

SCREENSHOT = REPO_ROOT / "test-artifacts" / "mlflow_ui_runs.png"
# Exactly the flags the CI image is known to run headless Chromium with, as root.
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def chromium() -> str:
    """The chromium binary; installs Debian's package when it is missing (CI runs as root)."""
    found = shutil.which("chromium")
    if found:
        return found
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                              env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/bin:/bin"})
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.fail("apt-get install chromium succeeded but no chromium binary is on PATH")
    return found


def browse(binary: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Load ``url`` in a fresh headless profile and let the React app settle for 15 s."""
    profile.mkdir(parents=True, exist_ok=True)
    command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
               "--virtual-time-budget=15000", *extra, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


@pytest.mark.e2e
def test_mlflow_ui_lists_the_study_runs_with_a_metric_column(study: Study, tmp_path: Path) -> None:
    binary = chromium()
    ws = study.workspace
    record = ws.run_record(ARCHS[0])
    port = free_port()
    command = [sys.executable, "-m", "pipelines.ui", "--port", str(port), "--root", str(ws.root)]
    env = {"MLFLOW_TRACKING_URI": study.uri}
    with running(command, port, tmp_path / "ui.log", env=env) as base:
        url = f"{base}/#{record['ui_path']}"  # the leaderboard view the train stage shares
        dom = browse(binary, url, tmp_path / "profile-dom", "--dump-dom")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.unlink(missing_ok=True)
        shot = browse(binary, url, tmp_path / "profile-shot", f"--screenshot={SCREENSHOT}",
                      "--window-size=1600,1000")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # The page is the experiment of the first architecture's task (a colour-only net: image).
    assert f"{ARCHS[0]}-seed0" in html, f"run {ARCHS[0]}-seed0 not rendered; see {SCREENSHOT}"
    # The UI orders metric columns alphabetically and only renders those in view, so the
    # first leaderboard column (test_accuracy) is the one every window width shows.
    assert 'data-testid="sort-header-test_accuracy"' in html, "no metric column in the table"
    assert "Sort: test_uar" in html  # the leaderboard ranks runs by clean-test UAR
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert SCREENSHOT.stat().st_size > 20_000  # a rendered page, not a blank canvas
