"""Showing predictions to people: top-k text, JSON records and annotated images."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pandas as pd

from components.serving.inputs import TOP_K

BOX_COLOUR = (40, 220, 60)  # RGB
LOW_CONFIDENCE_COLOUR = (240, 160, 30)


def top_k(row: pd.Series, classes: list[str], k: int = TOP_K) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one result row, most probable first."""
    scores = [(name, float(row[f"p_{name}"])) for name in classes]
    return sorted(scores, key=lambda item: -item[1])[:k]


def records(result: pd.DataFrame, classes: list[str], names: list[str],
            k: int = TOP_K) -> list[dict[str, Any]]:
    """One JSON-ready dict per face: source name, box, low-confidence flag, top-k and all
    scores; an input without a face gets one record with ``"faces": 0``."""
    out: list[dict[str, Any]] = []
    with_faces = set(int(i) for i in result["input"])
    out += [{"input": name, "faces": 0} for i, name in enumerate(names) if i not in with_faces]
    for _, row in result.iterrows():
        out.append({
            "input": names[int(row["input"])],
            "face": int(row["face"]),
            "box": {key: int(row[key]) for key in ("x", "y", "w", "h")},
            "low_confidence": bool(row["low_confidence"]),
            "located_by": str(row["located_by"]),
            "top": [{"label": name, "probability": round(p, 6)}
                    for name, p in top_k(row, classes, k)],
            "probabilities": {c: round(float(row[f"p_{c}"]), 6) for c in classes},
        })
    return out


def text(result: pd.DataFrame, classes: list[str], names: list[str], k: int = TOP_K) -> str:
    """Readable lines: per input its faces, each with box and top-k expressions."""
    lines = []
    for index, name in enumerate(names):
        faces = result[result["input"] == index]
        if faces.empty:
            lines.append(f"{name}: no face found (an input that already is a face crop: "
                         "--crop)")
            continue
        lines.append(f"{name}: {len(faces)} face(s)")
        for _, row in faces.iterrows():
            notes = [n for n, on in (("low confidence", row["low_confidence"]),
                                     ("eyes given", row["located_by"] == "landmarks"),
                                     ("whole image as the face",
                                      row["located_by"] == "aligned_crop")) if on]
            note = f"  ({'; '.join(notes)})" if notes else ""
            box = f"x={row['x']} y={row['y']} w={row['w']} h={row['h']}"
            tops = ", ".join(f"{label} {p:.1%}" for label, p in top_k(row, classes, k))
            lines.append(f"  face {row['face']} [{box}]: {tops}{note}")
    return "\n".join(lines)


def annotate(image: np.ndarray, result: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """A copy of an RGB image with each face's box and top label + probability drawn."""
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    scale = max(0.4, min(canvas.shape[:2]) / 600)
    thickness = max(1, round(scale * 2))
    for _, row in result.iterrows():
        x, y, w, h = (int(row[k]) for k in ("x", "y", "w", "h"))
        colour = LOW_CONFIDENCE_COLOUR if row["low_confidence"] else BOX_COLOUR
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, thickness)
        label, p = top_k(row, classes, 1)[0]
        caption = f"{label} {p:.0%}"
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(0, y - th - base - 2)
        cv2.rectangle(canvas, (x, top), (x + tw + 2, top + th + base + 2), colour, -1)
        cv2.putText(canvas, caption, (x + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), thickness, cv2.LINE_AA)
    return canvas
