"""The model card stored as a version's description: what a reviewer needs on one screen.

Data (dataset, task, test digest and size), test scores, per-class recall, limitations
(which classes are weak, robustness under occlusion), the input contract a caller must meet
(crop size, channels and their order, depth or clips, class order, chance level), the exact
``ferops predict`` call, and intended use, in markdown the MLflow UI renders. The same text
is stored as ``MODEL_CARD.md`` among the version's artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.serving.settings import SETTINGS_FILE  # the contract left in the run folder
from registry.candidates import Candidate

CARD_FILE = "MODEL_CARD.md"

# Inputs each task's models read, for the "intended use" line.
TASK_INPUTS: dict[str, str] = {
    "image": "single aligned face crops (colour or grey)",
    "rgbd": "aligned RGB-D face crops (colour + depth, optional second 2-D camera)",
    "video": "short face clips (neutral to apex)",
}
HEADLINE = ("test_accuracy", "test_uar", "test_macro_f1")


def model_card(candidate: Candidate, floor: float, model_uri: str | None = None) -> str:
    """Markdown card for ``candidate``; ``floor`` is the gate's class-recall floor and
    ``model_uri`` (``models:/<name>/<version>``) the name the call example uses."""
    c = candidate
    lines = [
        f"# {c.arch} ({c.task})",
        "",
        "## Data",
        f"- dataset: `{c.dataset}`, task `{c.task}`, run `{c.run_id}`",
        f"- test split: {c.n_test if c.n_test is not None else 'unknown'} samples, "
        f"digest `{c.test_digest[:16]}`",
        "",
        "## Test metrics",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {c.metrics[k]:.4f} |" for k in _ordered(c.metrics)]
    lines += ["", "## Per-class recall (test)", "| class | recall |", "|---|---|"]
    lines += [f"| {name} | {value:.3f} |" for name, value in c.recall.items()]
    lines += input_contract(read_contract(c.run_dir), model_uri or c.model_uri)
    lines += ["", "## Limitations"]
    lines += [f"- {line}" for line in limitations(c, floor)]
    lines += [
        "",
        "## Intended use",
        f"- Research and demonstration of expression recognition on "
        f"{TASK_INPUTS.get(c.task, c.task + ' inputs')}.",
        "- Not for decisions about individuals (hiring, policing, health, education): "
        "expressions are not emotions, and accuracy differs between people and settings.",
    ]
    return "\n".join(lines) + "\n"


def read_contract(run_dir: Path) -> dict[str, Any] | None:
    """The serving settings the train stage wrote beside the model (None for older runs)."""
    path = Path(run_dir) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def input_contract(settings: dict[str, Any] | None, model_uri: str) -> list[str]:
    """Card lines: what the model reads, in which order, and the call that feeds it."""
    if not settings:
        return []
    spec = settings.get("spec") or {}
    inputs = list(spec.get("inputs") or [])
    classes = list(spec.get("classes") or [])
    size, channels = settings.get("size"), settings.get("channels")
    colour = "grey (luma)" if spec.get("grey") or channels == 1 else "RGB"
    names = {"color": f"colour photo ({colour})", "depth": "depth map (16-bit, millimetres)",
             "color2d": f"second-camera photo ({colour})", "frames": f"clip frames ({colour})"}
    lines = ["", "## Input contract",
             f"- reads: {', '.join(names.get(m, m) for m in inputs)}; stacked in this channel "
             f"order: {', '.join(inputs)} ({spec.get('in_channels', '?')} channels)",
             f"- faces are aligned by the eyes and cropped to {size}x{size} px "
             f"(preprocess input mode `{(settings.get('preprocess') or {}).get('input')}`)"]
    if "frames" in inputs:
        frames = (settings.get("preprocess") or {}).get("clip_frames")
        lines.append(f"- needs a clip (a folder of frames or a video file), resampled to "
                     f"{frames} frames")
    elif "depth" in inputs:
        lines.append("- needs a depth map registered to the colour photo (same aspect ratio)")
    else:
        lines.append("- takes a plain photo: no depth map, no clip")
    lines.append(f"- classes, in output order: {', '.join(classes)}")
    if classes:
        lines.append(f"- chance level: {1 / len(classes):.3f} accuracy / UAR")
    lines += [f"- a face whose top probability is under "
              f"{(settings.get('limits') or {}).get('min_confidence', 'the threshold')} is "
              "flagged low_confidence; a photo without a detected face gets no answer "
              "(--crop: the photo already is a face crop)",
              "", "## How to call", "```", predict_call(inputs, model_uri), "```"]
    return lines


def predict_call(inputs: list[str], model_uri: str) -> str:
    """The exact ``ferops predict`` command line for this model's inputs."""
    if "frames" in inputs:
        return f"ferops predict --model {model_uri} clip_folder/"
    extra = " --depth photo_depth.png" if "depth" in inputs else ""
    extra += " --color2d photo_2d.png" if "color2d" in inputs else ""
    return f"ferops predict --model {model_uri} photo.jpg{extra}"


