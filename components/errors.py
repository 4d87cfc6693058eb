"""Project exceptions.

Every error a user can cause (bad path, corrupt image, unknown label, missing depth map,
bad params) is raised as a :class:`FeropsError` whose message is one actionable line. The CLI
prints that line without a traceback and exits non-zero, so users see what to fix, not where
the code broke.
"""

from __future__ import annotations


class FeropsError(Exception):
    """Base class for errors a user can cause; the message is one line naming the culprit."""

    exit_code = 1


class ConfigError(FeropsError):
    """A params.yaml key or CLI option has a missing or invalid value."""


class DataError(FeropsError):
    """An input path, file or record cannot be read or does not fit the expected layout."""


class ValidationFailed(FeropsError):
    """The validation stage found hard errors; the report names them."""


def one_line(message: str) -> str:
    """Collapse a message onto a single line so CLI errors never wrap into pseudo-tracebacks."""
    return " ".join(str(message).split())
