"""Flat folders labelled by a table or by file names (RAF-DB, AffectNet, KDEF layouts)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from components.data.sources import IngestConfig, ingest
from components.data.sources.labelled_folder import LabelSource, scan_labelled_folder
from components.errors import ConfigError, DataError

RAF_CODES = {1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness",
             6: "anger", 7: "neutral"}


def face(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    cv2.imwrite(str(path), pixels)


def test_a_headed_csv_gives_labels_splits_subjects_and_counts_what_it_leaves_out(
    tmp_path: Path,
) -> None:
    for i, name in enumerate(["a.png", "b.png", "c.png", "stray.png"]):
        face(tmp_path / name, i)
    (tmp_path / "labels.csv").write_text(
        "file,label,split,subject\n"
        "a.png,happy,train,s1\n"
        "b.png,ANGER,test,s2\n"
        "c.png,bored,train,s3\n"
        "gone.png,sad,train,s4\n")
    rows, left_out = scan_labelled_folder(tmp_path, LabelSource(table="labels.csv"))
    got = {Path(r["color"]).name: (r["label"], r["split"], r["subject"]) for r in rows}
    assert got == {"a.png": ("happiness", "train", "s1"), "b.png": ("anger", "test", "s2")}
    assert left_out["missing_file"] == {"count": 1, "examples": ["gone.png"]}
    assert left_out["no_label_row"]["examples"] == ["stray.png"]
    assert left_out["unknown_label"]["examples"] == ["c.png (bored)"]
    with pytest.raises(DataError, match="gone.png"):
        scan_labelled_folder(tmp_path, LabelSource(table="labels.csv", strict=True))


def test_raf_db_list_without_header_codes_and_split_prefixes(tmp_path: Path) -> None:
    names = ["train_00001.jpg", "train_00002.jpg", "test_0001.jpg"]
    for i, name in enumerate(names):
        face(tmp_path / "aligned" / name, i)
    (tmp_path / "list_patition_label.txt").write_text(
        "train_00001.jpg 5\ntrain_00002.jpg 1\ntest_0001.jpg 7\n")
    spec = LabelSource(table=str(tmp_path / "list_patition_label.txt"), codes=RAF_CODES,
                       split_prefixes={"train_": "train", "test_": "test"})
    rows, left_out = scan_labelled_folder(tmp_path / "aligned", spec)
    got = {Path(r["color"]).name: (r["label"], r["split"]) for r in rows}
    assert got == {"train_00001.jpg": ("sadness", "train"),
                   "train_00002.jpg": ("surprise", "train"), "test_0001.jpg": ("neutral", "test")}
    assert left_out == {}


def test_affectnet_style_columns_and_dropped_codes_are_counted(tmp_path: Path) -> None:
    for i, name in enumerate(["1/x.jpg", "1/y.jpg", "2/z.jpg"]):
        face(tmp_path / name, i)
    (tmp_path / "training.csv").write_text(
        "subDirectory_filePath,face_x,expression\n1/x.jpg,0,1\n1/y.jpg,0,8\n2/z.jpg,0,0\n")
    spec = LabelSource(table="training.csv", codes={0: "neutral", 1: "happiness"},
                       columns={"file": "subDirectory_filePath", "label": "expression"},
                       drop=[8, 9, 10])
    rows, left_out = scan_labelled_folder(tmp_path, spec)
    assert sorted(r["label"] for r in rows) == ["happiness", "neutral"]
    assert left_out == {"dropped_label_8": {"count": 1, "examples": ["y.jpg"]}}


def test_kdef_labels_and_subjects_come_from_the_file_names(tmp_path: Path) -> None:
    for i, name in enumerate(["AF01AFS.JPG", "AM02HAS.JPG", "BF01NES.JPG", "readme.png"]):
        face(tmp_path / name[:4] / name, i)
    spec = LabelSource(pattern=r"[AB](?P<subject>[FM]\d{2})(?P<label>AF|AN|DI|HA|NE|SA|SU)")
    rows, left_out = scan_labelled_folder(tmp_path, spec)
    got = sorted((r["subject"], r["label"]) for r in rows)
    assert got == [("F01", "fear"), ("F01", "neutral"), ("M02", "happiness")]
    assert left_out["no_label_in_name"]["count"] == 1


def test_ingest_assigns_splits_and_reports_the_left_out_rows(tmp_path: Path) -> None:
    lines = ["file,label"]
    for i in range(12):
        face(tmp_path / f"f{i}.png", i)
        lines.append(f"f{i}.png,{'happy' if i % 2 else 'sad'}")
    lines.append("missing.png,happy")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    cfg = IngestConfig(source="image_folder", path=str(tmp_path),
                       labels={"table": "labels.csv"})
    manifest = ingest(cfg, tmp_path / "store")
    assert len(manifest) == 12 and set(manifest["split"]) <= {"train", "val", "test"}
    assert manifest.attrs["left_out"]["missing_file"]["count"] == 1


def test_bad_label_sections_fail_with_the_key_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of table and pattern"):
        LabelSource()
    with pytest.raises(ConfigError, match="named group"):
        LabelSource(pattern=r"(\w+)")
    with pytest.raises(ConfigError, match="unknown role"):
        LabelSource(table="x.csv", columns={"image": "file"})
    with pytest.raises(ConfigError, match="image_folder only"):
        IngestConfig(source="rgbd_folder", path=str(tmp_path), labels={"table": "x.csv"})
