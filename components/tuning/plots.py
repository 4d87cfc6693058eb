"""Study plots as PNG through Optuna's matplotlib backend (no plotly, no browser).

``optimization_history.png`` always (once a trial finished), ``intermediate_values.png``
when trials reported per-epoch values (shows where pruning cut curves),
``param_importances.png`` once two trials completed.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (CI, DVC, headless workers)

import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

log = logging.getLogger(__name__)


def write_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Draw the study's plots into ``folder``.

    Returns:
        The PNG files written (none while no trial has finished).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    plots: dict[str, Callable[[optuna.Study], object]] = {}
    if complete:
        plots["optimization_history"] = optuna_plots.plot_optimization_history
    if any(t.intermediate_values for t in finished):
        plots["intermediate_values"] = optuna_plots.plot_intermediate_values
    if len(complete) >= 2 and _varied_params(complete):
        plots["param_importances"] = optuna_plots.plot_param_importances
    written = []
    for name, plot in plots.items():
        path = folder / f"{name}.png"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axes = plot(study)
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def _varied_params(complete: list[optuna.trial.FrozenTrial]) -> bool:
    """Importances need at least one parameter that took two values among completed trials."""
    names = set().union(*(t.params for t in complete))
    return any(len({repr(t.params.get(n)) for t in complete}) > 1 for n in names)
