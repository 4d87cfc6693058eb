"""Held-out photos the demo ends on: one per class, scored by the champion beside the truth.

The last stage of the pipeline shows a newcomer what the champion does with photos it never
saw: a few test-split stills (one per class, under normal light, chosen by sorted id so the
same data gives the same photos), each sent through the serving chain like any user photo,
with its true label beside the prediction. Where the manifest records eye positions (the
rendered default), each photo is scored twice: with them, as a caller with a landmark detector
would send it (the alignment the model trained on), and as a plain photo, found and aligned by
serving's own face and eye detection, as `ferops predict photo.png` does. The second column is
what a user's photo gets; the two differ where detection misses the face or misplaces the eyes
(benchmarks/results/serving_photos*.md measure the whole test split).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.data.io import is_store_ref, read_image
from components.errors import ConfigError, DataError
from components.serving.decode import encode_png


@dataclass(frozen=True)
class ExampleConfig:
    """The ``predict.examples`` params section."""

    manifest: str = "artifacts/validate/manifest.parquet"
    split: str = "test"
    per_class: int = 1
    light_level: str | None = "normal"  # null: any lighting

    def __post_init__(self) -> None:
        if self.per_class < 1:
            raise ConfigError(f"predict.examples.per_class: must be >= 1, got {self.per_class}")


def pick_examples(manifest: pd.DataFrame, cfg: ExampleConfig) -> pd.DataFrame:
    """``per_class`` stills of ``cfg.split`` per label (normal light when recorded).

    Raises:
        DataError: the split holds no stills.
    """
    stills = manifest[(manifest["split"] == cfg.split) & manifest["color"].notna()]
    if "frames" in stills:
        stills = stills[stills["frames"].isna()]
    if cfg.light_level and "light_level" in stills and stills["light_level"].notna().any():
        stills = stills[stills["light_level"] == cfg.light_level]
    if stills.empty:
        raise DataError(f"predict.examples: no stills in split {cfg.split!r}"
                        + (f" under {cfg.light_level} light" if cfg.light_level else ""))
    chosen = (stills.sort_values("id").groupby("label", sort=True).head(cfg.per_class))
    return chosen.sort_values(["label", "id"]).reset_index(drop=True)


def eyes_of(landmarks: Any) -> str | None:
    """``"lx,ly,rx,ry"`` of the colour image from a manifest ``landmarks`` cell, if any."""
    if not isinstance(landmarks, str) or not landmarks:
        return None
    quads = (json.loads(landmarks) or {}).get("color") or []
    return ",".join(f"{v:g}" for v in quads[0]) if quads else None


def has_eyes(rows: pd.DataFrame) -> bool:
    """Whether any chosen photo has recorded eye positions (then it is also scored plain)."""
    return "landmarks" in rows and any(eyes_of(v) for v in rows["landmarks"])


def example_request(rows: pd.DataFrame, inputs: tuple[str, ...],
                    eyes: bool = True) -> pd.DataFrame:
    """The predictor's request for the chosen rows (depth only for models that read it);
    ``eyes=False`` leaves out the recorded eye positions (a plain photo: serving detects).

    Raises:
        DataError: a file is missing.
    """
    def read(path: Any) -> bytes:
        if is_store_ref(str(path)):  # a row of an array store (csv sources): as a PNG
            return encode_png(read_image(str(path)))
        file = Path(str(path))
        if not file.is_file():
            raise DataError(f"{file}: example photo not found (run ingest / data synth)")
        return file.read_bytes()

    landmarks = rows["landmarks"] if eyes and "landmarks" in rows else [None] * len(rows)
    request = pd.DataFrame({"image": [read(p) for p in rows["color"]],
                            "eyes": [eyes_of(v) for v in landmarks]})
    if "depth" in inputs:
        request["depth"] = [read(p) for p in rows["depth"]]
    return request


def example_records(rows: pd.DataFrame, result: pd.DataFrame,
                    plain: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Per photo: file, true label, predicted label and probability (None without a face);
    with ``plain`` (the same photos scored without their eye positions) also
    ``plain_predicted``, ``plain_probability`` and ``plain_low_confidence``."""
    records = []
    for index, row in rows.iterrows():
        record = {"photo": str(row["color"]), "true": str(row["label"]),
                  **_top_face(result, index)}
        if plain is not None:
            record.update({f"plain_{k}": v for k, v in _top_face(plain, index).items()})
        records.append(record)
    return records


def _top_face(result: pd.DataFrame, index: int) -> dict[str, Any]:
    faces = result[result["input"] == index]
    top = faces.iloc[0] if len(faces) else None
    return {"predicted": None if top is None else str(top["label"]),
            "probability": None if top is None else round(float(top["probability"]), 4),
            "low_confidence": None if top is None else bool(top["low_confidence"])}


def examples_markdown(records: list[dict[str, Any]], model: str) -> str:
    """The table the demo ends on, and how many the model got right (each way it was sent)."""
    plain = any("plain_predicted" in r for r in records)
    right = sum(r["predicted"] == r["true"] for r in records)
    lines = [f"# {model} on held-out photos", ""]
    if not plain:
        lines += [f"{right} of {len(records)} right", "",
                  "| photo | true | predicted | probability |", "|---|---|---|---|"]
        lines += [f"| {Path(r['photo']).name} | {r['true']} | {_answer(r, '')} |"
                  for r in records]
        return "\n".join(lines) + "\n"
    plain_right = sum(r["plain_predicted"] == r["true"] for r in records)
    no_face = sum(r["plain_predicted"] is None for r in records)
    lines += [f"- with the recorded eye centres (the training chain's alignment): {right} of "
              f"{len(records)} right",
              f"- as plain photos (serving's face and eye detection, as `ferops predict "
              f"photo.png`): {plain_right} of {len(records)} right, {no_face} without a found "
              f"face", "",
              "| photo | true | with eye centres | probability | as a plain photo | "
              "probability |", "|---|---|---|---|---|---|"]
    lines += [f"| {Path(r['photo']).name} | {r['true']} | {_answer(r, '')} | "
              f"{_answer(r, 'plain_')} |" for r in records]
    return "\n".join(lines) + "\n"


def _answer(record: dict[str, Any], prefix: str) -> str:
    """``label | probability`` cells of one way of sending the photo (✗ when wrong)."""
    predicted, probability = record[f"{prefix}predicted"], record[f"{prefix}probability"]
    if predicted is None:
        return "no face | "
    mark = "" if predicted == record["true"] else " ✗"
    return f"{predicted}{mark} | {probability:.2f}"
