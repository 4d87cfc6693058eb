"""Great Expectations suites over the manifest, the per-sample facts and the class counts.

Each expectation carries a ``check`` name and a severity in its ``meta``, so a failed GX result
becomes a :class:`Finding` the report and the stage policy understand (GX returns results in
its own order, so matching by position would be wrong). GX runs in an ephemeral context:
nothing is written to disk and progress bars are off.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import great_expectations as gx  # components/__init__ has turned its analytics off
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402

from components.data.labels import CANONICAL_LABELS
from components.data.manifest import MANIFEST_SCHEMA, SPLITS
from components.validation.config import ValidateConfig

SEVERITIES: tuple[str, ...] = ("error", "warning", "info")
MAX_EXAMPLES = 10
# Type names GX accepts for the manifest's nullable pandas dtypes (verified against GX 1.24).
STRING_TYPES: list[str] = ["StringDtype", "str", "string", "object"]
INT_TYPES: list[str] = ["Int64Dtype", "Int32Dtype", "int64", "int32"]
DEPTH_DTYPES: list[str] = ["uint16", "float32", "float64"]
_COUNTER = itertools.count()
_GX_SEVERITY = {"error": "critical", "warning": "warning", "info": "info"}


@dataclass(frozen=True)
class Finding:
    """One failed check: what, how bad, how many rows, and example sample ids."""

    check: str
    severity: str
    message: str
    count: int
    examples: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """A named expectation with the stage's severity and a sentence a user understands.

    ``detail_column`` names a column whose values explain an example (e.g. the decode error).
    """

    name: str
    severity: str
    message: str
    expectation: gxe.Expectation
    detail_column: str | None = None


def manifest_checks(frame: pd.DataFrame) -> list[Check]:
    """Schema, ids, labels and splits of the manifest itself."""
    checks = [
        Check("schema", "error", f"manifest column {col!r} is missing",
              gxe.ExpectColumnToExist(column=col))
        for col in MANIFEST_SCHEMA
    ]
    for col, dtype in MANIFEST_SCHEMA.items():
        if col not in frame:
            continue
        types = INT_TYPES if dtype == "Int64" else STRING_TYPES
        checks.append(Check("schema", "error", f"manifest column {col!r} has the wrong type",
                            gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=types)))
    present = set(frame.columns)
    if "id" in present:
        checks += [
            Check("id", "error", "sample ids are missing",
                  gxe.ExpectColumnValuesToNotBeNull(column="id")),
            Check("id", "error", "sample ids are not unique",
                  gxe.ExpectColumnValuesToBeUnique(column="id")),
        ]
    if "label" in present:
        checks += [
            Check("label", "error", "labels are missing",
                  gxe.ExpectColumnValuesToNotBeNull(column="label")),
            Check("label", "error", f"labels outside the canonical set {list(CANONICAL_LABELS)}",
                  gxe.ExpectColumnValuesToBeInSet(column="label",
                                                  value_set=list(CANONICAL_LABELS)),
                  detail_column="label"),
        ]
    if "split" in present:
        checks += [
            Check("split", "error", "splits are missing",
                  gxe.ExpectColumnValuesToNotBeNull(column="split")),
            Check("split", "error", f"splits outside {list(SPLITS)}",
                  gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
                  detail_column="split"),
        ]
    return checks


def facts_checks(cfg: ValidateConfig) -> list[Check]:
    """Checks on the decoded samples (see :mod:`components.validation.facts`)."""
    size_severity = "error" if cfg.require_consistent_size else "warning"
    low, high = cfg.frames_range
    checks = [
        Check("decode", "error", "files that cannot be decoded",
              gxe.ExpectColumnValuesToBeInSet(column="decodes_ok", value_set=[True]),
              detail_column="error"),
        Check("color_dtype", "error", "colour pixels are not 8-bit",
              gxe.ExpectColumnValuesToBeInSet(column="color_dtype", value_set=["uint8"]),
              detail_column="color_dtype"),
        Check("depth_missing", "error", "RGB-D rows without a depth map",
              gxe.ExpectColumnValuesToBeInSet(column="depth_missing", value_set=[False])),
        Check("depth_dtype", "error", f"depth maps not 16-bit or float ({DEPTH_DTYPES})",
              gxe.ExpectColumnValuesToBeInSet(column="depth_dtype", value_set=DEPTH_DTYPES),
              detail_column="depth_dtype"),
        Check("depth_size", "error", "depth maps whose size differs from their colour image",
              gxe.ExpectColumnValuesToBeInSet(column="depth_shape_matches_color",
                                              value_set=[True]),
              detail_column="depth_shape"),
        Check("frame_count", "error", f"clips with a frame count outside [{low}, {high}]",
              gxe.ExpectColumnValuesToBeBetween(column="n_frames", min_value=low,
                                                max_value=high),
              detail_column="n_frames"),
        Check("blank", "warning",
              f"blank or near-constant images (pixel std < {cfg.blank_std_threshold})",
              gxe.ExpectColumnValuesToBeBetween(column="pixel_std",
                                                min_value=cfg.blank_std_threshold),
              detail_column="pixel_std"),
        Check("stale_hash", "warning", "decoded content hash differs from the manifest's",
              gxe.ExpectColumnValuesToBeInSet(column="hash_matches_manifest", value_set=[True])),
        Check("manifest_size", "warning", "decoded size differs from the manifest's width/height",
              gxe.ExpectColumnValuesToBeInSet(column="size_matches_manifest", value_set=[True])),
    ]
    for side in ("width", "height"):
        checks.append(Check("image_size", "error",
                            f"images with {side} outside [1, {cfg.max_image_side}]",
                            gxe.ExpectColumnValuesToBeBetween(column=side, min_value=1,
                                                              max_value=cfg.max_image_side),
                            detail_column=side))
    for modality in ("color", "depth", "color2d", "frames"):
        checks.append(Check(
            "inconsistent_size", size_severity,
            f"{modality} images come in several sizes (WxHxC); see report 'modalities'",
            gxe.ExpectColumnUniqueValueCountToBeBetween(column=f"{modality}_shape",
                                                        min_value=0, max_value=1)))
    return checks


def class_count_checks(cfg: ValidateConfig, splits: list[str]) -> list[Check]:
    """Minimum samples per class: an error for train, a warning for evaluation splits."""
    checks = []
    for split in splits:
        severity = "error" if split == "train" else "warning"
        checks.append(Check(
            f"min_samples_{split}", severity,
            f"classes with fewer than {cfg.min_samples_per_class} {split} samples",
            gxe.ExpectColumnValuesToBeBetween(column=split,
                                              min_value=cfg.min_samples_per_class),
            detail_column=split))
    return checks


def run_checks(
    table: str, frame: pd.DataFrame, checks: list[Check], *, id_column: str = "id"
) -> tuple[list[Finding], dict[str, Any]]:
    """Validate ``frame`` with one GX suite built from ``checks``.

    Returns:
        The findings of failed expectations, and a small GX run summary for the report
        (``success``, ``evaluated``, ``failed``).
    """
    if not checks:
        return [], {"success": True, "evaluated": 0, "failed": 0}
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    tag = f"{table}_{next(_COUNTER)}"
    batch = (
        context.data_sources.add_pandas(f"{tag}_source")
        .add_dataframe_asset(f"{tag}_asset")
        .add_batch_definition_whole_dataframe(f"{tag}_batch")
    )
    suite = gx.ExpectationSuite(name=f"{tag}_suite")
    for number, check in enumerate(checks):
        # Checks are built fresh for every run, so tagging the expectation in place is safe.
        check.expectation.meta = {"check_index": number}
        check.expectation.severity = _GX_SEVERITY[check.severity]
        suite.add_expectation(check.expectation)
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{tag}_validation", data=batch, suite=suite)
    )
    index_columns = [id_column] if id_column in frame else []
    result = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={
            "result_format": "SUMMARY",
            "unexpected_index_column_names": index_columns,
            "partial_unexpected_count": MAX_EXAMPLES,
        },
    )
    findings = []
    for item in result.results:
        check = checks[int(item.expectation_config.meta["check_index"])]
        if item.success:
            continue
        findings.append(_finding(check, item, frame, id_column))
    findings.sort(key=lambda f: (SEVERITIES.index(f.severity), f.check))
    summary = {
        "success": bool(result.success),
        "evaluated": len(result.results),
        "failed": sum(1 for item in result.results if not item.success),
    }
    return findings, summary


def _finding(check: Check, item: Any, frame: pd.DataFrame, id_column: str) -> Finding:
    info = item.exception_info or {}
    if info.get("raised_exception"):
        message = " ".join(str(info.get("exception_message")).split())
        return Finding(check.name, check.severity, f"{check.message} (GX error: {message})", 1)
    result = item.result or {}
    if "unexpected_count" not in result:
        observed = result.get("observed_value")
        details = [f"observed: {observed}"] if observed is not None else []
        return Finding(check.name, check.severity, check.message, 1, details=details)
    examples = [str(entry[id_column]) for entry in result.get("partial_unexpected_index_list")
                or [] if id_column in entry]
    details: list[str] = []
    if check.detail_column and examples:
        looked_up = frame.set_index(id_column, drop=False).loc[
            lambda f: f[id_column].isin(examples)
        ]
        looked_up = looked_up[~looked_up.index.duplicated()]
        details = [f"{ident}: {looked_up.at[ident, check.detail_column]}" for ident in examples
                   if ident in looked_up.index]
    elif not examples:
        details = [str(v) for v in (result.get("partial_unexpected_list") or [])]
    return Finding(check.name, check.severity, check.message,
                   int(result["unexpected_count"]), examples, details)
