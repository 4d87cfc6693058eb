"""``claims/params.yaml``: what each claim compares, on which data, at which budget.

The file is the one place an experiment set is written down. Each data variant is a recipe
plus Hydra overrides (so its params are byte-for-byte what ``dvc exp run -S recipe=NAME -S
key=value`` composes); a variant may reuse another's earlier stages and re-run from
``augment`` or ``preprocess`` only (e.g. alignment off re-runs preprocess on the same
augmented manifest). An arm trains one architecture on one variant with the common budget
and its own overrides; every arm runs once per seed, and two arms compared in a claim share
the seed (paired). ``claims/dvc.yaml`` is generated from this file (:func:`dvc_stages`), so
the stages, their dependencies and their params never drift from the spec.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.config import load_params
from components.errors import ConfigError

SPEC_FILE = Path("claims/params.yaml")
ARTIFACTS = Path("claims/artifacts")
DATA_STAGES: tuple[str, ...] = ("ingest", "validate", "augment", "preprocess")
RERUN_FROM: tuple[str, ...] = ("augment", "preprocess")  # where a reusing variant starts
BETTER: tuple[str, ...] = ("higher", "lower")
# Budget keys every arm gets (a claims run never reads the tuner, never plans by minutes).
FORCED_BUDGET: dict[str, Any] = {"train.use_tuned": False, "train.budget_minutes": None}


@dataclass(frozen=True)
class Variant:
    """A data variant: ``recipe`` plus ``overrides``; ``reuse`` names the variant whose
    stages before ``rerun`` it shares."""

    name: str
    recipe: str
    overrides: dict[str, Any] = field(default_factory=dict)
    reuse: str | None = None
    rerun: str = "ingest"


@dataclass(frozen=True)
class Arm:
    """One architecture trained on one variant, with its own overrides (per seed).

    ``seeds``: the seeds this arm runs with, when not all of the spec's (an arm that costs
    over 10 minutes runs one seed); empty means every seed of the spec."""

    name: str
    variant: str
    arch: str
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()


@dataclass(frozen=True)
class Comparison:
    """``arm`` against ``baseline`` on ``metric`` (``baseline_metric`` when the baseline is
    read under another key, e.g. an ensemble's member). ``better`` says which direction the
    claim predicts for the arm."""

    label: str
    arm: str
    baseline: str
    metric: str
    baseline_metric: str
    better: str = "higher"


@dataclass(frozen=True)
class Claim:
    """A numbered claim of methods.md section 7 and the comparisons that test it."""

    number: int
    statement: str
    data: str
    comparisons: tuple[Comparison, ...] = ()
    oracle: tuple[str, ...] = ()   # claims checked by arithmetic tests, not by training
    note: str = ""


@dataclass(frozen=True)
class ClaimsSpec:
    """The whole experiment set."""

    seeds: tuple[int, ...]
    budget: dict[str, Any]
    variants: dict[str, Variant]
    arms: dict[str, Arm]
    claims: tuple[Claim, ...]

    def seeds_of(self, arm: str) -> tuple[int, ...]:
        """The seeds ``arm`` runs with: its own list, or every seed of the spec."""
        return self.arms[arm].seeds or self.seeds

    def variant_of(self, arm: str) -> Variant:
        """The data variant an arm trains on."""
        return self.variants[self.arms[arm].variant]


def load_spec(path: Path = SPEC_FILE) -> ClaimsSpec:
    """Read and check the claims spec.

    Raises:
        ConfigError: a missing section, an unknown reference (variant, arm, stage) or a bad
            value, naming where it is.
    """
    raw = load_params(path)
    for key in ("seeds", "variants", "arms", "claims"):
        if key not in raw:
            raise ConfigError(f"{path}: section {key!r} is missing")
    seeds = _integers(raw["seeds"], f"{path}: seeds")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{path}: seeds must be a non-empty list of distinct integers")
    variants = {name: _variant(name, entry, path) for name, entry in _mapping(
        raw["variants"], f"{path}: variants").items()}
    arms = {name: _arm(name, entry, path) for name, entry in _mapping(
        raw["arms"], f"{path}: arms").items()}
    claims = tuple(_claim(entry, path) for entry in _listed(raw["claims"], f"{path}: claims"))
    spec = ClaimsSpec(seeds, dict(_mapping(raw.get("budget") or {}, f"{path}: budget")),
                      variants, arms, claims)
    _check_references(spec, path)
    return spec


def _integers(value: Any, where: str) -> tuple[int, ...]:
    """A YAML list of whole numbers as a tuple; anything else is a one-line ConfigError
    naming ``where`` (a seed list is what one edits by hand)."""
    items = _listed(value, where)
    if any(isinstance(item, bool) or not isinstance(item, int) for item in items):
        raise ConfigError(f"{where}: {items} must be whole numbers")
    return tuple(items)


def _variant(name: str, entry: Any, path: Path) -> Variant:
    entry = _mapping(entry, f"{path}: variants.{name}")
    _known_keys(entry, {"recipe", "overrides", "reuse", "rerun"}, f"{path}: variants.{name}")
    reuse = entry.get("reuse")
    rerun = str(entry.get("rerun", "augment" if reuse else "ingest"))
    if reuse and rerun not in RERUN_FROM:
        raise ConfigError(f"{path}: variants.{name}.rerun: {rerun!r}; a variant that reuses "
                          f"another re-runs from one of {RERUN_FROM}")
    if not reuse and rerun != "ingest":
        raise ConfigError(f"{path}: variants.{name}.rerun: {rerun!r} needs 'reuse'")
    if "recipe" not in entry:
        raise ConfigError(f"{path}: variants.{name}: 'recipe' is missing")
    return Variant(name, str(entry["recipe"]),
                   dict(_mapping(entry.get("overrides") or {}, f"variants.{name}.overrides")),
                   str(reuse) if reuse else None, rerun)


def _arm(name: str, entry: Any, path: Path) -> Arm:
    entry = _mapping(entry, f"{path}: arms.{name}")
    _known_keys(entry, {"variant", "arch", "overrides", "seeds"}, f"{path}: arms.{name}")
    for key in ("variant", "arch"):
        if key not in entry:
            raise ConfigError(f"{path}: arms.{name}: {key!r} is missing")
    seeds = _integers(entry.get("seeds") or [], f"{path}: arms.{name}.seeds")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{path}: arms.{name}.seeds: {list(seeds)} repeats a seed")
    return Arm(name, str(entry["variant"]), str(entry["arch"]),
               dict(_mapping(entry.get("overrides") or {}, f"arms.{name}.overrides")), seeds)


def _claim(entry: Any, path: Path) -> Claim:
    entry = _mapping(entry, f"{path}: claims[]")
    where = f"{path}: claim {entry.get('number', '?')}"
    _known_keys(entry, {"number", "statement", "data", "comparisons", "oracle", "note"}, where)
    comparisons = []
    for item in _listed(entry.get("comparisons") or [], f"{where}: comparisons"):
        item = _mapping(item, f"{where}: comparisons[]")
        _known_keys(item, {"label", "arm", "baseline", "metric", "baseline_metric", "better"},
                    where)
        missing = [k for k in ("label", "arm", "baseline", "metric") if k not in item]
        if missing:
            raise ConfigError(f"{where}: a comparison lacks {missing}")
        better = str(item.get("better", "higher"))
        if better not in BETTER:
            raise ConfigError(f"{where}: better: {better!r}; choose from {BETTER}")
        comparisons.append(Comparison(str(item["label"]), str(item["arm"]),
                                      str(item["baseline"]), str(item["metric"]),
                                      str(item.get("baseline_metric", item["metric"])), better))
    oracle = tuple(str(t) for t in _listed(entry.get("oracle") or [], f"{where}: oracle"))
    if not comparisons and not oracle:
        raise ConfigError(f"{where}: needs comparisons or oracle tests")
    return Claim(int(entry["number"]), str(entry.get("statement", "")),
                 str(entry.get("data", "")), tuple(comparisons), oracle,
                 str(entry.get("note", "")))


def _check_references(spec: ClaimsSpec, path: Path) -> None:
    for variant in spec.variants.values():
        if variant.reuse is not None and variant.reuse not in spec.variants:
            raise ConfigError(f"{path}: variants.{variant.name}.reuse: unknown variant "
                              f"{variant.reuse!r}")
        _chain(spec, variant.name)  # rejects cycles
    for arm in spec.arms.values():
        stray = sorted(set(arm.seeds) - set(spec.seeds))
        if stray:
            raise ConfigError(f"{path}: arms.{arm.name}.seeds: {stray} not among the spec's "
                              f"seeds {list(spec.seeds)} (arms compared share their seeds)")
        if arm.variant not in spec.variants:
            raise ConfigError(f"{path}: arms.{arm.name}.variant: unknown variant "
                              f"{arm.variant!r}; declared: {sorted(spec.variants)}")
    for claim in spec.claims:
        for comparison in claim.comparisons:
            for arm in (comparison.arm, comparison.baseline):
                if arm not in spec.arms:
                    raise ConfigError(f"{path}: claim {claim.number}: unknown arm {arm!r}; "
                                      f"declared: {sorted(spec.arms)}")


def _chain(spec: ClaimsSpec, name: str) -> list[str]:
    seen = [name]
    while spec.variants[seen[-1]].reuse is not None:
        nxt = spec.variants[seen[-1]].reuse
        if nxt in seen:
            raise ConfigError(f"claims: variants reuse each other in a loop: {seen + [nxt]}")
        seen.append(str(nxt))
    return seen


def stage_dirs(spec: ClaimsSpec, variant: str) -> dict[str, Path]:
    """Where each data stage's outputs of ``variant`` live: its own folder from ``rerun``
    on, the reused variant's before that."""
    own = spec.variants[variant]
    if own.reuse is None:
        return {stage: variant_dir(variant) / stage for stage in DATA_STAGES}
    dirs = stage_dirs(spec, own.reuse)
    first = DATA_STAGES.index(own.rerun)
    dirs.update({stage: variant_dir(variant) / stage for stage in DATA_STAGES[first:]})
    return dirs


def own_stages(spec: ClaimsSpec, variant: str) -> tuple[str, ...]:
    """The data stages ``variant`` runs itself."""
    return DATA_STAGES[DATA_STAGES.index(spec.variants[variant].rerun):]


def variant_dir(variant: str) -> Path:
    """``claims/artifacts/data/<variant>``."""
    return ARTIFACTS / "data" / variant


def arm_dir(arm: str, seed: int) -> Path:
    """``claims/artifacts/arms/<arm>/s<seed>``: params, train, evaluate, cost."""
    return ARTIFACTS / "arms" / arm / f"s{seed}"


def hydra_overrides(values: dict[str, Any]) -> list[str]:
    """``++key=value`` for each dotted key (added or replaced), values in YAML flow style
    (``null``, ``false``, ``[a, b]``)."""
    return [f"++{key}={_flow(value)}" for key, value in values.items()]


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").strip()


def variant_overrides(spec: ClaimsSpec, variant: str) -> dict[str, Any]:
    """The variant's overrides over its recipe (a reused variant's first, then its own)."""
    chain = list(reversed(_chain(spec, variant)))
    recipes = {spec.variants[name].recipe for name in chain}
    if len(recipes) > 1:
        raise ConfigError(f"claims: variant {variant!r} reuses a variant of another recipe "
                          f"({sorted(recipes)})")
    merged: dict[str, Any] = {}
    for name in chain:
        merged.update(spec.variants[name].overrides)
    return merged


def arm_overrides(spec: ClaimsSpec, arm: str, seed: int) -> dict[str, Any]:
    """Everything an arm's run sets over its recipe: the variant's overrides, the common
    budget, the forced budget keys, the arm's own overrides, the seed and the one
    architecture."""
    entry = spec.arms[arm]
    return {**variant_overrides(spec, entry.variant), **spec.budget, **FORCED_BUDGET,
            **entry.overrides, "train.seed": int(seed), "train.architectures": [entry.arch]}


def compose_variant(root: Path, spec: ClaimsSpec, variant: str) -> str:
    """The params text of a data variant (see :func:`components.recipes.compose_text`)."""
    from components.recipes import compose_text

    return compose_text(root, spec.variants[variant].recipe,
                        hydra_overrides(variant_overrides(spec, variant)))


def compose_arm(root: Path, spec: ClaimsSpec, arm: str, seed: int) -> str:
    """The params text of one arm and seed."""
    from components.recipes import compose_text

    return compose_text(root, spec.variant_of(arm).recipe,
                        hydra_overrides(arm_overrides(spec, arm, seed)))


def arms_in_claims(spec: ClaimsSpec) -> list[str]:
    """Arms some claim compares, in the spec's order (arms nobody compares are not run)."""
    wanted = {a for c in spec.claims for cmp in c.comparisons for a in (cmp.arm, cmp.baseline)}
    return [name for name in spec.arms if name in wanted]


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _listed(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _known_keys(entry: dict[str, Any], known: Iterable[str], where: str) -> None:
    unknown = sorted(set(entry) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
