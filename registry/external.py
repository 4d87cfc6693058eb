"""External test results on a registered version: tags and a line in its model card.

``ferops evaluate --model models:/... --log`` scores a version on a labelled set it never
saw; the scores are kept as ``external.<set>.<metric>`` tags and listed in the version's
card, next to its own test scores. The gate reads only ``test_*`` metrics, so external
results inform reviewers and never move an alias.
"""

from __future__ import annotations

import re

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.errors import DataError
from registry.card import store_card

EXTERNAL_PREFIX = "external."
CARD_SECTION = "## External tests"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


def resolve_version(client: MlflowClient, uri: str) -> tuple[str, str]:
    """``(registered model, version)`` of ``models:/name/N`` or ``models:/name@alias``.

    Raises:
        DataError: not a registry URI, or no such version or alias.
    """
    found = _URI.match(uri)
    if found is None:
        raise DataError(f"{uri}: --log needs a registered version (models:/<name>/<version> "
                        "or models:/<name>@<alias>)")
    name = found["name"]
    try:
        if found["alias"]:
            return name, str(client.get_model_version_by_alias(name, found["alias"]).version)
        return name, str(client.get_model_version(name, found["version"]).version)
    except MlflowException as exc:
        raise DataError(f"{uri}: not in the registry ({str(exc).splitlines()[0]})") from exc


def log_external(client: MlflowClient, uri: str, set_name: str,
                 scores: dict[str, float], n_scored: int) -> tuple[str, str]:
    """Tag the version behind ``uri`` with its scores on ``set_name`` and add them to its
    card. Returns ``(registered model, version)``.

    Raises:
        DataError: as :func:`resolve_version`, or a set name with characters tags refuse.
    """
    if not re.fullmatch(r"[\w.-]+", set_name):
        raise DataError(f"--name {set_name!r}: use letters, digits, '.', '-' and '_'")
    name, version = resolve_version(client, uri)
    for metric, value in scores.items():
        client.set_model_version_tag(name, version, f"{EXTERNAL_PREFIX}{set_name}.{metric}",
                                     repr(float(value)))
    client.set_model_version_tag(name, version, f"{EXTERNAL_PREFIX}{set_name}.n",
                                 str(n_scored))
    card = client.get_model_version(name, version).description or ""
    line = (f"- `{set_name}` ({n_scored} photos): "
            + ", ".join(f"{metric} {value:.4f}" for metric, value in scores.items()))
    store_card(client, name, version, _with_line(card, set_name, line))
    return name, version


def _with_line(card: str, set_name: str, line: str) -> str:
    """The card with the set's line in its external-tests section (replacing an old one)."""
    if CARD_SECTION not in card:
        return f"{card.rstrip()}\n\n{CARD_SECTION}\n{line}\n"
    head, tail = card.split(CARD_SECTION, 1)
    kept = [row for row in tail.strip("\n").splitlines()
            if row and not row.startswith(f"- `{set_name}` ")]
    return f"{head}{CARD_SECTION}\n" + "\n".join([*kept, line]) + "\n"
