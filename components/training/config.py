"""Trainer settings: the ``train`` section of params.yaml as a typed dataclass.

One :class:`TrainConfig` drives every torch model. The section holds shared defaults plus
``overrides`` per architecture; :func:`resolve_config` merges defaults, the architecture's
overrides and (when ``use_tuned``) the tuner's ``chosen_params.json`` in that order, so the
most specific source wins. Keys that are not trainer settings (``k``, ``folds``, model
kwargs such as ``dropout``) are handed back separately for the model or estimator.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import build_config
from components.errors import ConfigError

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "auto")
# The instruction sets a training process may use (components/isa.py): "avx2", the pipeline's
# cap (same bytes on any AVX2 machine), or "native", the CPU's own kernels (AMX/AVX-512 bf16
# convolutions: faster where the CPU has them; bytes then differ by machine).
ISAS: tuple[str, ...] = ("avx2", "native")
# Where the network trains: "cpu", "cuda" (an error without a CUDA device) or "auto" (CUDA
# when torch sees one, else the CPU). The pipeline's default, "cpu", keeps its bytes the same
# on every machine; the real-data recipes, defined by their budget, take a GPU when present.
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")
SCHEDULES: tuple[str, ...] = ("none", "step", "cosine", "onecycle")
MONITORS: dict[str, str] = {  # monitored value -> direction
    "val_uar": "max",
    "val_accuracy": "max",
    "val_macro_f1": "max",
    "val_loss": "min",
}


@dataclass
class TrainConfig:
    """Everything one training run needs; defaults match the suggested params.yaml."""

    architectures: list[str] = field(default_factory=list)
    seed: int = 0
    epochs: int = 8
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 0.001
    weight_decay: float = 0.0001
    momentum: float = 0.9
    schedule: str = "cosine"
    # The horizon the schedule is laid over, in epochs; 0 = ``epochs``. A tuning trial runs
    # the first ``tune.epochs`` epochs of the final run's schedule (the final run's epochs
    # here), so it ranks settings on a prefix of the run they stand for: a schedule squeezed
    # into two epochs favours a low rate that the real run does not.
    schedule_epochs: int = 0
    step_size: int = 0  # step schedule: epochs per decay; 0 = a third of the horizon
    gamma: float = 0.1
    label_smoothing: float = 0.0
    mirror: bool = True
    shift: int = 0  # random-shift jitter in pixels (0 = off)
    rotate: float = 0.0  # random rotation, max degrees either way (0 = off)
    scale: float = 0.0  # random zoom in [1 - scale, 1 + scale] (0 = off)
    erase_p: float = 0.0  # share of samples with a random rectangle erased (0 = off)
    # Train on random crop x crop windows of each face (0 = off); validation, test scoring
    # and serving keep whole faces, so only nets that pool globally can take it
    # (baseline_cnn does): a step's pixels shrink by the ratio of the areas (40 of 48 px:
    # 0.69), measured 1.32-1.51x the images/s (train_width_baseline_cnn_crop.md).
    crop: int = 0
    tta_mirror: bool = False  # evaluate on the mean logits of each image and its mirror
    # Test scoring (and the saved model: evaluate, registry, serving) also averages copies
    # shifted this many pixels towards the four corners, zero-filled like `shift` (0 = off):
    # with the mirror, 2 on 48 px faces are the published 10-crop averaging. Validation
    # during training keeps the mirror alone (ten views an epoch would cost minutes).
    tta_shift: int = 0
    precision: str = "fp32"  # "bf16": autocast matmuls/convs to bfloat16 (AMX/AVX512-BF16);
    # "auto": bf16 where the device computes it natively (a CUDA GPU that supports it, a
    # CPU with AMX/AVX512-BF16), else fp32
    # "native" lifts the AVX2 cap for the tune and train stages (they restart themselves
    # without it: the cap must be in place before the numeric libraries load), so bf16 can
    # run on the CPU's own units; the default keeps every stage's bytes machine-independent.
    isa: str = "avx2"
    device: str = "cpu"
    # Logit adjustment (Menon et al. 2021): the training loss sees logits + tau * log(class
    # prior), which optimises balanced error (UAR) on imbalanced data; 0 = plain CE.
    logit_adjust: float = 0.0
    # The decision rule (components/models/prior.py): predictions, validation during training
    # and the saved model use logits + prior_weight * log(class prior of the training labels).
    # With logit_adjust tau, prior_weight = tau gives back the training distribution's
    # posterior (accuracy's rule) on the same weights; 0 keeps the balanced rule (UAR's).
    prior_weight: float = 0.0
    # Validate, keep and save an exponential moving average of the weights instead of the
    # last step's (components/training/averaging.py): per-step decay, 0 = off. 0.999 at
    # about 900 steps an epoch averages over roughly the last epoch.
    ema_decay: float = 0.0
    # Mixup (Zhang et al. 2018): each training batch is blended with a shuffled copy of
    # itself at a Beta(alpha, alpha) weight and the loss blends both labels alike; 0 = off.
    # Not with EC-STFL, whose loss is defined on the batch's unblended classes.
    mixup_alpha: float = 0.0
    # Time budget of one fit in minutes: the epoch count is planned from a timed probe
    # (at most ``epochs``), the schedule fitted to it, and training stops cleanly when the
    # next epoch would overrun. Depends on the machine: not byte-reproducible. null = off.
    budget_minutes: float | None = None
    # How many members of a seed ensemble (model option ``members``) train at once, each in
    # a process of its own with an equal share of the threads; 1 = one after another. On a
    # CPU whose cores scale poorly over one network, two one-thread processes trained more
    # images/s together than one two-thread process (benchmarks/results/member_processes.md).
    member_processes: int = 1
    patience: int = 4
    monitor: str = "val_uar"
    restore_best: bool = True  # test with the weights of the best monitored epoch
    channels_last: bool = True
    ecstfl_lambda: float = 0.1
    classes_per_batch: int = 4
    use_tuned: bool = True
    progress: bool = True
    eval_batch_size: int = 0  # 0 = 2 x batch_size
    task: str | None = None  # force a preprocess task folder instead of picking by inputs
    overrides: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    track: bool = True  # log the final run and model to MLflow

    def __post_init__(self) -> None:
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("monitor", self.monitor, tuple(MONITORS))
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("isa", self.isa, ISAS)
        _check_choice("device", self.device, DEVICES)
        for name in ("epochs", "batch_size", "member_processes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}: must be >= 1, got {getattr(self, name)}")
        if self.schedule_epochs and self.schedule_epochs < self.epochs:
            raise ConfigError(f"train.schedule_epochs: {self.schedule_epochs} is shorter than "
                              f"the {self.epochs} epochs run (0 = the epochs run)")
        if (self.patience < 0 or self.shift < 0 or self.tta_shift < 0 or self.crop < 0
                or self.classes_per_batch < 1):
            raise ConfigError("train: patience, shift, tta_shift and crop must be >= 0, "
                              "classes_per_batch >= 1")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(
                f"train.label_smoothing: must be in [0, 1), got {self.label_smoothing}"
            )
        if not (0.0 <= self.rotate <= 180.0 and 0.0 <= self.scale < 1.0
                and 0.0 <= self.erase_p <= 1.0):
            raise ConfigError(
                "train: rotate must be in [0, 180] degrees, scale in [0, 1), erase_p in [0, 1]"
                f" (got {self.rotate}, {self.scale}, {self.erase_p})"
            )
        if self.logit_adjust < 0:
            raise ConfigError(f"train.logit_adjust: must be >= 0, got {self.logit_adjust}")
        if not math.isfinite(self.prior_weight):
            raise ConfigError(f"train.prior_weight: must be a finite number, got "
                              f"{self.prior_weight}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay: must be in [0, 1) (0 = off), got {self.ema_decay}")
        if self.mixup_alpha < 0:
            raise ConfigError(f"train.mixup_alpha: must be >= 0 (0 = off), got {self.mixup_alpha}")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            raise ConfigError(
                f"train.budget_minutes: must be > 0 or null, got {self.budget_minutes}"
            )
        if self.lr <= 0:
            raise ConfigError(f"train.lr: must be > 0, got {self.lr}")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"train.{key}: {value!r} is not one of {list(choices)}")


TRAIN_KEYS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def load_tuned(path: Path) -> dict[str, Any]:
    """Read a tuner's ``chosen_params.json``; a ``params`` sub-mapping is unwrapped.

    Raises:
        ConfigError: the file is not a JSON mapping.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read tuned params ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("params"), dict):
        data = data["params"]
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON mapping of parameter -> value")
    return data


