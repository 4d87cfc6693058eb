"""The demo report says which architecture each task's champion is, from the promote
stage's report (the version's line names it), and only the version where the report does
not describe the champion (one kept from an earlier run)."""

from __future__ import annotations

from benchmarks.demo_report import registry_outcomes

REPORT = """# Registry

## ferops-image: promoted

v2 (baseline_cnn) is now champion (no champion before).

candidate v2 · staging v2 · champion v2 · previous-champion none

## ferops-rgbd: refused

v4 (fusion_early) stays a candidate: test_uar below the champion's.

candidate v4 · staging v4 · champion v3 · previous-champion none

## ferops-video: refused

no candidate passed the checks.

candidate v1 · staging none · champion none · previous-champion none
"""


def test_each_task_names_its_champion_and_architecture() -> None:
    assert registry_outcomes(REPORT) == {
        "ferops-image": "promoted; champion v2 (baseline_cnn)",
        "ferops-rgbd": "refused; champion v3",  # kept from before: the report has no arch
        "ferops-video": "refused; no champion",
    }
