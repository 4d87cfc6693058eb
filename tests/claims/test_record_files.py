"""The claims report's committed JSON files (records, costs, claims/inputs.json) are read by
one function: a missing file is None, a broken one a clear error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.claims.record import read_json
from components.errors import DataError


def test_a_missing_file_reads_as_none(tmp_path: Path) -> None:
    assert read_json(tmp_path / "absent.json") is None


def test_an_object_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "inputs.json"
    path.write_text('{"arm-a-s0": ["components/models"]}', encoding="utf-8")
    assert read_json(path) == {"arm-a-s0": ["components/models"]}


@pytest.mark.parametrize(("text", "says"), [
    ('{"arm-a-s0": ["components/models"', "not valid JSON"),
    ('["components/models"]', "expected a JSON object, found list")])
def test_a_broken_file_names_itself(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "inputs.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=says) as caught:
        read_json(path)
    assert str(path) in str(caught.value)
