"""Opening a study that survives crashes and is shared by workers.

Storage: a journal file (``<out>/journal.log``) by default: it is append-only, so a process
killed mid-write leaves at worst one unfinished line that the next reader skips. Setting
``OPTUNA_STORAGE`` to an RDB URL (``sqlite:///...``, ``postgresql://...``) points every
``ferops tune`` worker, on any machine, at one shared study instead.

A worker killed during a trial leaves that trial RUNNING forever. Each trial records its
host and process id; on start (and before each new trial) the trials of dead processes on
this host are marked FAIL, and RDB storages also get Optuna's heartbeat so trials of dead
workers on *other* hosts fail after ``2 x heartbeat_interval``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from components.errors import ConfigError
from components.tracking.store import process_alive
from components.tuning.config import TuneConfig

log = logging.getLogger(__name__)

STORAGE_ENV = "OPTUNA_STORAGE"
JOURNAL_FILE = "journal.log"
HOST_ATTR = "ferops.host"
PID_ATTR = "ferops.pid"
RDB_SCHEMES: tuple[str, ...] = ("sqlite", "postgresql", "mysql", "oracle", "mssql")


def study_name(arch: str, dataset: str, fingerprint: str = "") -> str:
    """``ferops-<arch>-<dataset>-<fingerprint>``: one study per architecture, dataset and
    :func:`study_fingerprint` (trials of one study must be comparable)."""
    return f"ferops-{arch}-{dataset}" + (f"-{fingerprint}" if fingerprint else "")


# Train keys that never change what a trial measures (list, logging, where results go).
_NEUTRAL_TRAIN_KEYS: tuple[str, ...] = ("architectures", "track", "progress", "use_tuned",
                                        "eval_batch_size", "overrides")


def study_fingerprint(arch: str, task_dir: Path, cfg: TuneConfig,
                      train_values: dict[str, Any]) -> str:
    """Eight hex digits naming what a trial's score depends on besides its own parameters.

    A study persists between runs (the tune stage's output is kept so studies grow), and
    Optuna compares every trial with every other: a trial scored on other data, another
    trial length or another base recipe would win or lose on a different question. The
    fingerprint covers the task's samples and labels (train and val ids and labels, the
    preprocessing settings), the trial budget (epochs, subsample, metric) and the train
    settings of ``arch``, so changing any of them starts a new study beside the old one.
    """
    task_dir = Path(task_dir)
    digest = hashlib.sha256()
    meta = task_dir / "meta.json"
    if meta.is_file():
        digest.update(meta.read_bytes())
    for split in ("train", "val"):
        for name in ("ids.npy", "y.npy"):
            path = task_dir / split / name
            if path.is_file():
                digest.update(path.read_bytes())
    train = {k: v for k, v in train_values.items() if k not in _NEUTRAL_TRAIN_KEYS}
    train["override"] = (train_values.get("overrides") or {}).get(arch)
    recipe = {"epochs": cfg.epochs, "subsample": cfg.subsample, "metric": cfg.metric,
              "train": train}
    digest.update(json.dumps(recipe, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:8]


def storage_url(out_dir: Path, url: str | None = None) -> str:
    """Where the study lives: ``url``, else ``$OPTUNA_STORAGE``, else the journal file."""
    chosen = url or os.environ.get(STORAGE_ENV)
    return chosen or f"journal:{(Path(out_dir) / JOURNAL_FILE).as_posix()}"


def describe_storage(url: str) -> str:
    """The storage URL with any password hidden (safe for study.json and MLflow)."""
    if url.startswith("journal:"):
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # open_storage reports the bad URL itself
        return "<unparsable storage url>"


def is_shared(url: str) -> bool:
    """True for RDB URLs: the storage meant for several workers."""
    return not url.startswith("journal:")


def open_storage(url: str, heartbeat_interval: int = 60) -> BaseStorage:
    """Open the storage named by :func:`storage_url`.

    Raises:
        ConfigError: the URL's scheme is not an RDB one, or the database cannot be opened.
    """
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in RDB_SCHEMES:
        raise ConfigError(
            f"{STORAGE_ENV}={describe_storage(url)!r}: expected an RDB URL "
            f"({', '.join(s + '://...' for s in RDB_SCHEMES[:2])})"
        )
    return _open_rdb(url, heartbeat_interval)


def _open_rdb(url: str, heartbeat_interval: int, attempts: int = 5) -> RDBStorage:
    """RDBStorage with heartbeats; retried because workers starting together race on the
    first schema creation of a new database (one of them sees a half-made schema)."""
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(attempts):
        try:
            return RDBStorage(url, heartbeat_interval=heartbeat_interval,
                              grace_period=2 * heartbeat_interval)
        except SQLAlchemyError as exc:
            if attempt == attempts - 1:
                raise ConfigError(
                    f"{STORAGE_ENV}={describe_storage(url)!r}: cannot open ({exc})"
                ) from exc
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def make_sampler(cfg: TuneConfig, offset: int = 0, salt: int = 0) -> optuna.samplers.TPESampler:
    """TPE seeded from ``sampler_seed`` + ``offset`` + ``salt``.

    ``offset`` is the number of trials already in the study, so a resumed study does not
    redraw the random start-up points it already tried. ``salt`` separates workers sharing
    one study (their process id): two workers started together would otherwise propose the
    same points. A single worker stays reproducible (salt 0); a shared study never is, as
    trials finish in whatever order the machines manage.
    """
    # SeedSequence mixes the three (a plain sum would let worker A's offset+1 meet worker
    # B's pid+1 on the same seed and redraw B's point).
    seed = int(np.random.SeedSequence([cfg.sampler_seed, offset, salt]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.startup_trials)


def make_pruner(cfg: TuneConfig) -> optuna.pruners.BasePruner:
    """The pruner named by ``cfg.pruner``; steps are epochs (1-based)."""
    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.pruner_startup_trials, n_warmup_steps=cfg.pruner_warmup_epochs
        )
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, cfg.pruner_warmup_epochs), max_resource=cfg.epochs
        )
    return optuna.pruners.NopPruner()


def open_study(
    name: str, storage: BaseStorage, cfg: TuneConfig, *, shared: bool = False
) -> optuna.Study:
    """Create or load study ``name``, seeded for where it stands, stale trials failed.

    Args:
        shared: other workers may add trials to the same study (an RDB storage): the
            sampler seed is salted with this process id.

    Raises:
        ConfigError: the stored study optimises in the other direction.
    """
    probe = optuna.create_study(
        study_name=name, storage=storage, direction=cfg.direction, load_if_exists=True
    )
    if probe.direction.name.lower() != cfg.direction:
        raise ConfigError(
            f"tune.direction: study {name!r} already exists with direction "
            f"{probe.direction.name.lower()}; delete it or use another storage"
        )
    offset = len(probe.get_trials(deepcopy=False))
    study = optuna.load_study(
        study_name=name, storage=storage, pruner=make_pruner(cfg),
        sampler=make_sampler(cfg, offset, os.getpid() if shared else 0),
    )
    fail_orphaned_trials(study)
    return study


def mark_owner(trial: optuna.Trial) -> None:
    """Record which process runs ``trial`` so a restart can tell it was orphaned."""
    trial.set_user_attr(HOST_ATTR, socket.gethostname())
    trial.set_user_attr(PID_ATTR, os.getpid())


def is_orphaned(trial: FrozenTrial, host: str | None = None) -> bool:
    """A RUNNING trial whose recorded process on this host is gone."""
    if trial.state != TrialState.RUNNING:
        return False
    owner_host = trial.user_attrs.get(HOST_ATTR)
    pid = trial.user_attrs.get(PID_ATTR)
    if owner_host != (host or socket.gethostname()) or not isinstance(pid, int):
        return False
    return pid != os.getpid() and not process_alive(pid)


def fail_orphaned_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker process on this host died.

    Returns:
        The numbers of the trials marked failed.
    """
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_orphaned(trial):
            continue
        try:
            frozen = study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker starting at the same moment (or the heartbeat reaper) failed
            # it between our read and our write: it is finished, which is all we wanted.
            continue
        if frozen.state == TrialState.FAIL:
            failed.append(trial.number)
    if failed:
        log.warning("%s: trials %s were left running by a dead worker; marked FAIL",
                    study.study_name, failed)
    return failed


