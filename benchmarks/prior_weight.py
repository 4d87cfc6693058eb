"""What the class prior in the decision rule buys a trained model: its scores with its
logits shifted by w x log(training class prior), for a range of w, on the splits its task
holds, the weight chosen on validation only.

    python benchmarks/prior_weight.py --model models:/ferops-image/7 \
        --data artifacts/preprocess/image [--exp NAME] [--weights 0 0.25 0.5] \
        [--name prior_weight_fer2013]

A network trained with the logit-adjusted loss (``train.logit_adjust`` tau) aims at balanced
error (UAR); adding the prior back at prediction (``train.prior_weight`` w) moves the same
weights towards accuracy's rule, which w = tau reaches (components/models/prior.py). This
measures the trade on one model: the view-averaged logits are computed once per split by the
platform's own classifier, each weight's predictions are their argmax after the shift, and at
the chosen weight the platform scores the model once more with the prior in its classifier
(what ``train.prior_weight`` makes the pipeline, the registry and serving compute) and the
predictions must agree. ``--model`` is a registered version (``models:/NAME/VERSION``) or a
train stage's run folder; ``--data`` the preprocessed task it was trained on (``--exp NAME``:
as DVC experiment NAME left it, read from DVC's cache). Writes
``benchmarks/results/<name>.{json,md}`` with the commit and machine; ``--markdown-only``
rewrites the ``.md`` from the ``.json``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import pct  # noqa: E402
from benchmarks.tta_views import (  # noqa: E402
    SELECT_METRIC,
    SELECT_SPLIT,
    SPLITS,
    SPLITS_NOTE,
    data_text,
    load_model,
    model_args,
    run_model_script,
)
from components.errors import DataError  # noqa: E402

DEFAULT_WEIGHTS: tuple[float, ...] = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75)


def model_log_prior(spec: Any, data: Path) -> np.ndarray:
    """The log class prior the model's rule weighs: the one saved with it, else the
    training labels' of ``data`` (as ``pipelines.train`` computes it)."""
    from components.models.prior import log_class_prior

    if spec.log_prior:
        return np.asarray(spec.log_prior, dtype=np.float64)
    train_labels = data / "train" / "y.npy"
    if not train_labels.is_file():
        raise DataError(f"{data}: no train/y.npy to take the class prior from")
    return log_class_prior(np.load(train_labels), spec.num_classes)


def scores_at(log_proba: np.ndarray, labels: np.ndarray, offsets: np.ndarray,
              classes: list[str]) -> tuple[dict[str, Any], np.ndarray]:
    """The classification report of argmax(log_proba + offsets), and those predictions."""
    from components.training.metrics import classification_report

    predicted = (log_proba + offsets).argmax(axis=1)
    return classification_report(labels, predicted, classes), predicted


def measure(model: str, data: Path, weights: list[float]) -> dict[str, Any]:
    """Scores per weight and split, and the platform's own check at the chosen weight."""
    from components.models import TorchClassifier
    from components.training.data import load_split
    from components.training.run import score

    spec, classifier = load_model(model, data)
    if not hasattr(spec, "prior_weight"):
        # A registered model runs on the code logged with it (MLflow's code_paths).
        raise DataError(f"{model}: logged by code older than train.prior_weight, so its "
                        "classifier cannot take a prior; pass the train stage's run folder "
                        "(artifacts/train/<arch>) instead")
    if not isinstance(classifier, TorchClassifier):
        raise DataError(f"{model}: {spec.arch} predicts through its own members: "
                        "no prior shifts its logits")
    splits = [s for s in SPLITS if (data / s / "y.npy").is_file()]
    if SELECT_SPLIT not in splits:
        raise DataError(f"{data}: no {SELECT_SPLIT} split to choose the weight on")
    log_prior = model_log_prior(spec, data)
    plain = TorchClassifier(classifier.net, classifier.needs, mirror=classifier.mirror,
                            shift=classifier.shift)  # its views, no prior
    log_proba, labels = {}, {}
    for split in splits:
        rows = load_split(data, split, spec.inputs, grey=spec.grey)
        proba = np.asarray(plain.predict_proba(rows.rows(slice(None))), dtype=np.float64)
        log_proba[split], labels[split] = np.log(np.clip(proba, 1e-30, None)), rows.y
    table = []
    for weight in weights:
        row: dict[str, Any] = {"weight": weight, "splits": {}}
        for split in splits:
            report, _ = scores_at(log_proba[split], labels[split], weight * log_prior,
                                  spec.classes)
            row["splits"][split] = {
                "faces": int(len(labels[split])), "accuracy": report["accuracy"],
                "uar": report["uar"], "macro_f1": report["macro_f1"],
                "per_class_recall": report["per_class_recall"]}
        print(f"w {weight:g}: " + ", ".join(
            f"{s} {pct(row['splits'][s]['accuracy'])} / UAR {pct(row['splits'][s]['uar'])}"
            for s in splits), flush=True)
        table.append(row)
    chosen = max(table, key=lambda r: r["splits"][SELECT_SPLIT][SELECT_METRIC])
    check = platform_check(classifier, spec, data, splits, chosen["weight"], log_prior,
                           log_proba, labels, score)
    return {"arch": spec.arch, "views": {"mirror": classifier.mirror, "shift": classifier.shift},
            "trained_with": {"prior_weight": spec.prior_weight},
            "log_prior": log_prior.tolist(), "splits": splits, "rows": table,
            "chosen": chosen["weight"], "platform_check": check}


