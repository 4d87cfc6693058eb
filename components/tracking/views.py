"""A leaderboard view of an experiment in the MLflow UI: run names beside the test scores.

The UI's runs table lists a column per attribute first and puts metrics far to the right,
where a laptop screen never shows them. MLflow's "share view" feature stores a table layout
as an experiment tag (``mlflow.sharedViewState.<key>``, JSON) and opens it from
``#/experiments/<id>/runs?viewStateShareKey=<key>``; the train stage writes one named
:data:`VIEW_KEY` whose columns are the run name and the test metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

SHARED_VIEW_TAG = "mlflow.sharedViewState."
VIEW_KEY = "ferops-leaderboard"
LEADERBOARD_SUFFIXES: tuple[str, ...] = ("_uar", "_accuracy")


def leaderboard_columns(metric_keys: Iterable[str]) -> list[str]:
    """UI column ids: the run name, then the ``test*`` UAR / accuracy metrics.

    Clean-test UAR comes first (the headline score: classes are imbalanced), then clean
    accuracy, then the occluded splits by level, so the most telling numbers sit next to
    the run names even on a narrow screen.
    """
    chosen = [
        key for key in metric_keys
        if key.startswith("test") and key.endswith(LEADERBOARD_SUFFIXES)
    ]
    chosen.sort(key=lambda k: (k.startswith("test_occ"), _level(k), not k.endswith("_uar"), k))
    return ["attributes.`Run Name`"] + [f"metrics.`{key}`" for key in chosen]


def _level(key: str) -> int:
    """Occlusion percentage of a ``test_occ<pct>_*`` key (0 for the clean test split)."""
    digits = key.removeprefix("test_occ").split("_")[0]
    return int(digits) if digits.isdigit() else 0


def share_view(experiment_id: str, columns: list[str], key: str = VIEW_KEY,
               order_by: str | None = None) -> str:
    """Store a runs-table layout on the experiment; return its UI path (after the ``#``).

    Args:
        columns: UI column ids, e.g. ``metrics.`test_uar```.
        order_by: a column id to sort by, best first (None keeps newest first).
    """
    from mlflow import MlflowClient

    state: dict[str, object] = {"selectedColumns": columns}
    if order_by is not None:
        state.update(orderByKey=order_by, orderByAsc=False)
    MlflowClient().set_experiment_tag(experiment_id, SHARED_VIEW_TAG + key, json.dumps(state))
    return view_path(experiment_id, key)


def view_path(experiment_id: str, key: str = VIEW_KEY) -> str:
    """``/experiments/<id>/runs?viewStateShareKey=<key>``: append to ``<ui>/#``."""
    return f"/experiments/{experiment_id}/runs?viewStateShareKey={key}"
