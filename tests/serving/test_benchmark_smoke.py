"""The latency benchmark runs end to end on a trained model and prints every row."""

from __future__ import annotations

import pytest

from benchmarks.predict_latency import run


@pytest.mark.slow
def test_benchmark_table_has_every_runtime_batch_and_ratio(trained):
    ws = trained.workspace
    table = run(str(ws.out("baseline_cnn")), repeats=2, threads=1, data=ws.data, params={})
    assert len(table) == 16
    assert set(table["runtime"]) == {"torch", "onnx"}
    assert set(table["what"]) == {"model", "photo", "folder"}
    assert set(table.query("what != 'folder'")["batch"]) == {1, 64}
    assert set(table.query("what != 'model'")["format"]) == {"jpeg", "png"}
    assert (table["ms_per_face"] > 0).all()
    assert (table.query("what == 'folder'")["target_ms"] == 10.0).all()
    base = table.query("runtime == 'torch' and batch == 1")
    assert (base["vs_torch"] == 1.0).all()
