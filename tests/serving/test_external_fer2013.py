"""``ferops evaluate`` on the real FER2013 PrivateTest, exported as an image folder, gives the
accuracy the training run logged for the same model.

The model is trained by the stages themselves (ingest -> validate -> augment -> preprocess
-> train, the ``fer2013`` recipe with a short schedule) on a csv holding every PrivateTest row
and a share of Training and PublicTest. The PrivateTest rows are then written out as PNG files
in class folders, the layout a user downloads, and scored through the model's serving chain
(``--crop``: the photos are the 48x48 face crops). Same pixels, same chain: the two accuracies
agree within 0.1 %.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from components.data.io import write_image
from components.recipes import write_params
from components.tracking.store import run_record_path
from pipelines import cli
from tests.conftest import REPO_ROOT
from tests.tracking.conftest import DVC_MD5

FER2013_CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
TRAIN_ROWS, VAL_ROWS = 700, 150
AGREEMENT = 0.001


def reduced_csv(source: Path, out: Path) -> pd.DataFrame:
    """Every PrivateTest row plus the first Training and PublicTest rows, in Kaggle's format.

    Streamed line by line (the usage is each line's last field) and written with light
    compression: parsing and re-compressing the whole 35,887-row file would cost more than
    the training.
    """
    quota = {"Training": TRAIN_ROWS, "PublicTest": VAL_ROWS, "PrivateTest": None}
    private: list[str] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(source, "rt") as lines, gzip.open(out, "wt", compresslevel=1) as sink:
        sink.write(next(lines))
        for line in lines:
            usage = line.rstrip("\r\n").rsplit(",", 1)[1]
            left = quota[usage]
            if left is None:
                private.append(line)
            elif left > 0:
                quota[usage] = left - 1
            else:
                continue
            sink.write(line)
    return pd.DataFrame([line.rstrip("\r\n").split(",") for line in private],
                        columns=["emotion", "pixels", "Usage"]).astype({"emotion": int})


def export_image_folder(private: pd.DataFrame, root: Path) -> int:
    """PrivateTest as ``root/<class>/<row>.png`` (lossless grey 48x48)."""
    for row in private.itertuples():
        pixels = np.array(row.pixels.split(), dtype=np.uint8).reshape(48, 48)
        write_image(root / FER2013_CLASSES[row.emotion] / f"{row.Index:05d}.png", pixels)
    return len(private)


@pytest.mark.fer2013
def test_evaluate_on_exported_private_test_matches_the_logged_accuracy(
        fer2013_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    private = reduced_csv(fer2013_dir / "fer2013.csv.gz", tmp_path / "fer2013.csv.gz")
    Path("data.dvc").write_text(f"outs:\n- md5: {DVC_MD5}\n  path: data\n")
    params = write_params(REPO_ROOT, "fer2013", tmp_path / "params.yaml", [
        f"ingest.path={tmp_path / 'fer2013.csv.gz'}", "ingest.ferplus=null",
        "train.budget_minutes=null", "train.epochs=1", "train.track=true",
        "train.progress=false", "train.use_tuned=false", "validate.min_samples_per_class=0"])
    # Each stage in its own process, as DVC runs them (a stage's process pool must not be
    # forked from the test process, whose earlier tests left threads running).
    for stage, extra in (("ingest", []), ("validate", []), ("augment", []),
                         ("preprocess", []), ("train", ["--arch", "baseline_cnn"])):
        done = subprocess.run([sys.executable, "-m", f"pipelines.{stage}", "--params",
                               str(params), *extra], capture_output=True, text=True)
        assert done.returncode == 0, f"{stage}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    record = json.loads(run_record_path(Path("artifacts/train/baseline_cnn")).read_text())
    logged = mlflow.get_run(record["run_id"]).data.metrics
    n_test = len(np.load("artifacts/preprocess/image/test/ids.npy"))
    assert n_test == len(private) == 3589  # the official PrivateTest, whole

    assert export_image_folder(private, tmp_path / "private_test") == n_test
    assert cli.main(["evaluate", "--model", "artifacts/train/baseline_cnn",
                     "--data", "artifacts/preprocess", "--params", str(params),
                     "--source", "image_folder", "--path", str(tmp_path / "private_test"),
                     "--crop", "--out", str(tmp_path / "external")]) == 0
    scores = json.loads((tmp_path / "external" / "metrics.json").read_text())
    assert scores["n_scored"] == n_test and not scores["without_face"]
    assert abs(scores["accuracy"] - logged["test_accuracy"]) <= AGREEMENT, (scores, logged)
