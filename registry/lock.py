"""A promotion mutex that works on every MLflow backend (sqlite, SQL server, REST).

MLflow has no lock primitive and alias updates are separate calls, so two promotions could
interleave and leave ``champion`` and ``previous-champion`` pointing at the same version.
Creating a registered model is atomic everywhere (a unique name; the loser gets
RESOURCE_ALREADY_EXISTS), so the lock is a registered model ``<model>.promotion-lock``: held
while it exists, released by deleting it. A holder that died leaves it behind; it is broken
at once when its process (on this machine) is gone, else once older than the policy's TTL.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from types import TracebackType

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.errors import FeropsError
from components.tracking.store import process_alive

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".promotion-lock"
OWNER_TAG = "ferops.lock_owner"
ALREADY_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")
STALE_MARGIN_S = 2.0  # clock skew between client and server, plus a few polls


class LockBusy(FeropsError):
    """Another promotion held the lock for longer than this one was willing to wait."""


def lock_name(model_name: str) -> str:
    """The registered-model name that serves as ``model_name``'s promotion lock."""
    return f"{model_name}{LOCK_SUFFIX}"


def is_lock(name: str) -> bool:
    """True for lock entries, which listings of registered models should hide."""
    return name.endswith(LOCK_SUFFIX)


def owner_is_dead(owner: str) -> bool:
    """True when a lock owner (``host:pid:token``) ran on this machine and its process is
    gone: a killed promotion's lock is then broken at once instead of after the TTL."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not process_alive(int(pid))


def held_lock(client: MlflowClient, model_name: str) -> tuple[str, float] | None:
    """``(owner, age in seconds)`` of ``model_name``'s promotion lock, or None if free."""
    try:
        held = client.get_registered_model(lock_name(model_name))
    except MlflowException:
        return None
    age_s = time.time() - (held.creation_timestamp or 0) / 1000.0
    return held.tags.get(OWNER_TAG, "unknown"), age_s


class PromotionLock:
    """Context manager holding ``<model>.promotion-lock`` for one promotion or rollback."""

    def __init__(self, client: MlflowClient, model_name: str, *, ttl_s: float,
                 wait_s: float | None = None, poll_s: float = 0.25) -> None:
        self.client = client
        self.name = lock_name(model_name)
        self.ttl_s = ttl_s
        # Past the TTL a held lock counts as stale, so waiting a little longer always ends
        # with the lock (taken or broken) unless a live holder keeps renewing it.
        self.wait_s = ttl_s + STALE_MARGIN_S if wait_s is None else wait_s
        self.poll_s = poll_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.waited_s = 0.0

    def __enter__(self) -> PromotionLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        """Create the lock entry, waiting while a live holder has it.

        Raises:
            LockBusy: the lock stayed held (and fresh) for ``wait_s`` seconds.
            MlflowException: the store failed for another reason.
        """
        start = time.monotonic()
        announced = False
        while True:
            try:
                self.client.create_registered_model(
                    self.name, tags={OWNER_TAG: self.owner},
                    description="ferops promotion in progress; deleted when it ends",
                )
                self.waited_s = time.monotonic() - start
                return
            except MlflowException as exc:
                # RESOURCE_DOES_NOT_EXIST: the holder deleted the lock while the store was
                # answering our create (a race the server reports as "not found"): retry.
                if exc.error_code not in (*ALREADY_EXISTS, "RESOURCE_DOES_NOT_EXIST"):
                    raise
            if not announced:
                log.info("%s is held by another promotion; waiting up to %.0f s", self.name,
                         self.wait_s)
                announced = True
            self._break_if_stale()
            if time.monotonic() - start > self.wait_s:
                raise LockBusy(f"{self.name}: another promotion holds the lock "
                               f"(waited {self.wait_s:.0f} s); retry later")
            time.sleep(self.poll_s)

    def release(self) -> None:
        """Delete the lock entry if this holder still owns it (a stale break may have
        handed it to someone else, whose lock must survive)."""
        try:
            held = self.client.get_registered_model(self.name)
        except MlflowException:
            return
        if held.tags.get(OWNER_TAG) == self.owner:
            self._delete()

    def _break_if_stale(self) -> None:
        try:
            held = self.client.get_registered_model(self.name)
        except MlflowException:
            return  # released between our create and this read: retry at once
        age_s = time.time() - (held.creation_timestamp or 0) / 1000.0
        owner = held.tags.get(OWNER_TAG, "")
        if age_s <= self.ttl_s and not owner_is_dead(owner):
            return
        # Re-read right before deleting so a lock re-created meanwhile is left alone.
        try:
            current = self.client.get_registered_model(self.name)
        except MlflowException:
            return
        if current.tags.get(OWNER_TAG) == held.tags.get(OWNER_TAG):
            log.warning("%s: breaking a stale lock of %s (%.0f s old%s)", self.name,
                        owner or "unknown", age_s,
                        ", its process is gone" if owner_is_dead(owner) else "")
            self._delete()

    def _delete(self) -> None:
        try:
            self.client.delete_registered_model(self.name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