def limitations(c: Candidate, floor: float) -> list[str]:
    """Plain-language weaknesses read off the scores."""
    notes = []
    uar = c.metrics.get("test_uar")
    below = sorted((v, k) for k, v in c.recall.items() if v < floor)
    if below:
        notes.append("below the recall floor " + f"{floor}: "
                     + ", ".join(f"{k} ({v:.2f})" for v, k in below))
    if uar is not None:
        weak = sorted((v, k) for k, v in c.recall.items() if v < uar / 2 and v >= floor)
        if weak:
            notes.append("weak classes (recall under half the UAR): "
                         + ", ".join(f"{k} ({v:.2f})" for v, k in weak))
    occluded = {k: v for k, v in c.metrics.items()
                if k.startswith("test_occ") and k.endswith("_accuracy")}
    if occluded and "test_accuracy" in c.metrics:
        worst = min(occluded, key=occluded.get)
        notes.append(f"under occlusion accuracy drops from {c.metrics['test_accuracy']:.2f} "
                     f"to {occluded[worst]:.2f} ({worst.removesuffix('_accuracy')[5:]})")
    if c.dataset == "synthetic":
        notes.append("trained and tested on rendered synthetic faces: scores say nothing "
                     "about real photographs")
    if c.n_test is not None and c.n_test < 200:
        notes.append(f"small test split ({c.n_test} samples): differences of a few points "
                     "are within noise")
    return notes or ["none measured beyond the scores above"]


def _ordered(metrics: dict[str, float]) -> list[str]:
    head = [k for k in HEADLINE if k in metrics]
    return head + sorted(k for k in metrics if k not in head)


def store_card(client: Any, name: str, version: str, card: str) -> str | None:
    """Write ``card`` as :data:`CARD_FILE` among the version's artifacts (its logged model's
    files, so ``models:/<name>/<version>/MODEL_CARD.md`` downloads it) and as its
    description. Returns the logged model id written to, None for a version without one.

    Raises:
        TrackingError: the store refused a write.
    """
    import tempfile

    from mlflow.exceptions import MlflowException

    from components.tracking.store import TrackingError

    try:
        client.update_model_version(name, version, description=card)
        model_id = logged_model_id(client.get_model_version(name, version))
        if not model_id:
            return None
        with tempfile.TemporaryDirectory(prefix="ferops-card-") as tmp:
            path = Path(tmp) / CARD_FILE
            path.write_text(card)
            client.log_model_artifact(model_id, str(path))
    except MlflowException as exc:
        raise TrackingError(f"{name} v{version}: cannot store the model card "
                            f"({str(exc).splitlines()[0]})") from exc
    return str(model_id)


def logged_model_id(version: Any) -> str | None:
    """The logged model a version was registered from: its ``model_id`` when the store fills
    it in, else read off its ``models:/m-...`` source (MLflow 3 registers run URIs that way,
    and the registry API does not always return the id)."""
    model_id = getattr(version, "model_id", None)
    if model_id:
        return str(model_id)
    source = str(getattr(version, "source", "") or "")
    if source.startswith("models:/m-"):
        return source.removeprefix("models:/").split("/", 1)[0]
    return None