def study_summary(study: optuna.Study, min_gain: float = 0.0) -> dict[str, Any]:
    """Counts per state, the best trial and the chosen one: what ``study.json`` records.

    ``best_*`` is Optuna's best trial; ``chosen_*`` the trial whose parameters the train
    stage merges (see :func:`chosen_trial`), the best one unless ``min_gain`` kept the
    recipe's. Trial numbers and values are None while no trial has completed.
    """
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    top = best_trial(study)
    chosen, reason = chosen_trial(study, min_gain)
    return {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "n_trials": len(trials),
        "complete": counts[TrialState.COMPLETE],
        "pruned": counts[TrialState.PRUNED],
        "failed": counts[TrialState.FAIL],
        "running": counts[TrialState.RUNNING],
        "best_trial": top.number if top else None,
        "best_value": top.value if top else None,
        "best_params": dict(top.params) if top else {},
        "chosen_trial": chosen.number if chosen else None,
        "chosen_value": chosen.value if chosen else None,
        "chosen_params": dict(chosen.params) if chosen else {},
        "min_gain": min_gain,
        "chosen_because": reason,
    }


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best COMPLETE trial, or None when there is none yet."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def chosen_trial(study: optuna.Study, min_gain: float = 0.0) -> tuple[FrozenTrial | None, str]:
    """The trial whose parameters training takes, and why.

    The first enqueued trial (the recipe's own settings, ``tune.enqueue``) is displaced only
    by a trial that beats it by at least ``min_gain`` on the study's metric. Short trials
    score with noise (two settings a few thousandths apart rank by chance), and a displaced
    recipe costs a full training run at the noise's choice; ``min_gain: 0`` takes the plain
    best.
    """
    top = best_trial(study)
    if top is None:
        return None, "no trial completed"
    recipe = _recipe_trial(study)
    if min_gain <= 0 or recipe is None or recipe.number == top.number:
        return top, "the best trial"
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    gain = sign * (top.value - recipe.value)
    if gain >= min_gain:
        return top, f"the best trial: it beats the recipe's trial by {gain:.4f} >= {min_gain}"
    return recipe, (f"the recipe's trial {recipe.number}: the best, trial {top.number}, beats "
                    f"it by {gain:.4f} < tune.min_gain {min_gain}")


def _recipe_trial(study: optuna.Study) -> FrozenTrial | None:
    """The first COMPLETE trial that was enqueued (Optuna marks it ``fixed_params``)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "fixed_params" in trial.system_attrs:
            return trial
    return None
