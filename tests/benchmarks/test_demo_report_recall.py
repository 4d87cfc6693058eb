"""demo.md's per-class recall: read from the train stage's per_class.json files."""

from __future__ import annotations

import json

from benchmarks.demo_report import class_recall, recall_lines


def _write(train_dir, arch, recall):
    folder = train_dir / arch
    folder.mkdir(parents=True)
    splits = {"test": {"per_class_recall": recall}, "test_occ10": {"per_class_recall": {}}}
    (folder / "per_class.json").write_text(json.dumps({"classes": list(recall),
                                                       "splits": splits}))


def test_recall_is_the_clean_test_split_and_missing_files_left_out(tmp_path):
    _write(tmp_path, "baseline_cnn", {"anger": 0.5, "fear": 1.0})
    recall = class_recall(tmp_path, ["baseline_cnn", "absent"])
    assert recall == {"baseline_cnn": {"anger": 0.5, "fear": 1.0}}


def test_one_table_per_class_set_rows_in_the_given_order(tmp_path):
    _write(tmp_path, "b", {"anger": 0.0, "fear": 1.0})
    _write(tmp_path, "a", {"anger": 1.0, "fear": None})
    _write(tmp_path, "clip", {"happiness": 1.0})
    lines = recall_lines(class_recall(tmp_path, ["b", "a", "clip"]))
    assert lines.count("| architecture | anger | fear |") == 1
    assert lines.index("| b | 0.000 | 1.000 |") < lines.index("| a | 1.000 | n/a |")
    assert "| architecture | happiness |" in lines and "| clip | 1.000 |" in lines


def test_no_reports_no_section(tmp_path):
    assert recall_lines(class_recall(tmp_path, ["baseline_cnn"])) == []