def platform_check(classifier: Any, spec: Any, data: Path, splits: list[str], weight: float,
                   log_prior: np.ndarray, log_proba: dict[str, np.ndarray],
                   labels: dict[str, np.ndarray], score: Any) -> dict[str, Any]:
    """The model scored by the platform with the chosen prior in its classifier: how many
    of its predictions differ from the shifted argmax (0 expected; a tie at float precision
    could flip one)."""
    from components.models import TorchClassifier

    shifted = TorchClassifier(classifier.net, classifier.needs, mirror=classifier.mirror,
                              shift=classifier.shift,
                              prior=(weight * log_prior).tolist() if weight else None)
    out = {}
    for split in splits:
        report = score(shifted, spec, data, split)
        _, derived = scores_at(log_proba[split], labels[split], weight * log_prior,
                               spec.classes)
        out[split] = {"accuracy": report["accuracy"], "uar": report["uar"],
                      "differing_predictions": int((report["predictions"] != derived).sum())}
    return out


def markdown(payload: dict[str, Any]) -> list[str]:
    """The results file for people: one table per split, the chosen weight marked."""
    result = payload["result"]
    views = result["views"]
    prior = ", ".join(f"{math.exp(v):.3f}" for v in result["log_prior"])
    lines = [
        "# The class prior in a trained model's decision rule",
        "",
        f"- command: `{payload['command']}`",
        f"- commit: `{payload['commit']}`",
        f"- model: `{payload['model']}` ({result['arch']}; views: mirror {views['mirror']}, "
        f"shift {views['shift']}; saved with prior weight "
        f"{result['trained_with']['prior_weight']}); data: {data_text(payload)}",
        f"- training class prior: {prior}",
        f"- machine: {payload['machine']['cpu']}, {payload['machine']['cpu_count']} cores, "
        f"torch {payload['machine']['torch']} ({payload['machine']['torch_threads']} threads)",
        f"- chosen on `{SELECT_SPLIT}` by {SELECT_METRIC} (the test splits play no part): "
        f"**w = {result['chosen']:g}**",
        "",
    ]
    for split in result["splits"]:
        lines += [f"## `{split}`", "", "| w | faces | accuracy | UAR | macro-F1 |",
                  "|---|---|---|---|---|"]
        for row in result["rows"]:
            s = row["splits"][split]
            mark = " (chosen)" if row["weight"] == result["chosen"] else ""
            lines.append(f"| {row['weight']:g}{mark} | {s['faces']} | {pct(s['accuracy'])} | "
                         f"{pct(s['uar'])} | {pct(s['macro_f1'])} |")
        lines.append("")
    chosen = next(r for r in result["rows"] if r["weight"] == result["chosen"])
    lines += ["## Recall per class at w = 0 and at the chosen weight (`test`)", "",
              "| class | w = 0 | chosen |", "|---|---|---|"]
    first = result["rows"][0] if result["rows"][0]["weight"] == 0 else None
    for name, recall in chosen["splits"].get("test", {}).get("per_class_recall", {}).items():
        base = first["splits"]["test"]["per_class_recall"][name] if first else None
        lines.append(f"| {name} | {pct(base) if base is not None else '-'} | {pct(recall)} |")
    lines += ["", "## The platform's own scoring at the chosen weight", "",
              "| split | accuracy | UAR | predictions differing from the table's |",
              "|---|---|---|---|"]
    for split in result["splits"]:
        check = result["platform_check"][split]
        lines.append(f"| `{split}` | {pct(check['accuracy'])} | {pct(check['uar'])} | "
                     f"{check['differing_predictions']} |")
    lines += ["", f"{SPLITS_NOTE} One model, no retraining: every weight scores the same "
              "view-averaged logits."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = model_args(__doc__.split("\n\n")[0], "prior_weight")
    parser.add_argument("--weights", type=float, nargs="+", default=list(DEFAULT_WEIGHTS))
    args = parser.parse_args(argv)
    if not all(math.isfinite(w) for w in args.weights):
        parser.error("--weights: each must be a finite number")
    weights = sorted(set(args.weights))
    return run_model_script(args, argv, "benchmarks/prior_weight.py",
                            lambda data: measure(args.model, data, weights), markdown)


if __name__ == "__main__":
    sys.exit(main())
