"""Hard against soft routing of trained two-stage (`hierarchical`) models: the same networks
scored both ways on the test split, for accuracy and for what their confidence is worth.

    python benchmarks/hierarchical_routing.py [--model RUN_DIR[:DATA_DIR] ...]

Hard routing (the patent's, methods.md 3.6) answers with the chosen group's second-model
distribution, so a category that forms a group of its own gets probability 1: serving's
low-confidence flag (`serving.min_confidence`) can never fire on it, right or wrong. Soft
routing, P(c) = P(u) P(c | u), keeps the first model's doubt in the answer. Routing acts only
at inference, so this trains nothing: it reads the models the train stage (or
`benchmarks/demo_variants.py`) saved and the preprocess stage's test arrays. ``RUN_DIR`` is a
training folder (`artifacts/train/hierarchical`); ``DATA_DIR`` the preprocess task folder its
model was trained from (default `artifacts/preprocess/image`). Default models: the demo's and
the seed 1 and 2 runs of `benchmarks/demo_hierarchical_chain.yaml`, where they exist.

Writes ``benchmarks/results/hierarchical_routing.{json,md}`` with the commit and machine.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import git_commit, machine_facts, publish  # noqa: E402
from components.errors import DataError  # noqa: E402

ROUTINGS = ("hard", "soft")
CONFIDENT = 0.9  # a wrong answer at or above this top probability reads as sure of itself
CALIBRATION_BINS = 15
DEMO_DATA = Path("artifacts/preprocess/image")
CHAIN = Path("artifacts/benchmarks/demo_hierarchical_chain")
DEFAULT_MODELS = (
    f"artifacts/train/hierarchical:{DEMO_DATA}",
    *(f"{CHAIN}/runs/chain_s{seed}/train/hierarchical:{CHAIN}/data/px32/preprocess/image"
      for seed in (1, 2)),
)


def calibration_error(confidence: np.ndarray, correct: np.ndarray,
                      bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error: the sample-weighted mean gap between the top probability
    and the accuracy within equal-width confidence bins (0 = confidence means what it says)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(gap)


def routing_scores(proba: np.ndarray, y: np.ndarray, min_confidence: float) -> dict[str, Any]:
    """Accuracy, UAR and the confidence figures of one routing's probabilities."""
    from components.training.metrics import confusion_matrix, summarize

    predicted = proba.argmax(axis=1)
    confidence = proba.max(axis=1)
    correct = predicted == y
    wrong = ~correct
    summary = summarize(confusion_matrix(y, predicted, proba.shape[1]))
    return {
        "accuracy": summary["accuracy"], "uar": summary["uar"], "n": summary["n"],
        "wrong": int(wrong.sum()),
        "mean_confidence_right": float(confidence[correct].mean()) if correct.any() else None,
        "mean_confidence_wrong": float(confidence[wrong].mean()) if wrong.any() else None,
        "wrong_confident": int((confidence[wrong] >= CONFIDENT).sum()),
        "flagged_right": int((confidence[correct] < min_confidence).sum()),
        "flagged_wrong": int((confidence[wrong] < min_confidence).sum()),
        "calibration_error": calibration_error(confidence, correct.astype(float)),
    }


def score_model(run_dir: Path, data_dir: Path, min_confidence: float) -> dict[str, Any]:
    """Both routings of the hierarchical model in ``run_dir`` on ``data_dir``'s test split."""
    from components.models import stack_inputs
    from components.models.registry import load_trained
    from components.training.data import load_split

    spec, model = load_trained(run_dir)
    if spec.arch != "hierarchical":
        raise DataError(f"{run_dir}: a {spec.arch} model, not hierarchical")
    test = load_split(data_dir, "test", spec.inputs, grey=spec.grey)
    x = stack_inputs(spec.arch, {m: np.asarray(part) for m, part in
                                 zip(spec.inputs, test.parts, strict=True)})
    trained_routing = model.routing
    scores = {}
    try:
        for routing in ROUTINGS:
            model.routing = routing
            scores[routing] = routing_scores(model.predict_proba(x), test.y, min_confidence)
    finally:
        model.routing = trained_routing
    return {"model": _relative(run_dir), "data": _relative(data_dir),
            "seed": spec.model_kwargs.get("seed"),
            "trained_routing": trained_routing,
            "groups": [list(unit) for unit in model.groups_], "routings": scores}


def markdown(command: str, payload: dict[str, Any]) -> list[str]:
    """The comparison for people: one row per model and routing."""
    machine = payload["machine"]
    lines = ["# `hierarchical`: hard against soft routing of the same trained networks", "",
             f"- command: `{command}`", f"- commit: `{payload['commit']}`",
             f"- machine: {machine['cpu']}, {machine['cpu_count']} cores, torch "
             f"{machine['torch']}",
             f"- confidence: the top probability; flagged: below `serving.min_confidence` "
             f"({payload['min_confidence']}); sure and wrong: a wrong answer at >= {CONFIDENT}; "
             f"calibration error: expected, {CALIBRATION_BINS} bins", "",
             "| model | routing | test acc | test UAR | wrong | sure and wrong | flagged "
             "right / wrong | mean confidence right / wrong | calibration error |",
             "|---|---|---|---|---|---|---|---|---|"]
    for result in payload["models"]:
        for routing, s in result["routings"].items():
            lines.append(
                f"| {result['model']} | {routing} | {s['accuracy']:.3f} | {s['uar']:.3f} | "
                f"{s['wrong']} of {s['n']} | {s['wrong_confident']} | {s['flagged_right']} / "
                f"{s['flagged_wrong']} | {_opt(s['mean_confidence_right'])} / "
                f"{_opt(s['mean_confidence_wrong'])} | {s['calibration_error']:.3f} |")
    return lines + ["", "Same networks in both rows of a model: routing acts only at inference."]


def _opt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _relative(path: Path) -> str:
    """``path`` from the project root when it lies inside (results name no machine paths)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _model_and_data(entry: str) -> tuple[Path, Path]:
    model, _, data = entry.partition(":")
    return REPO_ROOT / model, REPO_ROOT / (data or DEMO_DATA)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", metavar="RUN_DIR[:DATA_DIR]",
                        help="a hierarchical training folder and its preprocess task folder")
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="the low-confidence threshold (default: serving.min_confidence)")
    args = parser.parse_args(argv)
    entries = args.model or [e for e in DEFAULT_MODELS
                             if (REPO_ROOT / e.partition(":")[0]).is_dir()]
    if not entries:
        raise DataError("no hierarchical model found (run `make repro` first)")
    min_confidence = args.min_confidence
    if min_confidence is None:
        from components.config import load_params
        from components.serving.settings import serving_config

        params = load_params(REPO_ROOT / "params.yaml")
        min_confidence = serving_config(params.get("serving")).min_confidence
    command = shlex.join(["python", "benchmarks/hierarchical_routing.py",
                          *(sys.argv[1:] if argv is None else argv)])
    results = [score_model(*_model_and_data(e), min_confidence) for e in entries]
    payload = {"command": command, "commit": git_commit(REPO_ROOT), "machine": machine_facts(),
               "min_confidence": min_confidence, "models": results}
    publish("hierarchical_routing", payload, markdown(command, payload))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
