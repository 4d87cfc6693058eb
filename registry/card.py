"""The model card stored as a version's description: what a reviewer needs on one screen.

Data (dataset, task, test digest and size), test scores, per-class recall, limitations
(which classes are weak, robustness under occlusion) and intended use, in markdown the
MLflow UI renders.
"""

from __future__ import annotations

from registry.candidates import Candidate

# Inputs each task's models read, for the "intended use" line.
TASK_INPUTS: dict[str, str] = {
    "image": "single aligned face crops (colour or grey)",
    "rgbd": "aligned RGB-D face crops (colour + depth, optional second 2-D camera)",
    "video": "short face clips (neutral to apex)",
}
HEADLINE = ("test_accuracy", "test_uar", "test_macro_f1")


def model_card(candidate: Candidate, floor: float) -> str:
    """Markdown card for ``candidate``; ``floor`` is the gate's class-recall floor."""
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
