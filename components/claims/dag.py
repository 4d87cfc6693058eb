"""``claims/dvc.yaml``, generated from the claims spec.

One stage per data variant (the pipeline's ingest ... preprocess, or the part of it the
variant re-runs), one per arm and seed (the pipeline's train and evaluate, distilled into a
measurement record that git keeps), and ``report``.
Each stage declares the code it runs, the folders it reads and the spec entries that shape
its params, so ``dvc repro claims/dvc.yaml`` re-runs exactly what a change touches; the
records in git keep finished arms across sessions and machines (the data stages re-run on a
fresh clone and give the same bytes, so the arms stay up to date). Generated, not written
by hand: a test checks the committed file equals :func:`render`'s output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from components.claims.record import RECORDS, cost_path, record_path
from components.claims.spec import (
    DATA_STAGES,
    SPEC_FILE,
    ClaimsSpec,
    _chain,
    arms_in_claims,
    own_stages,
    stage_dirs,
    variant_dir,
)
from components.recipes import CONF_DIR, CONFIG_NAME, RECIPE_GROUP

DVC_FILE = Path("claims/dvc.yaml")
# Per arm stage, what it reads that no stage writes (:func:`stage_inputs`); written beside
# dvc.yaml by `ferops claims dag` and a dependency of the report, whose code column reads it:
# DVC refuses a dvc.yaml as a dependency, so an edit of an arm's dependency list reaches the
# report through this file.
INPUTS_FILE = Path("claims/inputs.json")
REPORT = Path("claims/report.md")
RESULTS = Path("claims/results.json")
PLOTS = Path("claims/plots")
# What a claims run writes besides code: a commit that changed only these changed no code.
RUN_OUTPUTS: tuple[Path, ...] = (RECORDS, DVC_FILE.with_suffix(".lock"), REPORT, RESULTS, PLOTS)
HEADER = (
    "# Generated from claims/params.yaml by `ferops claims dag`; do not edit by hand.\n"
    "# `dvc repro claims/dvc.yaml` runs every arm of every claim and writes claims/report.md.\n"
)
DATA_CODE: dict[str, list[str]] = {
    "ingest": ["pipelines/ingest.py", "components/data"],
    "validate": ["pipelines/validate.py", "components/validation"],
    "augment": ["pipelines/augment.py", "components/augment"],
    "preprocess": ["pipelines/preprocess.py", "components/preprocess"],
}
CLAIMS_CLI: list[str] = ["pipelines/claims/__init__.py", "pipelines/claims/__main__.py"]
ARM_CODE: list[str] = [*CLAIMS_CLI, "pipelines/claims/arm.py", "pipelines/train.py",
                       "pipelines/evaluate.py", "components/claims/spec.py",
                       "components/claims/record.py",
                       "components/training", "components/models", "components/tracking",
                       "components/serving", "components/evaluation.py",
                       "components/machine.py", "components/isa.py"]
REPORT_CODE: list[str] = [*CLAIMS_CLI, "components/claims"]
# The first entry of conf/config.yaml's defaults list: the file every recipe overlays.
BASE_NAME = "base"


def recipe_inputs(root: Path, spec: ClaimsSpec) -> dict[str, list[str]]:
    """Variant -> what composing its params reads: the composing code, the defaults list,
    the base every recipe overlays, the variant's recipe and the recipes that one extends.
    Not the whole ``conf`` folder, so an edit of one recipe (the demo's, say) leaves the
    stages of another (FER2013's) up to date; a test composes each recipe from these files
    alone."""
    conf = Path(CONF_DIR)
    common = ["components/recipes.py", str(conf / f"{CONFIG_NAME}.yaml"),
              str(conf / f"{BASE_NAME}.yaml")]
    return {name: [*common, *(str(conf / RECIPE_GROUP / f"{recipe}.yaml")
                              for recipe in recipe_chain(root, variant.recipe))]
            for name, variant in spec.variants.items()}


def recipe_chain(root: Path, recipe: str) -> list[str]:
    """``recipe`` and the recipes its defaults list extends (``ferplus``: ``fer2013``)."""
    path = Path(root) / CONF_DIR / RECIPE_GROUP / f"{recipe}.yaml"
    defaults = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("defaults") or []
    chain = [recipe]
    for entry in defaults:
        if isinstance(entry, str) and entry != "_self_":
            chain += [name for name in recipe_chain(root, entry) if name not in chain]
    return chain


def data_stage_name(variant: str) -> str:
    """``data-<variant>``."""
    return f"data-{variant}"


def arm_stage_name(arm: str, seed: int) -> str:
    """``arm-<arm>-s<seed>``."""
    return f"arm-{arm}-s{seed}"


def data_stage(spec: ClaimsSpec, variant: str, raw_inputs: list[str],
               conf_inputs: list[str]) -> dict[str, Any]:
    """The stage that runs ``variant``'s own data stages (``raw_inputs``: in-project raw
    data its ingest reads, e.g. ``data``; ``conf_inputs``: what composing its params
    reads)."""
    own = own_stages(spec, variant)
    dirs = stage_dirs(spec, variant)
    deps: list[str] = [*CLAIMS_CLI, "pipelines/claims/data.py", "components/claims/spec.py",
                       "components/isa.py", *conf_inputs]
    for stage in own:
        deps += DATA_CODE[stage]
    # the reused variant's earlier outputs; raw images are read by ingest, by augment (the
    # occluders are drawn on them) and by preprocess (it decodes them again)
    deps += [str(dirs[stage]) for stage in DATA_STAGES[:DATA_STAGES.index(own[0])]]
    deps += raw_inputs
    outs: list[Any] = [str(variant_dir(variant) / "params.yaml")]
    outs += [str(dirs[stage]) for stage in own]
    outs.append({str(variant_dir(variant) / "timings"): {"cache": False}})
    return {
        "cmd": f"python -m pipelines.claims data --variant {variant}",
        "deps": _unique(deps),
        "params": [{str(SPEC_FILE): [f"variants.{v}" for v in _chain(spec, variant)]}],
        "outs": outs,
    }


def arm_stage(spec: ClaimsSpec, arm: str, seed: int, conf_inputs: list[str]) -> dict[str, Any]:
    """The stage that trains and evaluates one arm with one seed (``conf_inputs``: what
    composing its params reads)."""
    variant = spec.arms[arm].variant
    dirs = stage_dirs(spec, variant)
    return {
        "cmd": f"python -m pipelines.claims arm --arm {arm} --seed {seed}",
        "deps": _unique([str(dirs["preprocess"]), str(dirs["augment"] / "manifest.parquet"),
                         *ARM_CODE, *conf_inputs]),
        "params": [{str(SPEC_FILE): ["budget", f"arms.{arm}",
                                     *[f"variants.{v}" for v in _chain(spec, variant)]]}],
        # only the record and its cost are outputs, kept in git: the weights and evaluate
        # folder under ``out`` are scratch, so a fresh clone keeps every finished arm
        "outs": [{str(record_path(arm, seed)): {"cache": False}},
                 {str(cost_path(arm, seed)): {"cache": False}}],
    }


def report_stage(spec: ClaimsSpec) -> dict[str, Any]:
    """The stage that reads every arm's record and writes the report."""
    deps = [str(path(arm, seed)) for arm in arms_in_claims(spec) for seed in spec.seeds_of(arm)
            for path in (record_path, cost_path)]
    return {
        "cmd": "python -m pipelines.claims report",
        "deps": [*deps, str(INPUTS_FILE), *REPORT_CODE],
        "params": [{str(SPEC_FILE): ["claims", "seeds"]}],
        # plain outputs, not DVC metrics: `dvc metrics show` stays the main pipeline's summary
        "outs": [{str(REPORT): {"cache": False}}, {str(RESULTS): {"cache": False}},
                 {str(PLOTS): {"cache": False}}],
    }


def dvc_stages(spec: ClaimsSpec, raw_inputs: dict[str, list[str]],
               conf_inputs: dict[str, list[str]]) -> dict[str, Any]:
    """Every stage, data variants first, then arms (by arm, then seed), then the report
    (``raw_inputs``: variant -> in-project raw data paths its ingest reads;
    ``conf_inputs``: variant -> what composing its params reads, :func:`recipe_inputs`)."""
    needed = {spec.arms[a].variant for a in arms_in_claims(spec)}
    variants = [v for v in spec.variants if v in _closure(spec, needed)]
    stages: dict[str, Any] = {}
    for variant in variants:
        stages[data_stage_name(variant)] = data_stage(
            spec, variant, raw_inputs.get(variant, []), conf_inputs.get(variant, []))
    for arm in arms_in_claims(spec):
        for seed in spec.seeds_of(arm):
            stages[arm_stage_name(arm, seed)] = arm_stage(
                spec, arm, seed, conf_inputs.get(spec.arms[arm].variant, []))
    stages["report"] = report_stage(spec)
    return stages


def _closure(spec: ClaimsSpec, variants: set[str]) -> set[str]:
    return {v for name in variants for v in _chain(spec, name)}


def render(spec: ClaimsSpec, raw_inputs: dict[str, list[str]],
           conf_inputs: dict[str, list[str]]) -> str:
    """The text of ``claims/dvc.yaml``: stages run from the project root (``wdir: ..``)."""
    stages = {name: {"wdir": "..", **stage} for name, stage in
              dvc_stages(spec, raw_inputs, conf_inputs).items()}
    return HEADER + yaml.safe_dump({"stages": stages}, sort_keys=False, width=100)


def render_inputs(stages: dict[str, Any]) -> str:
    """The text of ``claims/inputs.json``: each arm stage of ``stages`` (as
    :func:`dvc_stages` or a loaded ``claims/dvc.yaml`` gives them) and its inputs."""
    arms = {name: stage_inputs(stages, name) for name in stages if name.startswith("arm-")}
    return json.dumps(arms, indent=1) + "\n"


def stage_inputs(stages: dict[str, Any], name: str) -> list[str]:
    """What stage ``name`` reads that no stage writes: its dependencies, each one on another
    stage's output replaced by that stage's inputs, so an arm's list holds the code and conf
    of the data stages it trains on as well as its own. Empty for a stage not in ``stages``.
    """
    writers = {out: stage for stage, body in stages.items() for out in _outs(body)}
    inputs: list[str] = []
    for dep in (stages.get(name) or {}).get("deps") or []:
        writer = next((stage for out, stage in writers.items()
                       if dep == out or dep.startswith(out + "/")), None)
        inputs += [dep] if writer is None else stage_inputs(stages, writer)
    return list(dict.fromkeys(inputs))


def _outs(body: dict[str, Any]) -> list[str]:
    return [next(iter(out)) if isinstance(out, dict) else out for out in body.get("outs") or []]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
