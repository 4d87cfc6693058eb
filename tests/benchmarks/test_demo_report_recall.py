"""demo.md's per-class recall: counted from the evaluate stage's predictions files."""

from __future__ import annotations

import json

from benchmarks.demo_report import class_recall, recall_lines


def _write(folder, arch, pairs):
    rows = [{"actual": a, "predicted": p} for a, p in pairs]
    (folder / f"{arch}.json").write_text(json.dumps(rows))


def test_recall_per_class_and_missing_files_left_out(tmp_path):
    _write(tmp_path, "baseline_cnn", [("anger", "anger"), ("anger", "fear"), ("fear", "fear")])
    recall = class_recall(tmp_path, ["baseline_cnn", "absent"])
    assert recall == {"baseline_cnn": {"anger": 0.5, "fear": 1.0}}


def test_one_table_per_class_set_rows_in_the_given_order(tmp_path):
    _write(tmp_path, "b", [("anger", "fear"), ("fear", "fear")])
    _write(tmp_path, "a", [("anger", "anger"), ("fear", "anger")])
    _write(tmp_path, "clip", [("happiness", "happiness")])
    lines = recall_lines(class_recall(tmp_path, ["b", "a", "clip"]))
    assert lines.count("| architecture | anger | fear |") == 1
    assert lines.index("| b | 0.000 | 1.000 |") < lines.index("| a | 1.000 | 0.000 |")
    assert "| architecture | happiness |" in lines and "| clip | 1.000 |" in lines


def test_no_predictions_no_section(tmp_path):
    assert recall_lines(class_recall(tmp_path, ["baseline_cnn"])) == []
