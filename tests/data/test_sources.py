"""Every source, the FER+ join, the alias table, the split rules, and bad input."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from components.data.io import read_image, write_image
from components.data.labels import CANONICAL_LABELS, canonical_label
from components.data.sources import IngestConfig, ingest
from components.data.sources.fer2013 import ferplus_majority, load_fer2013
from components.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def _face(seed: int, size: int = 24, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (size, size, channels) if channels > 1 else (size, size)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _fer_csv(path: Path, rows: list[tuple[str, str, str]], gz: bool = False) -> Path:
    text = "emotion,pixels,Usage\n" + "".join(f"{e},{p},{u}\n" for e, p, u in rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _pixels(seed: int) -> str:
    return " ".join(map(str, _face(seed, 48, 1).ravel()))


# --- alias table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [("angry", "anger"), ("Happy", "happiness"), ("joy", "happiness"), ("nature", "neutral"),
     ("sad", "sadness"), (" Surprised ", "surprise"), ("contempt", "contempt")],
)
def test_alias_table_maps_to_canonical(alias: str, canonical: str) -> None:
    assert canonical_label(alias) == canonical


def test_unknown_label_names_the_label() -> None:
    with pytest.raises(DataError, match="'bored'"):
        canonical_label("bored")


# --- fer2013 ------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_fer2013_keeps_its_split_and_maps_codes(tmp_path: Path, gz: bool) -> None:
    rows = [("0", _pixels(1), "Training"), ("3", _pixels(2), "PublicTest"),
            ("6", _pixels(3), "PrivateTest")]
    csv = _fer_csv(tmp_path / ("f.csv.gz" if gz else "f.csv"), rows, gz=gz)
    manifest = load_fer2013(csv, tmp_path / "store")
    assert manifest["split"].tolist() == ["train", "val", "test"]
    assert manifest["label"].tolist() == ["anger", "happiness", "neutral"]
    pixels = read_image(manifest["color"].iloc[1])
    assert pixels.shape == (48, 48)
    assert " ".join(map(str, pixels.ravel())) == rows[1][1]


def test_fer2013_wrong_pixel_count_names_the_line(tmp_path: Path) -> None:
    csv = _fer_csv(tmp_path / "f.csv", [("0", _pixels(1), "Training"),
                                         ("1", "1 2 3", "Training")])
    with pytest.raises(DataError, match=r"f\.csv:3: 3 pixel values, expected 2304"):
        load_fer2013(csv, tmp_path / "store")


def test_fer2013_non_integer_label_names_the_line(tmp_path: Path) -> None:
    csv = _fer_csv(tmp_path / "f.csv", [("happy", _pixels(1), "Training")])
    with pytest.raises(DataError, match=r"f\.csv:2: emotion 'happy' is not an integer"):
        load_fer2013(csv, tmp_path / "store")


def test_fer2013_non_integer_pixel_names_the_line(tmp_path: Path) -> None:
    bad = _pixels(1).split()
    bad[5] = "x7"
    csv = _fer_csv(tmp_path / "f.csv", [("2", " ".join(bad), "Training")])
    with pytest.raises(DataError, match=r"f\.csv:2: pixel value 'x7'"):
        load_fer2013(csv, tmp_path / "store")


def test_ferplus_majority_drops_unknown_and_ties() -> None:
    columns = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
               "contempt", "unknown", "NF"]
    votes = pd.DataFrame(
        [[8, 1, 1, 0, 0, 0, 0, 0, 0, 0],   # clear neutral (single votes dropped)
         [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face
         [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],   # tie: no majority
         [0, 0, 0, 0, 0, 0, 0, 7, 3, 0]],  # contempt
        columns=columns,
    )
    assert ferplus_majority(votes).tolist() == ["neutral", None, None, "contempt"]


def test_ferplus_join_by_row_order(tmp_path: Path) -> None:
    csv = _fer_csv(tmp_path / "f.csv", [("0", _pixels(1), "Training"),
                                         ("0", _pixels(2), "Training")])
    header = ("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,"
              "unknown,NF")
    (tmp_path / "new.csv").write_text(
        f"{header}\nTraining,fer0.png,0,9,1,0,0,0,0,0,0,0\nTraining,,0,0,0,0,0,0,0,0,0,10\n"
    )
    manifest = load_fer2013(csv, tmp_path / "store", ferplus=tmp_path / "new.csv")
    assert manifest["label"].tolist() == ["happiness"]
    assert manifest["votes_happiness"].iloc[0] == pytest.approx(0.9)


def test_ferplus_row_count_mismatch(tmp_path: Path) -> None:
    csv = _fer_csv(tmp_path / "f.csv", [("0", _pixels(1), "Training")])
    (tmp_path / "new.csv").write_text("neutral,happiness\n1,2\n3,4\n")
    with pytest.raises(DataError, match="missing vote column"):
        load_fer2013(csv, tmp_path / "store", ferplus=tmp_path / "new.csv")


def test_real_fer2013_ingests_with_its_split(tmp_path: Path, fer2013_dir: Path) -> None:
    manifest = load_fer2013(fer2013_dir / "fer2013.csv.gz", tmp_path)
    assert len(manifest) == 35887
    assert manifest["split"].value_counts().to_dict() == {
        "train": 28709, "val": 3589, "test": 3589}
    assert (manifest["label"] == "disgust").sum() == 440 + 56 + 55


# --- image folders ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif", ".webp"])
def test_image_folder_reads_common_formats(tmp_path: Path, suffix: str) -> None:
    for label in ("happy", "sad"):
        for i in range(2):
            write_image(tmp_path / "root" / label / f"img{i}{suffix}", _face(i + len(label)))
    manifest = ingest(IngestConfig(source="image_folder", path=str(tmp_path / "root")), tmp_path)
    assert sorted(manifest["label"].unique()) == ["happiness", "sadness"]
    assert (manifest["width"] == 24).all()


def test_image_folder_palette_tiff(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "root" / "angry"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(_face(i)).convert("P").save(folder / f"p{i}.tif")
    manifest = ingest(IngestConfig(source="image_folder", path=str(tmp_path / "root")), tmp_path)
    assert len(manifest) == 3
    assert read_image(manifest["color"].iloc[0]).shape == (24, 24, 3)


def test_image_folder_with_split_folders_keeps_them(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for label in ("fear", "joy"):
            write_image(tmp_path / "r" / split / label / "a.png", _face(hash((split, label)) % 99))
    manifest = ingest(IngestConfig(source="image_folder", path=str(tmp_path / "r")), tmp_path)
    assert set(manifest["split"]) == {"train", "test"}


def test_stratified_split_without_subjects(tmp_path: Path) -> None:
    for label in ("anger", "happiness"):
        for i in range(20):
            write_image(tmp_path / "r" / label / f"{i}.png", _face(i * 7 + len(label)))
    cfg = IngestConfig(source="image_folder", path=str(tmp_path / "r"), split_seed=3)
    manifest = ingest(cfg, tmp_path)
    counts = manifest.groupby(["label", "split"]).size().unstack()
    assert counts.loc["anger"].to_dict() == counts.loc["happiness"].to_dict() == {
        "test": 3, "train": 14, "val": 3}
    again = ingest(cfg, tmp_path)
    assert manifest["split"].tolist() == again["split"].tolist()


# --- RGB-D folders ------------------------------------------------------------------------


def _rgbd(root: Path, n_subjects: int = 6, with_2d: bool = True) -> Path:
    root.mkdir(parents=True)
    lines = ["id,label,subject,lx,ly,rx,ry,yaw"]
    for s in range(n_subjects):
        for label in ("happy", "sad"):
            sample = f"s{s}_{label}"
            write_image(root / f"{sample}_color.png", _face(s * 3 + len(label)))
            depth = (RNG.integers(500, 900, size=(24, 24))).astype(np.uint16)
            write_image(root / f"{sample}_depth.png", depth)
            if with_2d:
                write_image(root / f"{sample}_2d.png", _face(s * 5 + len(label)))
            lines.append(f"{sample},{label},s{s},7,9,17,9,{s * 5}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_rgbd_folder_manifest(tmp_path: Path) -> None:
    root = _rgbd(tmp_path / "rgbd")
    manifest = ingest(IngestConfig(source="rgbd_folder", path=str(root)), tmp_path)
    assert manifest["depth"].notna().all() and manifest["color2d"].notna().all()
    assert read_image(manifest["depth"].iloc[0], depth=True).dtype == np.uint16
    assert "yaw" in manifest
    assert '"color": [[7.0, 9.0, 17.0, 9.0]]' in manifest["landmarks"].iloc[0]


def test_subject_disjoint_split(tmp_path: Path) -> None:
    root = _rgbd(tmp_path / "rgbd", n_subjects=10)
    manifest = ingest(IngestConfig(source="rgbd_folder", path=str(root)), tmp_path)
    per_subject = manifest.groupby("subject")["split"].nunique()
    assert (per_subject == 1).all()
    assert set(manifest["split"]) == {"train", "val", "test"}


def test_rgbd_missing_depth_names_the_file(tmp_path: Path) -> None:
    root = _rgbd(tmp_path / "rgbd")
    (root / "s1_sad_depth.png").unlink()
    with pytest.raises(DataError, match=r"s1_sad_depth\.png: depth map of RGB-D sample"):
        ingest(IngestConfig(source="rgbd_folder", path=str(root)), tmp_path)


def test_rgbd_8bit_depth_is_rejected(tmp_path: Path) -> None:
    root = _rgbd(tmp_path / "rgbd")
    write_image(root / "s0_happy_depth.png", np.zeros((24, 24), np.uint8))
    with pytest.raises(DataError, match="depth must be 16-bit or float"):
        ingest(IngestConfig(source="rgbd_folder", path=str(root)), tmp_path)


# --- clips --------------------------------------------------------------------------------


def _video(path: Path, n_frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    for i in range(n_frames):
        writer.write(np.full((32, 32, 3), i * 20, np.uint8))
    writer.release()


def test_clips_from_frame_folders_and_videos(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    for i in range(5):
        write_image(root / "happy" / "c0" / f"{i:03d}.png", _face(i))
    _video(root / "surprise" / "v0.avi", 6)
    manifest = ingest(IngestConfig(source="clips", path=str(root)), tmp_path)
    by_label = manifest.set_index("label")["n_frames"].to_dict()
    assert by_label == {"happiness": 5, "surprise": 6}


def test_clips_with_labels_csv_and_landmarks(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    for i in range(4):
        write_image(root / "a" / f"f{i}.png", _face(i))
    (root / "a" / "landmarks.csv").write_text(
        "frame,lx,ly,rx,ry\n" + "".join(f"{i},5,6,15,6\n" for i in range(4)))
    (root / "labels.csv").write_text("clip,label,subject\na,fear,s1\n")
    manifest = ingest(IngestConfig(source="clips", path=str(root),
                                   split_fractions={"train": 1.0}), tmp_path)
    assert manifest["label"].iloc[0] == "fear"
    assert manifest["landmarks"].iloc[0].count("[5.0, 6.0, 15.0, 6.0]") == 4


def test_unreadable_video_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    (root / "happy").mkdir(parents=True)
    (root / "happy" / "broken.mp4").write_bytes(b"not a video at all")
    with pytest.raises(DataError, match=r"broken\.mp4: unreadable video"):
        ingest(IngestConfig(source="clips", path=str(root)), tmp_path)


# --- bad input ----------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere: path not found"):
        ingest(IngestConfig(source="image_folder", path=str(tmp_path / "nowhere")), tmp_path)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="folder is empty"):
        ingest(IngestConfig(source="image_folder", path=str(tmp_path / "empty")), tmp_path)


def test_unknown_class_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "r" / "bored" / "a.png", _face(1))
    with pytest.raises(DataError, match=r"bored: unknown expression label 'bored'"):
        ingest(IngestConfig(source="image_folder", path=str(tmp_path / "r")), tmp_path)


def test_truncated_image(tmp_path: Path) -> None:
    path = write_image(tmp_path / "r" / "happy" / "a.png", _face(1))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=r"a\.png: not a decodable image"):
        ingest(IngestConfig(source="image_folder", path=str(tmp_path / "r")), tmp_path)


def test_stray_non_image_file(tmp_path: Path) -> None:
    write_image(tmp_path / "r" / "happy" / "a.png", _face(1))
    (tmp_path / "r" / "happy" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt: not an image file"):
        ingest(IngestConfig(source="image_folder", path=str(tmp_path / "r")), tmp_path)


def test_bad_params_fail_with_key() -> None:
    with pytest.raises(ConfigError, match="ingest.source"):
        IngestConfig(source="kinect")
    with pytest.raises(ConfigError, match="split_fractions"):
        IngestConfig(split_fractions={"train": 0.5, "val": 0.1})


def test_cli_error_is_one_line_and_data_untouched(tmp_path: Path) -> None:
    root = tmp_path / "data" / "r"
    write_image(root / "happy" / "a.png", _face(1))
    (root / "happy" / "b.png").write_bytes(b"\x89PNG broken")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    params = tmp_path / "params.yaml"
    params.write_text(f"ingest:\n  source: image_folder\n  path: {root}\n")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.ingest", "--params", str(params),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "b.png: not a decodable image" in result.stderr
    assert "Traceback" not in result.stderr
    assert before == {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_every_canonical_label_has_itself_as_alias() -> None:
    assert all(canonical_label(name) == name for name in CANONICAL_LABELS)


def test_ingest_summary_names_the_raw_data_version(tmp_path: Path) -> None:
    """Training's lineage reads data.dvc's md5 from ingest's summary (a declared dependency
    of the train stages), so the summary must carry it, and None when data is untracked."""
    from components.data.version import ingested_data_md5
    from pipelines.ingest import run_ingest

    root = _rgbd(tmp_path / "rgbd")
    dvc_file = tmp_path / "data.dvc"
    dvc_file.write_text("outs:\n- md5: 0123abcd.dir\n  size: 10\n  nfiles: 2\n  path: data\n")
    run_ingest(IngestConfig(source="rgbd_folder", path=str(root)), tmp_path / "a", dvc_file)
    assert ingested_data_md5(tmp_path / "a") == "0123abcd.dir"
    run_ingest(IngestConfig(source="rgbd_folder", path=str(root)), tmp_path / "b",
               tmp_path / "absent.dvc")
    assert ingested_data_md5(tmp_path / "b") is None
    (tmp_path / "b" / "summary.json").write_text("{not json")
    with pytest.raises(DataError, match="ingest summary"):
        ingested_data_md5(tmp_path / "b")
