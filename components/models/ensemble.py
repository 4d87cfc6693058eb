"""Several networks of one architecture, trained apart from different seeds, as one model.

Networks trained from different initialisations, batch orders and augmentation draws make
partly independent errors, so the mean of their logits is more accurate than any one of
them: a way to spend a fixed training budget on accuracy when one network of the width the
machine can afford has stopped gaining from more epochs. The trainer fits each member on its
own (:meth:`components.training.loop.TrainerLoop.fit_network`, the budget shared between
them); everything downstream (test-time views, the registry, serving, ONNX) sees one
network whose forward is the mean of the members' logits.

A plain network is made an ensemble by the model option ``members`` (e.g.
``train.overrides.baseline_cnn.members: 2``); estimators, which fit networks of their own,
take no ``members``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from components.errors import ConfigError
from components.models.contract import logits_of

MEMBERS_KEY = "members"  # the model option (params.yaml, the saved spec's model_kwargs)


class SeedEnsemble(nn.Module):
    """Networks of one architecture whose forward is the mean of their logits.

    Args:
        members: two or more networks returning logits (or ``(logits, ...)``) of one width.

    Raises:
        ValueError: fewer than two members.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the members' logits, shape (N, num_classes)."""
        total = logits_of(self.members[0](x))
        for member in self.members[1:]:
            total = total + logits_of(member(x))
        return total / len(self.members)


def member_count(kwargs: dict[str, object], name: str) -> int:
    """The ``members`` option of a model's kwargs (1 when absent), checked.

    Raises:
        ConfigError: not a whole number >= 1.
    """
    value = kwargs.get(MEMBERS_KEY, 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model {name}: {MEMBERS_KEY} must be a whole number >= 1 (1: one "
                          f"network), got {value!r}")
    return value


def build_members(build: Callable[[], object], count: int, name: str) -> object:
    """``build()`` once, or ``count`` times wrapped in a :class:`SeedEnsemble`.

    The members are built one after another from the global generator, so each starts from
    its own initialisation and the whole is fixed by the seed set before the call.

    Raises:
        ConfigError: ``count`` > 1 for a model that is not one network (an estimator).
    """
    first = build()
    if count == 1:
        return first
    if not isinstance(first, nn.Module):
        raise ConfigError(f"model {name}: {MEMBERS_KEY} is for plain networks; {name} fits "
                          "networks of its own (drop the option)")
    return SeedEnsemble([first, *(build() for _ in range(count - 1))])
