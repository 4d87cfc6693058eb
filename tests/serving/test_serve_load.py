"""A small run of ``benchmarks/serve_load.py`` against a real ``mlflow models serve``: valid
requests sequential and concurrent, the bad-payload battery, and the server still answering."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.serve_load import bomb_png, run_load
from components.data.io import check_header
from components.errors import DataError


def test_the_bomb_is_refused_from_its_header_alone() -> None:
    """The battery's decompression bomb is a 30000x30000 PNG header over a few rows of data."""
    data = np.frombuffer(bomb_png(), np.uint8)
    assert data.size < 10_000
    with pytest.raises(DataError, match="decompression bomb"):
        check_header(data, "bomb.png", 4096)


def test_served_model_under_load_and_abuse_keeps_answering(trained, monkeypatch) -> None:
    """Two server workers (``--workers 2``), three concurrent clients, the whole battery."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.uri)
    result = run_load(trained.serving_uri("fusion_twostream"),
                      {"MLFLOW_TRACKING_URI": trained.uri}, requests=6, clients=3, body_mb=8,
                      workers=2)
    assert result["workers"] == 2
    assert [row["ok"] for row in result["load"]] == [6, 6, 6]
    statuses = {row["payload"]: row["status"] for row in result["battery"]}
    assert all(400 <= status < 500 for status in statuses.values()), result["battery"]
    assert all(row["message"] for row in result["battery"]), result["battery"]
    checks = result["checks"]
    assert checks["no 5xx for bad input"] and checks["every bad request 4xx with a message"]
    assert checks["existing and missing paths answered alike"], result["battery"]
    assert checks["still answering after the battery"]
    assert result["rss_before_mb"] > 0 and result["rss_after_mb"] > 0