def resolve_config(
    values: dict[str, Any], arch: str, tuned_path: Path | None = None
) -> tuple[TrainConfig, dict[str, Any]]:
    """Build the settings for one architecture.

    Args:
        values: the ``train`` section of params.yaml.
        arch: architecture name (selects ``overrides[arch]`` and ``model_kwargs[arch]``).
        tuned_path: ``artifacts/tune/<arch>/chosen_params.json``; merged when it exists and
            ``use_tuned`` is true.

    Returns:
        ``(config, extra)``: trainer settings, and the remaining keys for the model or
        estimator (``model_kwargs[arch]`` overlaid with non-trainer override/tuned keys).

    Raises:
        ConfigError: an unknown or ill-typed key in the section; ``prior_weight`` set for
            an estimator.
    """
    base = build_config(TrainConfig, dict(values), where="train")
    overrides = base.overrides.get(arch) or {}
    model_kwargs = base.model_kwargs.get(arch) or {}
    if not isinstance(overrides, dict) or not isinstance(model_kwargs, dict):
        raise ConfigError(f"train.overrides/model_kwargs.{arch}: expected a mapping")
    merged = {k: v for k, v in values.items() if k not in ("overrides", "model_kwargs")}
    extra = dict(model_kwargs)
    layers = [overrides]
    use_tuned = overrides.get("use_tuned", base.use_tuned)
    if tuned_path is not None and tuned_path.exists() and use_tuned:
        layers.append(load_tuned(tuned_path))
    for layer in layers:
        for key, value in layer.items():
            if key in TRAIN_KEYS:
                merged[key] = value
            else:
                extra[key] = value
    config = build_config(TrainConfig, merged, where=f"train[{arch}]")
    if config.prior_weight:
        # here, where tuning and training both read the settings: an estimator is refused
        # before a study is spent on it
        from components.models.registry import refuse_prior

        refuse_prior(arch)
    return config, extra
