"""One PostgreSQL server for the shared-store tests (each test makes its own databases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stores.postgres import Postgres, running_postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as server:
        yield server
